"""Checking what the system showed against what a step expects, and the run-wide invariants. Pure.

Inputs are what the transport observed (output-topic records, in order) and the HTTP answers the
step got; names in the scenario are resolved through the run's `DepotState`. Every check returns a
`Finding` that says what was expected and what was seen, so a failed run explains itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from contracts.enums import NodeType
from contracts.records import BreachRecord, CycleResultRecord
from simulator.depot_state import DepotState
from simulator.scenario import BreachExpectation, CycleExpectation, EventExpectation, Expectations
from simulator.transport import Observed
from simulator.wire import HttpAnswer, Published

CAPACITY_TOPICS = ("compatibility.effective_circuit_capacity_changed",
                   "compatibility.effective_circuit_capacity_reconciled")
ENVELOPE_TOPICS = ("microgrid.operating_envelope_received", "microgrid.operating_envelope_lifecycle_evaluated",
                   "microgrid.operating_envelope_rejected")


@dataclass(frozen=True)
class Finding:
    ok: bool
    check: str
    expected: str = ""
    observed: str = ""


@dataclass
class StepTrace:
    """What one step did and saw: the window of observed records it owns and its answers."""

    index: int
    title: str
    action: str
    offset_s: float
    start_observed: int
    correlated: bool = False
    correlation_ids: set[str] = field(default_factory=set)
    request_keys: set[str] = field(default_factory=set)
    answers: list[HttpAnswer] = field(default_factory=list)
    reads: dict[str, HttpAnswer] = field(default_factory=dict)  # the operator's named reads (operator_view)
    answer_cycles: list[CycleResultRecord] = field(default_factory=list)
    foreign_correlations: set[str] = field(default_factory=set)
    foreign_cycle_ids: set[UUID] = field(default_factory=set)
    reference_cycles: list[CycleResultRecord] = field(default_factory=list)  # for same_allocations_as
    published: list[Published] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    duration_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(f.ok for f in self.findings)


@dataclass(frozen=True)
class SeenCycle:
    observed_index: int
    at_s: float
    correlation_id: str
    result: CycleResultRecord


# ---- what belongs to this run ------------------------------------------------------------------


def belongs(record: Observed, state: DepotState) -> bool:
    payload = record.payload
    if payload is None:
        return False
    for attr, mine in (("microgrid_id", state.microgrid_id), ("depot_id", state.depot_id)):
        value = getattr(payload, attr, None)
        if value is not None and value == mine:
            return True
    circuit = getattr(payload, "circuit_id", None)
    return circuit is not None and state.circuit_name(circuit) != str(circuit)


def cycles_seen(observed: Iterable[Observed], state: DepotState) -> list[SeenCycle]:
    return [SeenCycle(r.index, r.at_s, r.message.correlation_id, r.payload)  # type: ignore[union-attr]
            for r in observed if r.topic == "microgrid.cycle_completed" and belongs(r, state)]


def step_cycles(trace: StepTrace, observed: list[Observed], state: DepotState) -> list[CycleResultRecord]:
    """The cycles this step caused: its answers' cycles plus correlated ones seen on the topic.

    An uncorrelated step (an envelope, a health report) owns every cycle seen during its window.
    """
    found: dict[UUID, CycleResultRecord] = {c.cycle_id: c for c in trace.answer_cycles}
    for seen in cycles_seen(observed[trace.start_observed:], state):
        audit = seen.result.audit
        marks = {seen.correlation_id, audit.correlation_id, audit.request_key}
        if trace.correlated:
            mine = bool(marks & (trace.correlation_ids | trace.request_keys))
        else:  # late output of an earlier step is not this step's
            mine = not (marks & trace.foreign_correlations) and seen.result.cycle_id not in trace.foreign_cycle_ids
        if mine:
            found.setdefault(seen.result.cycle_id, seen.result)
    return sorted(found.values(), key=lambda c: (c.started_at, str(c.cycle_id)))


# ---- one step --------------------------------------------------------------------------------


def check_step(expect: Expectations, trace: StepTrace, observed: list[Observed], state: DepotState,
               *, final: bool) -> list[Finding]:
    """All of the step's findings. `final` adds the negative checks (counts, absences), which are only
    meaningful once the system has settled."""
    findings: list[Finding] = []
    window = [r for r in observed[trace.start_observed:] if belongs(r, state)]
    if expect.http is not None:
        findings.append(_http(expect, trace.answers))
    cycles = step_cycles(trace, observed, state)
    if expect.cycle is not None:
        findings.extend(_cycle(expect.cycle, cycles, state, final=final))
        if expect.cycle.same_allocations_as is not None:
            findings.append(_same_allocations(expect.cycle.same_allocations_as, expect.cycle.tolerance_watts, cycles,
                                              trace.reference_cycles, state))
    if expect.no_cycle and final:
        findings.append(Finding(not cycles, "no cycle", "none", _describe_cycles(cycles, state)))
    breaches = [b for c in cycles for b in c.breaches]
    for wanted in expect.breaches:
        findings.append(_breach(wanted, breaches, state))
    if expect.no_breaches:
        findings.append(Finding(not breaches, "no breaches", "none", _describe_breaches(breaches, state)))
    for event in expect.events:
        findings.append(_event(event, window, state, final=final))
    if expect.capacity is not None:
        findings.append(_capacity(expect, observed, window, state))
    if expect.envelope is not None:
        findings.append(_envelope(expect, observed, state))
    if expect.demand is not None:
        findings.append(_demand(expect, cycles, window, state))
    if expect.view is not None:
        findings.append(_view(expect, trace.reads, state))
    return findings


def _http(expect: Expectations, answers: list[HttpAnswer]) -> Finding:
    assert expect.http is not None
    seen = [a.status for a in answers]
    codes = [a.reason_code() for a in answers if not a.ok]
    if expect.http.statuses is not None:
        ok = sorted(seen) == sorted(expect.http.statuses)
        wanted = f"statuses {sorted(expect.http.statuses)}"
    else:
        ok = bool(seen) and seen[0] == expect.http.status
        wanted = f"status {expect.http.status}"
    if expect.http.reason_code is not None:
        ok = ok and str(expect.http.reason_code) in codes
        wanted += f" with {expect.http.reason_code}"
    bodies = [a.body for a in answers if not a.ok][:1]
    return Finding(ok, "http answer", wanted, f"statuses {seen} {codes} {json_short(bodies)}")


def _cycle(expect: CycleExpectation, cycles: list[CycleResultRecord], state: DepotState,
           *, final: bool) -> list[Finding]:
    described = _describe_cycles(cycles, state)
    if not cycles:
        return [Finding(False, "cycle", _describe_cycle_expectation(expect), "no cycle seen")]
    findings = []
    if final or len(cycles) > expect.count:
        findings.append(Finding(len(cycles) == expect.count, "cycle count", str(expect.count), described))
    elif len(cycles) < expect.count:
        findings.append(Finding(False, "cycle count", str(expect.count), described))
    for cycle in cycles:
        problems = _cycle_problems(expect, cycle, state)
        findings.append(Finding(not problems, "cycle", _describe_cycle_expectation(expect),
                                "; ".join(problems) or _describe_cycles([cycle], state)))
    return findings


def _cycle_problems(expect: CycleExpectation, cycle: CycleResultRecord, state: DepotState) -> list[str]:
    problems = []
    codes = [str(c) for c in cycle.reason_codes]
    if expect.outcome is not None and cycle.outcome != expect.outcome:
        problems.append(f"outcome {cycle.outcome} (reason codes {codes})")
    if expect.reason_codes is not None and codes != [str(c) for c in expect.reason_codes]:
        problems.append(f"reason codes {codes}")
    missing = [str(c) for c in expect.reason_codes_include if str(c) not in codes]
    if missing:
        problems.append(f"reason codes {codes} lack {missing}")
    unwanted = [str(c) for c in expect.reason_codes_exclude if str(c) in codes]
    if unwanted:
        problems.append(f"reason codes {codes} include {unwanted}")
    if expect.source is not None and cycle.audit.source != expect.source:
        problems.append(f"source {cycle.audit.source}")
    if expect.node is not None and cycle.node_id != state.node_ids.get(expect.node):
        problems.append(f"scope {state.node_name(cycle.node_id)}")
    allocated = {state.node_name(n.node_id): n.allocated_watts for n in cycle.allocation_summary.by_node}
    for name, bound in expect.allocations.items():
        value = allocated.get(name)
        if not bound.holds(value):
            problems.append(f"{name} allocated {value} W, expected {bound}")
    total = cycle.allocation_summary.total_allocated_watts
    if expect.total_allocated_watts is not None and not expect.total_allocated_watts.holds(total):
        problems.append(f"total allocated {total} W, expected {expect.total_allocated_watts}")
    return problems


def _same_allocations(label: str, tolerance: int, cycles: list[CycleResultRecord],
                      reference: list[CycleResultRecord], state: DepotState) -> Finding:
    # Connectors only: the rotated remainder watt is per connector, so a charge point or circuit above
    # several connectors may move by more than the tolerance while every connector stays within it.
    def allocations(cycle: CycleResultRecord) -> dict[str, int]:
        return {str(state.node_name(n.node_id)): n.allocated_watts for n in cycle.allocation_summary.by_node
                if n.node_type is NodeType.CONNECTOR}

    if not cycles or not reference:
        return Finding(False, "same allocations", f"as in '{label}'", f"{len(cycles)} vs {len(reference)} cycles")
    mine, theirs = allocations(cycles[-1]), allocations(reference[-1])
    differ = {k: (mine.get(k), theirs.get(k)) for k in sorted(set(mine) | set(theirs))
              if k not in mine or k not in theirs or abs(mine[k] - theirs[k]) > tolerance}
    totals = {c.allocation_summary.total_allocated_watts for c in (cycles[-1], reference[-1])}
    total_equal = len(totals) == 1
    within = f" within {tolerance} W a connector" if tolerance else ""
    seen = f"{cycles[-1].outcome}; differences (now, then): {differ}" if differ else f"{cycles[-1].outcome}, equal"
    return Finding(not differ and total_equal and cycles[-1].outcome == reference[-1].outcome, "same allocations",
                   f"as in '{label}' ({reference[-1].outcome}, same total{within})", seen)


def _breach(wanted: BreachExpectation, breaches: list[BreachRecord], state: DepotState) -> Finding:
    def matches(b: BreachRecord) -> bool:
        if b.reason_code != wanted.reason_code:
            return False
        if wanted.node == "aggregate" and b.node_id is not None:
            return False
        if wanted.node not in (None, "aggregate") and b.node_id != state.node_ids.get(wanted.node):
            return False
        if wanted.resolved_limit_watts is not None and b.resolved_limit_watts != wanted.resolved_limit_watts:
            return False
        return wanted.source_mode is None or b.source_mode == wanted.source_mode

    where = f" on {wanted.node}" if wanted.node else ""
    limit = f" at {wanted.resolved_limit_watts} W" if wanted.resolved_limit_watts is not None else ""
    return Finding(any(matches(b) for b in breaches), "breach", f"{wanted.reason_code}{where}{limit}",
                   _describe_breaches(breaches, state))


def _event(wanted: EventExpectation, window: list[Observed], state: DepotState, *, final: bool) -> Finding:
    hits = [r for r in window if r.topic == wanted.topic and _payload_matches(r.payload, wanted.where, state)]
    if wanted.count is None:
        ok = bool(hits)
        expected = f"at least one {wanted.topic} {wanted.where}"
    else:
        ok = len(hits) == wanted.count if final else len(hits) >= wanted.count
        expected = f"{wanted.count} x {wanted.topic} {wanted.where}"
    on_topic = [r for r in window if r.topic == wanted.topic]
    return Finding(ok, "event", expected, f"{len(hits)} matching of {len(on_topic)} on the topic "
                   f"{json_short([_payload_summary(r.payload, state) for r in on_topic[-3:]])}")


def _payload_matches(payload: Any, where: dict[str, Any], state: DepotState) -> bool:
    for key, value in where.items():
        if key == "circuit":
            if getattr(payload, "circuit_id", None) != state.circuit_id(str(value)):
                return False
        elif key == "node":
            if getattr(payload, "node_id", None) != state.node_ids.get(str(value)):
                return False
        else:
            actual = getattr(payload, key, None)
            if str(actual) != str(value):
                return False
    return True


def _capacity(expect: Expectations, observed: list[Observed], window: list[Observed], state: DepotState) -> Finding:
    assert expect.capacity is not None
    wanted = expect.capacity
    circuit_id = state.circuit_id(wanted.circuit)
    events = [r for r in observed if r.topic in CAPACITY_TOPICS and belongs(r, state)
              and r.payload.circuit_id == circuit_id]
    latest = events[-1].payload if events else None
    ok = latest is not None and latest.effective_capacity_watts == wanted.watts
    if ok and wanted.trigger is not None:
        ok = any(r.payload.projection_trigger == wanted.trigger for r in window if r in events)
    trigger = f" ({wanted.trigger} in this step)" if wanted.trigger else ""
    seen = [f"{r.payload.effective_capacity_watts} W {r.payload.projection_trigger} {r.payload.basis}"
            for r in events[-4:]]
    return Finding(ok, "effective circuit capacity", f"{wanted.circuit} = {wanted.watts} W{trigger}",
                   "; ".join(seen) or "no capacity event")


def _envelope(expect: Expectations, observed: list[Observed], state: DepotState) -> Finding:
    from simulator.actors.envelope_adapter import source_ref  # the one definition of the ref

    assert expect.envelope is not None
    ref = source_ref(state, expect.envelope.name)
    statuses = []
    for r in observed:
        if r.topic not in ENVELOPE_TOPICS or not belongs(r, state):
            continue
        record = getattr(r.payload, "envelope", None) or r.payload
        if getattr(record, "source_ref", None) == ref or getattr(r.payload, "source_ref", None) == ref:
            statuses.append("REJECTED" if r.topic.endswith("rejected") else str(r.payload.status))
    ok = bool(statuses) and statuses[-1] == expect.envelope.status
    return Finding(ok, "envelope status", f"{expect.envelope.name} {expect.envelope.status}",
                   " -> ".join(statuses) or "no envelope event")


def _demand(expect: Expectations, cycles: list[CycleResultRecord], window: list[Observed],
            state: DepotState) -> Finding:
    assert expect.demand is not None
    ids = {c.cycle_id for c in cycles}
    resolved = [r.payload for r in window if r.topic == "microgrid.demand_resolved" and r.payload.cycle_id in ids]
    node_id = state.node_ids.get(expect.demand.node) if expect.demand.node else None
    modes = []
    for payload in resolved:
        if node_id is None:
            modes.append(str(payload.source_mode))
        else:
            modes.extend(str(i.source_mode) for i in payload.inputs_used if i.node_id == node_id)
    ok = bool(modes) and all(m == expect.demand.source_mode for m in modes)
    where = f" for {expect.demand.node}" if expect.demand.node else ""
    return Finding(ok, "demand source mode", f"{expect.demand.source_mode}{where}", ", ".join(modes) or "none seen")


def _view(expect: Expectations, reads: dict[str, HttpAnswer], state: DepotState) -> Finding:
    """Checks the operator's latest reads: depot view (topology), status (balancing), control points."""
    assert expect.view is not None
    wanted = expect.view
    depot_answer = reads.get("depot")
    if depot_answer is None or not depot_answer.ok:
        return Finding(False, "operator view", "a depot view", f"read {depot_answer}")
    depot = depot_answer.body["result"]
    problems, seen = [], []
    capacities = {state.circuit_name(c["circuit_id"]): c["effective_capacity_watts"]
                  for c in depot.get("effective_circuit_capacities", [])}
    seen.append(f"{len(depot.get('active_envelopes', []))} active envelopes, capacities {capacities}")
    if wanted.active_envelopes is not None and len(depot.get("active_envelopes", [])) != wanted.active_envelopes:
        problems.append("active envelopes")
    for circuit, watts in wanted.capacity.items():
        if capacities.get(circuit) != watts:
            problems.append(f"capacity of {circuit}")
    if wanted.nodes is not None:
        count = _count_nodes(depot.get("nodes", []))
        seen.append(f"{count} nodes")
        if count != wanted.nodes:
            problems.append("node count")
    if wanted.latest_outcome is not None:
        status = reads["status"].body if "status" in reads and reads["status"].ok else {}
        outcome = (status.get("latest_cycle") or {}).get("outcome")
        seen.append(f"latest cycle {outcome}")
        if outcome != wanted.latest_outcome:
            problems.append("latest outcome")
    for name, cp_wanted in wanted.control_points.items():
        seen_cp, wrong = _control_point_view(name, cp_wanted, reads, state)
        seen.append(seen_cp)
        problems.extend(wrong)
    return Finding(not problems, "operator view", wanted.model_dump_json(exclude_defaults=True),
                   "; ".join(seen) + (f" (wrong: {', '.join(problems)})" if problems else ""))


def _control_point_view(name: str, wanted: Any, reads: dict[str, HttpAnswer], state: DepotState
                        ) -> tuple[str, list[str]]:
    answer = reads.get("control_points")
    views = answer.body["result"]["control_points"] if answer is not None and answer.ok else []
    cp_id = str(state.control_point_id(name))
    view = next((v for v in views if v["control_point"]["control_point_id"] == cp_id), None)
    if view is None:
        return f"{name}: not configured", [] if not wanted.configured else [f"{name} missing"]
    status = view.get("status") or {}
    wrong = []
    if wanted.status is not None and status.get("latest_operational_status") != wanted.status:
        wrong.append(f"{name} status")
    if wanted.reported_by is not None and status.get("reported_by") != wanted.reported_by:
        wrong.append(f"{name} reported_by")
    freshness = status.get("freshness_seconds")
    if wanted.max_freshness_s is not None and (freshness is None or freshness > wanted.max_freshness_s):
        wrong.append(f"{name} freshness")
    history = reads.get(f"history:{name}")
    count = len(history.body["result"]["events"]) if history is not None and history.ok else None
    if wanted.history is not None and count != wanted.history:
        wrong.append(f"{name} history")
    return (f"{name}: {status.get('latest_operational_status')} by {status.get('reported_by')}, "
            f"{freshness} s old, {count} in history"), wrong


def _count_nodes(nodes: list[dict[str, Any]]) -> int:
    return sum(1 + _count_nodes(n.get("children", [])) for n in nodes)


# ---- run-wide invariants -------------------------------------------------------------------------


@dataclass(frozen=True)
class CycleContext:
    """What the simulator knew when it saw a cycle: baseline limits, aggregate cap, session minimums."""

    cycle: SeenCycle
    limits: dict[str, int]
    aggregate_cap_watts: int | None
    min_watts: dict[str, int]


def check_invariants(names: Sequence[str], contexts: list[CycleContext], state: DepotState) -> list[Finding]:
    findings = []
    if "limits_never_exceeded" in names:
        problems = [p for ctx in contexts for p in _limit_problems(ctx, state)]
        findings.append(Finding(not problems, "limits never exceeded", f"{len(contexts)} cycles within every limit",
                                "; ".join(problems[:5]) or "ok"))
    if "connector_minimums" in names:
        problems = [p for ctx in contexts for p in _minimum_problems(ctx, state)]
        findings.append(Finding(not problems, "connector minimums", "0 or at least the vehicle's minimum",
                                "; ".join(problems[:5]) or "ok"))
    if "one_cycle_per_request" in names:
        keys: dict[str, int] = {}
        for ctx in contexts:
            key = ctx.cycle.result.audit.request_key
            if key:
                keys[key] = keys.get(key, 0) + 1
        twice = [k for k, n in keys.items() if n > 1]
        findings.append(Finding(not twice, "one cycle per request", "each request key once", ", ".join(twice) or "ok"))
    return findings


def _limit_problems(ctx: CycleContext, state: DepotState) -> list[str]:
    cycle = ctx.cycle.result
    if cycle.outcome == "REJECTED":
        return []
    by_name = {state.node_name(n.node_id): n for n in cycle.allocation_summary.by_node}
    connector_alloc = {name: n.allocated_watts for name, n in by_name.items() if n.node_type is NodeType.CONNECTOR}
    problems = []
    tag = f"cycle {str(cycle.cycle_id)[:8]}"
    for name, node in by_name.items():
        if node.effective_limit_watts is not None and node.allocated_watts > node.effective_limit_watts:
            problems.append(f"{tag}: {name} {node.allocated_watts} W > its effective limit "
                            f"{node.effective_limit_watts} W")
    for placed in state.layout.nodes():
        name = placed.node.name
        below = sum(connector_alloc.get(p.node.name, 0) for p in state.layout.subtree(name))
        for limit, what in ((ctx.limits.get(name), "baseline limit"),
                            (by_name[name].effective_limit_watts if name in by_name else None, "effective limit")):
            if limit is not None and below > limit:
                problems.append(f"{tag}: connectors under {name} get {below} W > its {what} {limit} W")
    total = sum(connector_alloc.values())
    if ctx.aggregate_cap_watts is not None and total > ctx.aggregate_cap_watts:
        problems.append(f"{tag}: {total} W > aggregate cap {ctx.aggregate_cap_watts} W")
    return problems


def _minimum_problems(ctx: CycleContext, state: DepotState) -> list[str]:
    problems = []
    for node in ctx.cycle.result.allocation_summary.by_node:
        name = state.node_name(node.node_id)
        if node.node_type is not NodeType.CONNECTOR or name not in ctx.min_watts:
            continue
        if 0 < node.allocated_watts < ctx.min_watts[name]:
            problems.append(f"{name} got {node.allocated_watts} W, below its minimum {ctx.min_watts[name]} W")
        if node.allocated_watts > node.requested_watts:
            problems.append(f"{name} got {node.allocated_watts} W, more than requested {node.requested_watts} W")
    return problems


# ---- descriptions -------------------------------------------------------------------------------


def _describe_cycle_expectation(expect: CycleExpectation) -> str:
    parts = []
    if expect.outcome:
        parts.append(str(expect.outcome))
    if expect.reason_codes is not None:
        parts.append(f"codes {[str(c) for c in expect.reason_codes]}")
    if expect.reason_codes_include:
        parts.append(f"codes include {[str(c) for c in expect.reason_codes_include]}")
    if expect.source:
        parts.append(f"via {expect.source}")
    if expect.allocations:
        parts.append(", ".join(f"{k} {v}" for k, v in expect.allocations.items()))
    return " ".join(parts) or "a cycle"


def _describe_cycles(cycles: list[CycleResultRecord], state: DepotState) -> str:
    return "; ".join(
        f"{c.outcome} {[str(r) for r in c.reason_codes]} via {c.audit.source} "
        f"{c.allocation_summary.total_allocated_watts}/{c.allocation_summary.total_requested_watts} W"
        for c in cycles
    ) or "none"


def _describe_breaches(breaches: list[BreachRecord], state: DepotState) -> str:
    return "; ".join(f"{b.reason_code} on {state.node_name(b.node_id) or 'aggregate'} "
                     f"{b.effective_demand_watts}/{b.resolved_limit_watts} W {b.source_mode}"
                     for b in breaches) or "none"


def _payload_summary(payload: Any, state: DepotState) -> dict[str, Any]:
    data = payload.model_dump(mode="json") if payload is not None else {}
    keep = ("reason_code", "path", "circuit_id", "status", "effective_capacity_watts", "projection_trigger", "basis")
    summary = {k: data[k] for k in keep if k in data}
    if "circuit_id" in summary:
        summary["circuit_id"] = state.circuit_name(summary["circuit_id"])
    return summary


def json_short(value: Any, limit: int = 300) -> str:
    import json

    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "..."
