"""Checking observed outputs against expectations and invariants (pure: synthetic records, no stack)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from contracts.enums import ConstraintType, CycleOutcome, NodeType, ReasonCode, RebalanceSource, SourceMode
from contracts.events import CycleCompleted
from contracts.records import (
    AllocationSummaryRecord,
    BreachRecord,
    CycleAuditRecord,
    CycleResultRecord,
    NodeAllocationRecord,
)
from simulator.clock import DEFAULT_ANCHOR
from simulator.depot import load_depot
from simulator.depot_state import DepotState
from simulator.expectations import CycleContext, StepTrace, check_invariants, check_step, cycles_seen
from simulator.identity import Identities, run_namespace
from simulator.scenario import Expectations
from simulator.transport import Observed
from simulator.wire import HttpAnswer

pytestmark = pytest.mark.req("FR-017")
NOW = datetime(2030, 1, 7, 6, tzinfo=UTC)


@pytest.fixture
def state() -> DepotState:
    s = DepotState.create(load_depot("single-grid-connection"), Identities(run_namespace("t", 1, DEFAULT_ANCHOR)))
    s.microgrid_id = uuid4()
    s.node_ids["Feeder A"] = uuid4()
    return s


def cycle_record(state: DepotState, correlation: str, allocations: dict[str, int], *,
                 outcome: CycleOutcome = CycleOutcome.APPLIED, codes: tuple[ReasonCode, ...] = (),
                 limits: dict[str, int] | None = None, breaches: tuple[BreachRecord, ...] = ()) -> Observed:
    by_node = [NodeAllocationRecord(node_id=state.node_id(n), node_type=NodeType.CONNECTOR if "/" in n else
                                    NodeType.CHARGE_POINT, allocated_watts=w, requested_watts=max(w, 11000),
                                    effective_limit_watts=(limits or {}).get(n)) for n, w in allocations.items()]
    result = CycleResultRecord(
        cycle_id=uuid4(), microgrid_id=state.microgrid_id, topology_version=2, started_at=NOW, ended_at=NOW,
        outcome=outcome, reason_codes=list(codes), breaches=list(breaches),
        allocation_summary=AllocationSummaryRecord(total_allocated_watts=sum(allocations.values()),
                                                   total_requested_watts=0, by_node=by_node),
        audit=CycleAuditRecord(actor="t", source=RebalanceSource.OPERATOR_HTTP, correlation_id=correlation,
                               inputs_digest="d"),
    )
    message = CycleCompleted.create(result, producer="balancing", occurred_at=NOW, correlation_id=correlation)
    return Observed(0, "microgrid.cycle_completed", 0, 0, 0.0, message=message)


def numbered(records: list[Observed]) -> list[Observed]:
    return [Observed(i, r.topic, r.partition, i, float(i), message=r.message) for i, r in enumerate(records)]


def test_a_correlated_step_owns_only_its_cycles(state: DepotState) -> None:
    observed = numbered([cycle_record(state, "mine", {"CP1/1": 5000}), cycle_record(state, "other", {"CP1/1": 1})])
    trace = StepTrace(0, "t", "rebalance", 0.0, 0, correlated=True, correlation_ids={"mine"})
    expect = Expectations.model_validate({"cycle": {"outcome": "APPLIED", "allocations": {"CP1/1": 5000}}})
    findings = check_step(expect, trace, observed, state, final=True)
    assert all(f.ok for f in findings), findings


def test_an_uncorrelated_step_ignores_late_output_of_earlier_steps(state: DepotState) -> None:
    observed = numbered([cycle_record(state, "earlier", {"CP1/1": 5000})])
    trace = StepTrace(1, "t", "envelope", 0.0, 0, foreign_correlations={"earlier"})
    no_cycle = Expectations.model_validate({"no_cycle": True})
    assert all(f.ok for f in check_step(no_cycle, trace, observed, state, final=True))
    trace.foreign_correlations.clear()
    assert not all(f.ok for f in check_step(no_cycle, trace, observed, state, final=True))


def test_findings_say_what_was_expected_and_what_was_seen(state: DepotState) -> None:
    breach = BreachRecord(breach_id=uuid4(), microgrid_id=state.microgrid_id, cycle_id=uuid4(), node_id=None,
                          constraint_ref="agg", constraint_type=ConstraintType.CONSUMPTION_CAP,
                          reason_code=ReasonCode.AGGREGATE_CAP_EXCEEDED, effective_demand_watts=300000,
                          resolved_limit_watts=200000, source_mode=SourceMode.MEASURED, detected_at=NOW)
    observed = numbered([cycle_record(state, "c", {"CP1/1": 9000}, outcome=CycleOutcome.CURTAILED,
                                      codes=(ReasonCode.AGGREGATE_CAP_EXCEEDED,), breaches=(breach,))])
    trace = StepTrace(0, "t", "rebalance", 0.0, 0, correlated=True, correlation_ids={"c"},
                      answers=[HttpAnswer(200, {})])
    expect = Expectations.model_validate({
        "http": {"status": 200},
        "cycle": {"outcome": "APPLIED", "reason_codes": ["AGGREGATE_CAP_EXCEEDED"]},
        "breaches": [{"reason_code": "AGGREGATE_CAP_EXCEEDED", "node": "aggregate", "resolved_limit_watts": 200000},
                     {"reason_code": "NODE_CAP_EXCEEDED"}],
    })
    findings = {f.check + ":" + f.expected: f for f in check_step(expect, trace, observed, state, final=True)}
    assert findings["http answer:status 200"].ok
    failed = [f for f in findings.values() if not f.ok]
    assert {f.check for f in failed} == {"cycle", "breach"}
    assert any("outcome CURTAILED" in f.observed for f in failed)


def test_invariants_catch_an_exceeded_limit_and_a_trickle(state: DepotState) -> None:
    over = cycle_record(state, "c", {"CP1/1": 30000, "CP1/2": 20000, "CP1": 50000}, limits={"CP1": 44000})
    trickle = cycle_record(state, "d", {"CP2/1": 500})
    contexts = [CycleContext(s, {"CP1": 44000}, 100000, {"CP2/1": 1380})
                for s in cycles_seen(numbered([over, trickle]), state)]
    findings = {f.check: f for f in check_invariants(["limits_never_exceeded", "connector_minimums"], contexts, state)}
    assert not findings["limits never exceeded"].ok and "CP1" in findings["limits never exceeded"].observed
    assert not findings["connector minimums"].ok and "CP2/1" in findings["connector minimums"].observed
    fine = [CycleContext(s, {"CP1": 44000}, 100000, {})
            for s in cycles_seen(numbered([cycle_record(state, "e", {"CP1/1": 20000})]), state)]
    assert all(f.ok for f in check_invariants(["limits_never_exceeded", "connector_minimums"], fine, state))
