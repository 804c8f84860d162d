"""The physical topology view: per node, its effective caps and the load this cycle cannot control.

Built once per cycle (and per collection-view validation) from the inputs, in two walks of the tree:

- top-down: whether a node is live (it and every ancestor ACTIVE), the tightest consumption/net cap
  on it or above it (the fail-safe assumption for a scope with no usable telemetry), and whether a
  meter or a NET/GENERATION cap above makes a connector's draw or a generator's output matter;
- bottom-up: the uncontrolled consumption ``base`` of each subtree, local generation, requests.

``base`` of a node = the larger of the sum of its children's bases and (its effective demand minus
the current draw of the controllable connectors below it). Taking the larger keeps it monotone in
every input: a reading going stale can only raise a base, never lower one. Controllable connectors
contribute their request, not a base. Connectors that are not controllable this cycle (outside the
scope, or not in a candidate set) are load like any other, counted at no less than their request.

Headroom of a node = what its caps leave for controllable load: ``CONSUMPTION_CAP - base`` and
``NET_CAP + fresh generation - base``, whichever is smaller.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from contracts.enums import ConstraintType, NodeType, SourceMode
from libs.domain import _columns
from libs.domain.allocation import RequestColumns
from libs.domain.codec import canonical_float, canonical_rows_json, format_datetime
from libs.domain.cycle_inputs import ConnectorDemand, CycleInputs
from libs.domain.cycle_result import LazyRecords, once
from libs.domain.demand import (
    DemandResolution,
    DemandRole,
    FallbackBasis,
    FallbackRule,
    FreshScope,
    TelemetryReading,
    TelemetryState,
    fresh_scope_demand,
    resolution_columns,
    resolve_reading_value,
    resolve_scope_demand,
)
from libs.domain.effective_constraints import EffectiveConstraint, EffectiveConstraintSet, resolve_effective_constraints
from libs.domain.memo import MicrogridMemo
from libs.domain.topology import TopologyIndex

R = TypeVar("R", TelemetryReading, ConnectorDemand)

_CONS = ConstraintType.CONSUMPTION_CAP
_NET = ConstraintType.NET_CAP
_GEN = ConstraintType.GENERATION_CAP


@dataclass(frozen=True, slots=True)
class Headroom:
    watts: int
    constraint: EffectiveConstraint


class PhysicalView:
    __slots__ = (
        "index",
        "constraints",
        "live",
        "controllable",
        "demand",
        "requested",
        "base",
        "generation",
        "generation_seen",
        "fallback_used",
        "generation_fallback",
        "cons",
        "net",
        "gen",
        "root_base",
        "root_generation",
        "root_generation_seen",
        "root_requested",
        "root_fallback",
        "root_generation_fallback",
        "resolutions",
        "fallback_resolved",
        "missing_inputs",
        "capped",
        "constrained",
        "wished",
        "request_columns",
    )

    def __init__(self, inputs: CycleInputs, index: TopologyIndex, controllable_ids: Collection[str] | None) -> None:
        """``index``: a valid topology; ``controllable_ids``: the connectors this cycle may allocate (None:
        every live connector)."""
        now = inputs.now
        threshold = inputs.freshness_threshold_seconds
        mid = inputs.microgrid.microgrid_id
        constraints = resolve_effective_constraints(
            microgrid_id=mid,
            nodes=index.nodes,
            node_limits=inputs.node_limits,
            envelopes=inputs.envelopes,
            forecast_sources=inputs.forecast_sources,
            circuit_capacities=inputs.circuit_capacities,
            aggregate_caps=inputs.aggregate_caps,
            now=now,
            gap_policy=inputs.gap_policy,
            grid_connections=[index.nodes_at[pos] for pos in index.first_level],
        )
        order = index.order
        parent = index.parent_pos
        n = len(order)
        # Readings and demands placed by tree position once, so the walks below index lists instead of
        # looking every node up by id (tens of thousands of lookups on a large depot); each record looked
        # for first where the microgrid's previous cycle found the record in its place (`_HINTS`).
        hints = _HINTS.get(mid)
        if hints is None or hints[0] is not index:
            hints = (index, None, None)
        reading_of, reading_hint = _placed(inputs.telemetry, index, _reading_key, hints[1])
        wish_of, wish_hint = _placed(inputs.connector_demands, index, _demand_key, hints[2])
        _HINTS.put(mid, (index, reading_hint, wish_hint), n)
        rules = _strictest_rules(inputs.fallback_rules)
        nodes_at = index.nodes_at
        cons, net, gen, capped, constrained = _constraints_placed(mid, constraints, index)
        agg = constraints.aggregate
        root_tight = _tightest(None, agg.get(_CONS), agg.get(_NET))
        root_gen_checked = _NET in agg or _GEN in agg

        # Liveness is compiled with the topology; so is what an unscoped cycle controls.
        live = index.live_at
        if controllable_ids is None:
            controllable = index.live_connector
        else:
            controllable = [False] * n
            for pos in index.connectors:
                if live[pos] and order[pos] in controllable_ids:
                    controllable[pos] = True

        # Top-down over the nodes other than connectors (the leaves): tightest cap, whether draws and
        # generation matter. ``meters[pos]``: the node or an ancestor is metered (a reading or a rule),
        # so a draw below it matters. Compiled (`_columns.top_down`): tens of thousands of nodes on a
        # large tree; `_top_down` states the same walk.
        walked = _columns.top_down(
            index.inner, parent, cons, net, gen, reading_of, rules, order, root_tight, root_gen_checked
        )
        tight, meters, gen_checked = walked or _top_down(
            index, cons, net, gen, reading_of, rules, root_tight, root_gen_checked
        )

        # Bottom-up: uncontrolled base load, controllable draws, generation, requests.
        base = [0] * n
        draw = [0] * n
        generation = [0] * n
        generation_seen = [0] * n
        requested = [0] * n
        fallback_used = [False] * n
        generation_fallback = [False] * n
        resolutions: list[DemandResolution | FreshScope] = []  # (id, reading): a fresh scope
        missing: list[str] = []
        wished: list[int] = []  # controllable connectors with a demand, in preorder
        fallback_mode = SourceMode.FALLBACK_DERIVED
        fail_safe = FallbackBasis.FAIL_SAFE_TIGHTEST_CAP
        power_source, connector = NodeType.POWER_SOURCE, NodeType.CONNECTOR
        window = timedelta(seconds=threshold)
        earliest, latest = now - window, now + window  # fresh: |now - observed_at| <= threshold

        # First the controllable connectors: leaves (a valid tree has nothing under a connector), so
        # they have no base and no generation; only their request and their draw go up.
        draws_fallen: list[tuple[int, DemandResolution]] = []
        if controllable_ids is None:  # every live connector: their positions are compiled
            at = index.live_connectors
        else:
            at = [pos for pos in index.connectors if controllable[pos]]
        controlled = len(at)
        # Tens of thousands of connectors on a large depot: compiled (`_columns.connector_pass`), with
        # this Python pass stating the same rule and answering for numbers beyond 64 bits.
        # It reads each wish once: its request for the sums up the tree and its fields for the allocation's
        # request columns (`cycle.request_columns` makes them otherwise).
        passed = _columns.connector_pass(
            at, wish_of, reading_of, parent, meters, earliest, latest, requested, draw, index.id_rank, index.alloc_node
        )
        request_columns: RequestColumns | None = None
        if passed is not None:
            wished, fallen, packed, requested_total = passed
            request_columns = RequestColumns.from_packed(packed, requested_total)
        else:
            fallen = []
            for pos in at:
                p, wish, reading = parent[pos], wish_of[pos], reading_of[pos]
                if wish is not None:
                    wished.append(pos)
                    asked = wish.requested_watts
                    if asked > 0:
                        requested[pos] = asked
                        requested[p] += asked
                if reading is not None and meters[p]:
                    # A fresh draw is just its input value; only a fallen-back draw is worth a record.
                    if reading.valid and earliest <= reading.observed_at <= latest:
                        watts = reading.measured_watts
                        if watts > 0:
                            draw[pos] = watts
                            draw[p] += watts
                    else:
                        fallen.append(pos)
        # The controllable connectors' wishes by position: the placed wishes themselves when each of them is a
        # controllable connector's (no copy of tens of thousands of references): every record placed and
        # wished, as no other position holds one.
        if len(wished) == len(inputs.connector_demands):
            demand_at = wish_of
        else:
            demand_at = [None] * n
            for pos in wished:
                demand_at[pos] = wish_of[pos]
        for pos in fallen:
            reading = reading_of[pos]
            res = resolve_reading_value(
                order[pos], DemandRole.CONTROLLED_DRAW, reading.measured_watts, reading, now, threshold
            )
            draws_fallen.append((pos, res))
            fallback_used[pos] = fallback_used[parent[pos]] = True

        # Then every other node, bottom-up, in two steps: first what the nodes that are more than the sum
        # of their children (metered or ruled nodes, uncontrolled connectors, power sources) hold of their
        # own, in reverse preorder as their resolutions are listed (``res_at``: where); then the sums up
        # the tree (compiled: `_columns.subtree_sums`; `_subtree_sums` states the same walk).
        res_at: list[int] = []
        if controlled == len(index.connectors):
            uncontrolled = index.inner
        else:
            uncontrolled = [pos for pos in range(n) if not controllable[pos]]
        own_kind = index.own_load_at
        if rules:
            own = [pos for pos in uncontrolled if reading_of[pos] is not None or own_kind[pos] or order[pos] in rules]
        else:
            own = [pos for pos in uncontrolled if reading_of[pos] is not None or own_kind[pos]]
        at_least: list[int | None] = [None] * n  # a floor on the node's base
        less_draw: list[int | None] = [None] * n  # a demand of which the subtree's controllable draw is part
        for pos in reversed(own):
            node = nodes_at[pos]
            node_id = node.node_id
            reading = reading_of[pos]
            rule = rules.get(node_id) if rules else None
            kind = node.node_type
            floor = 0
            if live[pos] and kind is connector:
                wish = wish_of[pos]
                floor = max(0, wish.requested_watts) if wish is not None else 0
            if reading is not None or rule is not None:
                if kind is connector:  # a leaf: its tightest cap is not walked top-down
                    p = parent[pos]
                    up_tight = root_tight if p < 0 else tight[p]
                    tight[pos] = _tightest(up_tight, cons[pos], net[pos])
                measured = fresh_scope_demand(reading, now, threshold)
                if measured is not None:  # the usual case: its MEASURED record made only when it is read
                    resolutions.append((node_id, reading))
                    res_at.append(pos)
                    less_draw[pos] = measured if measured > floor else floor
                else:
                    res = resolve_scope_demand(node_id, reading, rule, now, threshold, tight[pos])
                    resolutions.append(res)
                    res_at.append(pos)
                    value = res.effective_demand_watts
                    if floor > value:
                        value = floor
                    if res.fallback_basis is fail_safe:
                        missing.append(node_id)  # the whole assumed load is uncontrolled: nothing below may draw
                        at_least[pos] = value
                    else:
                        less_draw[pos] = value
                    if res.source_mode is fallback_mode:
                        fallback_used[pos] = True
            elif floor:
                at_least[pos] = floor
            if reading is not None and kind is power_source and gen_checked[pos]:
                res = resolve_reading_value(
                    node_id, DemandRole.GENERATION, reading.generation_watts, reading, now, threshold
                )
                resolutions.append(res)
                res_at.append(pos)
                generation[pos] += res.effective_demand_watts
                if reading.valid:
                    generation_seen[pos] += max(0, reading.generation_watts)
                if res.telemetry_state is not TelemetryState.FRESH:
                    generation_fallback[pos] = True
        sums = (uncontrolled, parent, at_least, less_draw, base, draw, requested, generation, generation_seen)
        flags = (fallback_used, generation_fallback)
        root = _columns.subtree_sums(*sums, *flags) or _subtree_sums(*sums, *flags)
        root_base, root_generation, root_generation_seen, root_requested, root_fallback, root_generation_fallback = root
        if draws_fallen:
            # Merged into reverse preorder (a connector's position is never another resolution's).
            tagged = sorted([*zip(res_at, resolutions, strict=True), *draws_fallen], key=lambda t: -t[0])
            resolutions = [res for _, res in tagged]
        resolutions.reverse()  # preorder, as the tree reads
        resolutions.append(
            DemandResolution(
                None,
                DemandRole.AGGREGATE,
                fallback_mode if root_fallback else SourceMode.MEASURED,
                root_base + root_requested,
                TelemetryState.STALE if root_fallback else TelemetryState.FRESH,
                threshold,
            )
        )
        missing.sort()
        # Only records made here can be fallbacks: a fresh scope's is MEASURED.
        made = [r for r in resolutions if type(r) is DemandResolution]
        self.fallback_resolved = any(r.source_mode is fallback_mode for r in made)

        self.index = index
        self.constraints: EffectiveConstraintSet = constraints
        self.live = live
        self.controllable = controllable
        self.demand = demand_at
        self.requested = requested
        self.base = base
        self.generation = generation
        self.generation_seen = generation_seen
        self.fallback_used = fallback_used
        self.generation_fallback = generation_fallback
        self.cons = cons
        self.net = net
        self.gen = gen
        self.root_base = root_base
        self.root_generation = root_generation
        self.root_generation_seen = root_generation_seen
        self.root_requested = root_requested
        self.root_fallback = root_fallback
        self.root_generation_fallback = root_generation_fallback
        self.resolutions = _resolution_records(resolutions, now, threshold)
        self.missing_inputs = tuple(missing)
        self.capped = capped
        self.constrained = constrained
        self.wished = wished
        self.request_columns = request_columns  # of the wished positions, when the compiled pass made them

    def headroom(self, pos: int) -> Headroom | None:
        """What the caps of the node at ``pos`` (-1: the aggregate) leave for controllable load."""
        if pos < 0:
            agg = self.constraints.aggregate
            return _headroom(self.root_base, self.root_generation, agg.get(_CONS), agg.get(_NET))
        return _headroom(self.base[pos], self.generation[pos], self.cons[pos], self.net[pos])


def _resolution_records(
    resolutions: list[DemandResolution | FreshScope], now: datetime, threshold: int
) -> LazyRecords[DemandResolution]:
    """The demand resolutions, a fresh scope's record made only where the records are read: the stored
    output and the demand-resolved event are written from their columns."""
    columns = once(lambda: resolution_columns(resolutions, now, threshold))
    return LazyRecords(lambda: list(map(DemandResolution, *columns())), lambda: _resolutions_json(columns()), columns)


def _resolutions_json(columns: tuple[list[Any], ...]) -> bytes:
    """The canonical JSON array of the resolutions, written from their columns: the records' bytes (each
    row as a dict of the record's fields; the codec sorts the keys)."""
    return canonical_rows_json([
        {
            "node_id": node_id,
            "role": role,
            "source_mode": source_mode,
            "effective_demand_watts": effective,
            "telemetry_state": state,
            "freshness_threshold_seconds": threshold,
            "measured_watts": measured,
            "observed_at": None if observed_at is None else format_datetime(observed_at),
            "age_seconds": None if age is None else canonical_float(age),
            "fallback_basis": basis,
            "fallback_rule": rule,
            "fail_safe_limit_watts": fail_safe,
        }
        for (
            node_id, role, source_mode, effective, state, threshold, measured, observed_at, age, basis, rule, fail_safe
        ) in zip(*columns, strict=True)
    ])


def _headroom(
    base: int, generation: int, cons: EffectiveConstraint | None, net: EffectiveConstraint | None
) -> Headroom | None:
    best: Headroom | None = None
    if cons is not None:
        best = Headroom(cons.limit_watts - base, cons)
    if net is not None:
        watts = net.limit_watts + generation - base
        if best is None or watts < best.watts:
            best = Headroom(watts, net)
    return best


_Placed = tuple[
    list[EffectiveConstraint | None],
    list[EffectiveConstraint | None],
    list[EffectiveConstraint | None],
    list[int],
    list[int],
]
# Per microgrid, bounded by the nodes kept (memo.py): the baseline constraints by position, for the baseline
# dict and the compiled topology they were placed for.
_PLACED: MicrogridMemo[str, tuple[object, TopologyIndex, _Placed]] = MicrogridMemo()


def _constraints_placed(mid: str, constraints: EffectiveConstraintSet, index: TopologyIndex) -> _Placed:
    """The node constraints by tree position: consumption, net and generation caps (None where a node has
    none), then the positions with a consumption or net cap and those with any cap, in preorder.

    The constraints the node limits alone decide are placed once per set of limits and topology (a
    memo, as `effective_constraints._baseline`: ~11,000 caps on a large tree, unchanged from one cycle
    to the next); the keys decided this cycle (envelopes, forecasts, circuits) are placed over them. The
    lists are shared between cycles: read, never written."""
    hit = _PLACED.get(mid)
    if hit is not None and hit[0] is constraints.baseline and hit[1] is index:
        placed = hit[2]
    else:
        placed = _place(constraints.baseline, index, None)
        _PLACED.put(mid, (constraints.baseline, index, placed), len(index.order))
    if not constraints.decided_here:
        return placed
    return _place(constraints.by_node, index, (placed, constraints.decided_here))


def _place(
    by_node: Mapping[tuple[str, ConstraintType], EffectiveConstraint],
    index: TopologyIndex,
    over: tuple[_Placed, frozenset[tuple[str, ConstraintType]]] | None,
) -> _Placed:
    """``by_node`` by position; with ``over``, only its keys are placed from ``by_node``, over copies of
    an earlier placement (a key with no constraint left clears its place)."""
    position = index.position
    if over is None:
        n = len(index.order)
        cons: list[EffectiveConstraint | None] = [None] * n
        net: list[EffectiveConstraint | None] = [None] * n
        gen: list[EffectiveConstraint | None] = [None] * n
        keys: Iterable[tuple[str, ConstraintType]] = by_node
        capped: set[int] = set()  # positions with a consumption or net cap
        constrained: set[int] = set()  # positions with any cap
    else:
        (cons0, net0, gen0, capped0, constrained0), keys = over
        cons, net, gen = list(cons0), list(net0), list(gen0)
        capped, constrained = set(capped0), set(constrained0)
    by_type = {_CONS: cons, _NET: net, _GEN: gen}
    for key in keys:
        node_id, constraint_type = key
        at = by_type.get(constraint_type)
        if at is None:
            continue
        pos = position[node_id]
        at[pos] = by_node.get(key)
        if cons[pos] is not None or net[pos] is not None:
            capped.add(pos)
        else:
            capped.discard(pos)
        if cons[pos] is not None or net[pos] is not None or gen[pos] is not None:
            constrained.add(pos)
        else:
            constrained.discard(pos)
    return cons, net, gen, sorted(capped), sorted(constrained)


def _tightest(up: int | None, cons: EffectiveConstraint | None, net: EffectiveConstraint | None) -> int | None:
    best = up
    for c in (cons, net):
        if c is not None and (best is None or c.limit_watts < best):
            best = c.limit_watts
    return best


def _top_down(
    index: TopologyIndex,
    cons: list[EffectiveConstraint | None],
    net: list[EffectiveConstraint | None],
    gen: list[EffectiveConstraint | None],
    reading_of: list[TelemetryReading | None],
    rules: dict[str, FallbackRule],
    root_tight: int | None,
    root_gen_checked: bool,
) -> tuple[list[int | None], list[bool], list[bool]]:
    """The walk down the nodes other than connectors (`_columns.top_down` compiles it): each one's
    tightest consumption or net cap on it or above it, whether it or an ancestor is metered, whether a
    net or generation cap is on it or above it."""
    n = len(index.order)
    parent, order = index.parent_pos, index.order
    tight: list[int | None] = [None] * n
    meters = [False] * n
    gen_checked = [False] * n
    for pos in index.inner:
        p = parent[pos]
        if p < 0:
            up_tight, up_metered, up_gen = root_tight, False, root_gen_checked
        else:
            up_tight, up_metered, up_gen = tight[p], meters[p], gen_checked[p]
        c, m = cons[pos], net[pos]
        tight[pos] = up_tight if c is None and m is None else _tightest(up_tight, c, m)
        meters[pos] = up_metered or reading_of[pos] is not None or (bool(rules) and order[pos] in rules)
        gen_checked[pos] = up_gen or m is not None or gen[pos] is not None
    return tight, meters, gen_checked


def _subtree_sums(
    uncontrolled: list[int],
    parent: list[int],
    at_least: list[int | None],
    less_draw: list[int | None],
    base: list[int],
    draw: list[int],
    requested: list[int],
    generation: list[int],
    generation_seen: list[int],
    fallback_used: list[bool],
    generation_fallback: list[bool],
) -> tuple[int, int, int, int, bool, bool]:
    """The walk up the uncontrolled nodes (`_columns.subtree_sums` compiles it): each one's base is the
    largest of its children's bases, ``at_least`` and ``less_draw`` less the draw of its subtree; every
    column is added to the parent's. The root's sums: base, generation, generation seen, requested, and
    whether a fallback was used, for consumption and for generation."""
    children_base = [0] * len(parent)
    root_base = root_generation = root_generation_seen = root_requested = 0
    root_fallback = root_generation_fallback = False
    for pos in reversed(uncontrolled):
        own = children_base[pos]
        floor, demand = at_least[pos], less_draw[pos]
        if floor is not None and floor > own:
            own = floor
        if demand is not None and demand - draw[pos] > own:
            own = demand - draw[pos]
        base[pos] = own
        p = parent[pos]
        if p >= 0:
            children_base[p] += own
            draw[p] += draw[pos]
            requested[p] += requested[pos]
            generation[p] += generation[pos]
            generation_seen[p] += generation_seen[pos]
            if generation_fallback[pos]:
                generation_fallback[p] = True
            if fallback_used[pos]:
                fallback_used[p] = True
        else:
            root_base += own
            root_generation += generation[pos]
            root_generation_seen += generation_seen[pos]
            root_requested += requested[pos]
            root_fallback = root_fallback or fallback_used[pos]
            root_generation_fallback = root_generation_fallback or generation_fallback[pos]
    return root_base, root_generation, root_generation_seen, root_requested, root_fallback, root_generation_fallback


# Per microgrid, bounded by the nodes kept (memo.py): the positions its last cycle's readings and demands were
# placed at, record by record, for the topology they were placed in. Only a hint: a record is looked up by id
# when its node is not at the hinted position.
_HINTS: MicrogridMemo[str, tuple[TopologyIndex, bytes | None, bytes | None]] = MicrogridMemo()


def _placed(
    records: Collection[R], index: TopologyIndex, key: Callable[[R], tuple], hint: bytes | None
) -> tuple[list[R | None], bytes | None]:
    """The records by the tree position of their ``node_id`` (None where a node has none); of two for
    one node the one with the larger ``key`` (the first of equals); records of nodes not in the tree
    are left out. With them, each record's position (int32s, for ``hint`` next time), when compiled."""
    position = index.position
    made = _columns.placed_again(records, position, index.order, hint)  # one record per node of the tree
    if made is not None:
        return made
    n = len(index.order)
    out: list[R | None] = [None] * n
    for record in records:
        pos = position.get(record.node_id)
        if pos is not None:
            seen = out[pos]
            if seen is None or key(record) > key(seen):
                out[pos] = record
    return out, None


def _reading_key(r: TelemetryReading) -> tuple:
    return (r.observed_at, r.valid, r.measured_watts, r.generation_watts)


def _demand_key(d: ConnectorDemand) -> tuple:
    return (d.requested_watts, d.min_watts, d.priority, d.weight)


def _strictest_rules(rules: Collection[FallbackRule]) -> dict[str, FallbackRule]:
    out: dict[str, FallbackRule] = {}
    for r in rules:
        seen = out.get(r.node_id)
        if seen is None or (r.assumed_demand_watts, r.last_known_margin_percent) > (
            seen.assumed_demand_watts,
            seen.last_known_margin_percent,
        ):
            out[r.node_id] = r
    return out
