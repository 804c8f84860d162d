"""The balancing cycle: validate before allocate, one deterministic path (ARCHITECTURE.md section 4).

1. Topology valid and at the expected version (and the scope node, if any, part of it), else
   REJECTED with TOPOLOGY_INVALID / TOPOLOGY_VERSION_CONFLICT and nothing allocated.
2. Effective demand per checked scope (`demand`), with source mode, inputs and thresholds.
3. Effective constraints per node and type (`effective_constraints`), including the effective
   feeder-circuit capacity of each managed GRID_CONNECTION node.
4. Ancestor, aggregate and node constraints evaluated against demand: breaches.
5. Allocation (`allocation`) under every cap at once; outcome and ordered reason codes.

Breach reason codes. A cap on the microgrid as a whole is AGGREGATE_CAP_EXCEEDED. A node's cap
exceeded by what the connectors below it ask (on top of its uncontrolled load) is
ANCESTOR_CAP_EXCEEDED: it is an ancestor cap of those connectors and takes precedence over them.
A node over its cap by itself (its uncontrolled load or generation alone, or a connector asking
more than its own cap) is NODE_CAP_EXCEEDED.

With a scope ``node_id`` only connectors in that subtree are allocated; the caps of the subtree,
of its ancestors and the aggregate are checked, and everything outside the subtree counts as
uncontrolled load.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter, itemgetter
from typing import Any

import orjson

from contracts.enums import (
    ConstraintType,
    CycleOutcome,
    ReasonCode,
    SourceMode,
    order_reason_codes,
)
from libs.domain import _columns
from libs.domain.allocation import (
    AllocationOutcome,
    AllocationRequest,
    AllocationState,
    RequestColumns,
    allocate_columns,
)
from libs.domain.codec import format_datetime, inputs_digest, kept_records_json
from libs.domain.cycle_inputs import ConnectorDemand, CycleInputs
from libs.domain.cycle_result import (
    AllocationSummary,
    Binding,
    Breach,
    CycleAudit,
    CycleResult,
    LazyRecords,
    NodeAllocation,
    once,
)
from libs.domain.effective_constraints import EffectiveConstraint
from libs.domain.gc_pause import collector_paused
from libs.domain.physical_view import PhysicalView
from libs.domain.topology import TopologyRule, TopologyViolation, compiled_topology

_CONS = ConstraintType.CONSUMPTION_CAP
_NET = ConstraintType.NET_CAP
_GEN = ConstraintType.GENERATION_CAP
_FALLBACK = SourceMode.FALLBACK_DERIVED
_SAFE_ACTION = "scopes without usable telemetry or a fallback rule were assumed to draw their tightest cap"


StepObserver = Callable[[str], AbstractContextManager[object]]


def _no_observer(_: str) -> AbstractContextManager[object]:
    return nullcontext()


def run_balancing_cycle(
    inputs: CycleInputs, *, digest: str | None = None, step: StepObserver | None = None
) -> CycleResult:
    """Run one cycle. ``digest``: the inputs digest when the caller already has it (it serialises the
    inputs for its audit anyway: ``sha256(canonical_inputs_json(inputs))``); computed here otherwise.
    ``step``: wraps each step (topology_check, demand_resolution, constraint_evaluation, allocation) so
    a service can trace them; it sees no data and cannot change the result."""
    with collector_paused():
        return _run(inputs, digest, step or _no_observer)


def _run(inputs: CycleInputs, digest: str | None, step: StepObserver) -> CycleResult:
    _require_aware(inputs.now, "now")
    with step("topology_check"):
        index = compiled_topology(inputs.microgrid, tuple(inputs.nodes))
        violations = list(index.violations)
        scope = inputs.scope_node_id
        if scope is not None and index.valid and scope not in index.position:
            violations.append(
                TopologyViolation(TopologyRule.UNKNOWN_NODE, (scope,), "the cycle's scope node is not in the topology")
            )
        codes: list[ReasonCode] = []
        if violations:
            codes.append(ReasonCode.TOPOLOGY_INVALID)
        expected = inputs.expected_topology_version
        if expected is not None and expected != inputs.microgrid.version:
            codes.append(ReasonCode.TOPOLOGY_VERSION_CONFLICT)
    if codes:
        return _result(
            inputs, CycleOutcome.REJECTED, codes, AllocationSummary(0, 0, ()), digest, violations=tuple(violations)
        )

    # The checked positions: the scope subtree and its ancestors (everything when unscoped).
    if scope is None:
        lo, hi = 0, len(index.order)
        checked = range(lo, hi)
        controllable_ids: Collection[str] | None = None  # every live connector
    else:
        lo = index.position[scope]
        hi = index.subtree_end[lo]
        above = [index.position[a] for a in reversed(index.ancestors(scope))]
        checked = above + list(range(lo, hi))  # type: ignore[assignment]
        controllable_ids = set(index.order[lo:hi])
    with step("demand_resolution"):  # effective demand per scope and the effective constraints
        view = PhysicalView(inputs, index, controllable_ids)
    with step("constraint_evaluation"):
        breaches, codes = _breaches(inputs, view, checked)
    if view.fallback_resolved:
        codes.append(ReasonCode.TELEMETRY_STALE_FALLBACK_USED)
    if view.missing_inputs:
        codes.append(ReasonCode.TELEMETRY_INSUFFICIENT)
    if inputs.legacy_alias_applied:
        codes.append(ReasonCode.LEGACY_ALIAS_TRANSLATION_APPLIED)

    with step("allocation"):
        summary, curtailed = _allocate(inputs, view, checked, lo, hi)
    outcome = CycleOutcome.CURTAILED if curtailed else CycleOutcome.APPLIED
    circuits = view.constraints.circuits
    if scope is not None:
        in_checked = {index.order[pos] for pos in checked}
        circuits = tuple(c for c in circuits if c.node_id in in_checked)
    return _result(
        inputs,
        outcome,
        list(dict.fromkeys(codes)),  # one per code: a depot may breach thousands of caps
        summary,
        digest,
        breaches=breaches,
        view=view,
        constraints=LazyRecords(
            lambda: _checked_constraints(view, checked),
            lambda: kept_records_json(_checked_constraints(view, checked)),
        ),
        circuits=circuits,
    )


def _checked_constraints(view: PhysicalView, checked: range | list[int]) -> list[EffectiveConstraint]:
    """The effective constraints of the checked nodes: the aggregate's by type, then by preorder and type."""
    agg = view.constraints.aggregate
    out = [agg[t] for t in sorted(agg)]
    cons, gen, net = view.cons, view.gen, view.net
    for pos in checked:
        for c in (cons[pos], gen[pos], net[pos]):
            if c is not None:
                out.append(c)
    return out


def _breaches(
    inputs: CycleInputs, view: PhysicalView, checked: range | list[int]
) -> tuple[LazyRecords[Breach], list[ReasonCode]]:
    """The breaches in check order, and their reason codes: decided here, their records built lazily."""
    found: _Found = []
    add = found.append
    agg = view.constraints.aggregate
    ancestor, node_cap = ReasonCode.ANCESTOR_CAP_EXCEEDED, ReasonCode.NODE_CAP_EXCEEDED

    base, req, gen = view.root_base, view.root_requested, view.root_generation
    c = agg.get(_CONS)
    if c is not None and base + req > c.limit_watts:
        add((None, c, base + req, ReasonCode.AGGREGATE_CAP_EXCEEDED, view.root_fallback))
    c = agg.get(_GEN)
    if c is not None and view.root_generation_seen > c.limit_watts:
        add((None, c, view.root_generation_seen, ReasonCode.AGGREGATE_CAP_EXCEEDED, view.root_generation_fallback))
    c = agg.get(_NET)
    if c is not None and base + req - gen > c.limit_watts:
        add((None, c, base + req - gen, ReasonCode.AGGREGATE_CAP_EXCEEDED, view.root_fallback))
    # Only positions with a cap can breach: all of them (in preorder) when every position is checked.
    # Compiled (`_columns.breaches`, ~11,000 capped nodes on a large tree); `_breaches_at` states the rule.
    at = view.constrained if isinstance(checked, range) else checked
    columns = (view.cons, view.gen, view.net, view.base, view.requested, view.generation, view.generation_seen)
    flags = (view.controllable, view.fallback_used, view.generation_fallback)
    scanned = _columns.breaches(at, *columns, *flags, view.index.order, node_cap, ancestor)
    found.extend(_breaches_at(at, view) if scanned is None else scanned)
    # A caller may write the JSON and then read the records (the balancing service does): the rows,
    # with their breach ids (a SHA-1 each), are made once for both.
    rows = once(lambda: _breach_rows(inputs, found))
    records = LazyRecords(
        lambda: [Breach(*row) for row in rows()],
        lambda: _breaches_json(inputs, rows()),
        lambda: tuple(zip(*rows(), strict=True)),  # the rows as columns
    )
    return records, list(dict.fromkeys(map(_CODE, found)))  # one per code: thousands of caps may be breached


def _breaches_at(positions: range | list[int], view: PhysicalView) -> _Found:
    """The caps broken at the positions (`_columns.breaches` compiles it): a consumption cap by base +
    requested, a generation cap by the generation seen, a net cap by base + requested - generation;
    NODE_CAP_EXCEEDED when the node is controllable or its own base breaks the cap, ANCESTOR_CAP_EXCEEDED
    (the node's share of an ancestor's load does) otherwise."""
    found: _Found = []
    add = found.append
    ancestor, node_cap = ReasonCode.ANCESTOR_CAP_EXCEEDED, ReasonCode.NODE_CAP_EXCEEDED
    order = view.index.order
    cons_at, gen_at, net_at = view.cons, view.gen, view.net
    bases, requested, generation = view.base, view.requested, view.generation
    for pos in positions:
        cons, gen_cap, net = cons_at[pos], gen_at[pos], net_at[pos]
        if cons is None and gen_cap is None and net is None:
            continue
        base, req = bases[pos], requested[pos]
        if cons is not None:
            limit = cons.limit_watts
            if base + req > limit:
                code = node_cap if view.controllable[pos] or base > limit else ancestor
                add((order[pos], cons, base + req, code, view.fallback_used[pos]))
        if gen_cap is not None and view.generation_seen[pos] > gen_cap.limit_watts:
            add((order[pos], gen_cap, view.generation_seen[pos], node_cap, view.generation_fallback[pos]))
        if net is not None:
            gen = generation[pos]
            limit = net.limit_watts
            if base + req - gen > limit:
                code = node_cap if view.controllable[pos] or base - gen > limit else ancestor
                add((order[pos], net, base + req - gen, code, view.fallback_used[pos]))
    return found


_Found = list[tuple[str | None, EffectiveConstraint, int, ReasonCode, bool]]


def _breach_rows(inputs: CycleInputs, found: _Found) -> list[tuple]:
    """The breaches' field values, in `Breach` field order."""
    mid = inputs.microgrid.microgrid_id
    cycle_id = inputs.cycle_id
    now = inputs.now
    measured = SourceMode.MEASURED
    return [
        (
            breach_id(f"{cycle_id}/{node_id or 'aggregate'}/{c.constraint_type.value}"),
            mid,
            node_id,
            c.constraint_type,
            c.binding.ref,
            code,
            demand,
            c.limit_watts,
            _FALLBACK if fallback else measured,
            now,
        )
        for node_id, c, demand, code, fallback in found
    ]


def _breaches_json(inputs: CycleInputs, rows: list[tuple]) -> bytes:
    """The canonical JSON of the breach records, written from their field values (no records built).
    Keys are written in sorted order, as the codec sorts them."""
    now = format_datetime(inputs.now)
    return orjson.dumps(
        [
            {
                "breach_id": b,
                "constraint_ref": ref,
                "constraint_type": t,
                "detected_at": now,
                "effective_demand_watts": demand,
                "microgrid_id": m,
                "node_id": node,
                "reason_code": code,
                "resolved_limit_watts": limit,
                "source_mode": mode,
            }
            for b, m, node, t, ref, code, demand, limit, mode, _ in rows
        ]
    )


@dataclass(frozen=True, slots=True)
class AllocationProblem:
    """The cycle's allocation as a plain tree problem (see `allocation`); position 0 is the microgrid."""

    parent: list[int]
    subtree_end: list[int]
    headroom: list[int | None]  # what each node's caps leave for controllable load (None: uncapped)
    positions: list[int]  # preorder position of the node behind each request
    columns: RequestColumns

    @property
    def requests(self) -> list[AllocationRequest]:
        return [self.columns[r] for r in range(len(self.columns))]


def allocation_problem(view: PhysicalView, lo: int, hi: int) -> AllocationProblem:
    """Requests of the controllable connectors at preorder positions lo..hi-1, under every cap of the tree."""
    index = view.index
    n = len(index.order)
    room = view.headroom(-1)
    headroom: list[int | None] = [None] * (n + 1)
    headroom[0] = None if room is None else room.watts
    cons, net, base, generation = view.cons, view.net, view.base, view.generation
    for pos in view.capped:
        c, m, b = cons[pos], net[pos], base[pos]
        watts = None if c is None else c.limit_watts - b
        if m is not None:
            x = m.limit_watts + generation[pos] - b
            if watts is None or x < watts:
                watts = x
        headroom[pos + 1] = watts
    if lo == 0 and hi == n:
        positions = view.wished
        columns = view.request_columns or request_columns(view.demand, positions, index.id_rank, index.alloc_node)
    else:
        positions = [p for p in view.wished if lo <= p < hi]
        columns = request_columns(view.demand, positions, index.id_rank, index.alloc_node)
    return AllocationProblem(index.alloc_parent, index.alloc_end, headroom, positions, columns)


def request_columns(
    wish_at: list[ConnectorDemand | None], positions: list[int], id_rank: list[int], alloc_node: list[int]
) -> RequestColumns:
    """The requests of the wishes at ``positions`` (each a position's `ConnectorDemand`), as columns:
    on the allocation tree's node ``alloc_node[p]``, requested and minimum clamped at 0, weight at 1;
    ranks follow node_id order (the documented tie-break; any strictly increasing numbering will do)."""
    made = _columns.request_columns(wish_at, positions, id_rank, alloc_node)  # one pass over the records
    if made is not None:
        return RequestColumns(*made)
    wishes = list(map(wish_at.__getitem__, positions))  # a number beyond 64 bits: the same in Python
    return RequestColumns(
        list(map(alloc_node.__getitem__, positions)),
        [max(0, w.requested_watts) for w in wishes],
        [max(0, w.min_watts) for w in wishes],
        [max(1, w.weight) for w in wishes],
        list(map(_PRIORITY, wishes)),
        list(map(id_rank.__getitem__, positions)),
    )


_PRIORITY = attrgetter("priority")
_CODE = itemgetter(3)


def breach_id(name: str) -> str:
    """``str(uuid.uuid5(uuid.NAMESPACE_URL, name))``, without building UUID objects (it runs per breach):
    the SHA-1 of the namespace and the name, its version nibble set to 5 and its variant bits to 10."""
    h = _URL_NAMESPACE_SHA1.copy()
    h.update(name.encode())
    x = h.hexdigest()
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT[x[16]]}{x[17:20]}-{x[20:32]}"


_URL_NAMESPACE_SHA1 = hashlib.sha1(uuid.NAMESPACE_URL.bytes)  # noqa: S324 - UUIDv5 is SHA-1
_VARIANT = {c: "0123456789abcdef"[(int(c, 16) & 0x3) | 0x8] for c in "0123456789abcdef"}


def _allocate(
    inputs: CycleInputs, view: PhysicalView, checked: range | list[int], lo: int, hi: int
) -> tuple[AllocationSummary, bool]:
    problem = allocation_problem(view, lo, hi)
    outcome = allocate_columns(
        problem.parent,
        problem.subtree_end,
        problem.headroom,
        problem.columns,
        inputs.rotation,
    )
    curtailed = AllocationState.CURTAILED in outcome.states or AllocationState.PAUSED in outcome.states
    total = sum(outcome.watts)
    requested_total = problem.columns.requested_total()
    columns = once(lambda: _node_columns(view, checked, problem, outcome))  # for the records and the JSON
    nodes = LazyRecords(
        lambda: list(map(NodeAllocation, *columns()[:8])),
        lambda: _node_allocations_json((*columns()[:7], columns()[8])),
        lambda: columns()[:8],
    )
    return AllocationSummary(requested_total, total, nodes), curtailed  # type: ignore[arg-type]


def _node_columns(
    view: PhysicalView,
    checked: range | list[int],
    problem: AllocationProblem,
    outcome: AllocationOutcome,
) -> tuple[Sequence[Any], ...]:
    """What the allocation arrays say about each checked node, in preorder: one column per
    `NodeAllocation` field, in field order (the records are the first eight columns zipped), then each
    binding's JSON (made once per binding cap)."""
    index = view.index
    order = index.order
    n = len(order)
    positions = problem.positions
    granted = [0] * n
    state_of: list[AllocationState | None] = [None] * n  # None: not a connector
    binding_of: list[Binding | None] = [None] * n
    binding_json_of: list[orjson.Fragment | None] = [None] * n
    minimum_of = [0] * n
    controllable = view.controllable
    unavailable, idle = AllocationState.UNAVAILABLE, AllocationState.IDLE
    for pos in index.connectors:
        state_of[pos] = idle if controllable[pos] else unavailable
    bindings: dict[int, tuple[Binding, orjson.Fragment] | None] = {}  # one per binding cap, shared
    for pos, watts, got, bound, minimum in zip(
        positions, outcome.watts, outcome.states, outcome.binding, problem.columns.min_watts, strict=True
    ):
        granted[pos] = watts
        state_of[pos] = got
        minimum_of[pos] = minimum  # the request's minimum, clamped at 0
        if bound >= 0:
            if bound in bindings:
                made = bindings[bound]
            else:
                made = None
                room = view.headroom(bound - 1)
                if room is not None:
                    c = room.constraint
                    where = None if bound == 0 else order[bound - 1]
                    binding = Binding(
                        where, c.constraint_type, c.binding.ref, c.binding.source, c.limit_watts, room.watts
                    )
                    made = (binding, _binding_json(binding))
                bindings[bound] = made
            if made is not None:
                binding_of[pos], binding_json_of[pos] = made
    subtotal = granted
    parent_pos = index.parent_pos
    for pos in range(n - 1, 0, -1):
        p = parent_pos[pos]
        if p >= 0:
            subtotal[p] += subtotal[pos]
    columns = (
        order,
        index.types_at,
        view.requested,
        subtotal,
        view.base,
        state_of,
        minimum_of,
        binding_of,
        binding_json_of,
    )
    if isinstance(checked, range) and checked == range(n):
        return columns
    return tuple([column[pos] for pos in checked] for column in columns)


def _node_allocations_json(columns: tuple[Sequence[Any], ...]) -> bytes:
    """The canonical JSON of the per-node records, written from their columns (no records built; the
    binding column holds each binding's JSON). Keys are written in sorted order, as the codec sorts them."""
    return orjson.dumps(
        [
            {
                "allocated_watts": allocated,
                "binding": binding,
                "min_watts": minimum,
                "node_id": node_id,
                "node_type": node_type,
                "requested_watts": requested,
                "state": state,
                "uncontrolled_watts": uncontrolled,
            }
            for node_id, node_type, requested, allocated, uncontrolled, state, minimum, binding in zip(
                *columns, strict=True
            )
        ]
    )


def _binding_json(b: Binding) -> orjson.Fragment:
    return orjson.Fragment(
        orjson.dumps(
            {
                "constraint_ref": b.constraint_ref,
                "constraint_type": b.constraint_type,
                "headroom_watts": b.headroom_watts,
                "limit_watts": b.limit_watts,
                "node_id": b.node_id,
                "source": b.source,
            }
        )
    )


def _result(
    inputs: CycleInputs,
    outcome: CycleOutcome,
    codes: list[ReasonCode],
    summary: AllocationSummary,
    digest: str | None,
    *,
    violations: tuple[TopologyViolation, ...] = (),
    breaches: tuple[Breach, ...] | LazyRecords[Breach] = (),
    view: PhysicalView | None = None,
    constraints: tuple[EffectiveConstraint, ...] | LazyRecords[EffectiveConstraint] = (),
    circuits: tuple = (),
) -> CycleResult:
    started = inputs.started_at or inputs.now
    missing = view.missing_inputs if view is not None else ()
    return CycleResult(
        cycle_id=inputs.cycle_id,
        microgrid_id=inputs.microgrid.microgrid_id,
        node_id=inputs.scope_node_id,
        topology_version=inputs.microgrid.version,
        started_at=started,
        ended_at=inputs.ended_at or started,
        evaluated_at=inputs.now,
        outcome=outcome,
        reason_codes=tuple(order_reason_codes(codes)),
        allocation_summary=summary,
        # LazyRecords stand for the tuples the fields declare (equal to them, encoded as them).
        breaches=breaches,  # type: ignore[arg-type]
        demand_resolutions=view.resolutions if view is not None else (),
        effective_constraints=constraints,  # type: ignore[arg-type]
        circuit_capacities=circuits,
        topology_violations=violations,
        expected_topology_version=inputs.expected_topology_version,
        missing_inputs=missing,
        safe_action_taken=_SAFE_ACTION if missing else None,
        audit=CycleAudit(inputs.rebalance_source, inputs.correlation_id, inputs.legacy_alias_applied),
        inputs_digest=digest if digest is not None else inputs_digest(inputs),
    )


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware UTC datetime")
