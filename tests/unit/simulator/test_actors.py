"""The actors' pure parts: telemetry patterns, chargers following allocations, tree edits."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from contracts.api.topology import TopologyNodeInput
from contracts.enums import CycleOutcome, NodeType, RebalanceSource
from contracts.records import (
    AllocationSummaryRecord,
    CycleAuditRecord,
    CycleResultRecord,
    NodeAllocationRecord,
)
from simulator.actors import operator, telemetry
from simulator.actors.chargers import Chargers
from simulator.clock import DEFAULT_ANCHOR, ScenarioClock
from simulator.depot import load_depot
from simulator.depot_state import DepotState
from simulator.identity import Identities, run_namespace
from simulator.scenario import TelemetryAction, TopologyEdit

pytestmark = pytest.mark.req("FR-017")


@pytest.fixture
def state() -> DepotState:
    layout = load_depot("single-grid-connection")
    s = DepotState.create(layout, Identities(run_namespace("t", 1, DEFAULT_ANCHOR)))
    s.microgrid_id = uuid4()
    s.node_ids["Feeder A"] = uuid4()
    return s


def _tick(state: DepotState, chargers: Chargers, action: TelemetryAction, seed: int = 1):
    return telemetry.tick(state, chargers, ScenarioClock(DEFAULT_ANCHOR), random.Random(seed), action,
                          correlation_id="c").message.payload


def test_meters_read_the_chargers_draws_summed_up_the_tree(state: DepotState) -> None:
    chargers = Chargers()
    chargers.plug_in("CP1/1", requested_watts=11000, min_watts=1380, energy_wh=1000, ref="s1")
    chargers.plug_in("CP1/2", requested_watts=7000, min_watts=1380, energy_wh=1000, ref="s2")
    payload = _tick(state, chargers, TelemetryAction())
    by_node = {r.node_id: r.measured_demand_watts for r in payload.readings}
    assert by_node[state.node_id("CP1/1")] == 11000
    assert by_node[state.node_id("CP1")] == 18000
    assert by_node[state.node_id("Feeder A")] == 18000
    assert by_node[state.node_id("CP2")] == 0
    # Every connector reports its demand, a free one asking for nothing.
    demands = {d.node_id: d.requested_watts for d in payload.demands}
    assert len(demands) == 8 and demands[state.node_id("CP1/2")] == 7000 and demands[state.node_id("CP2/1")] == 0


def test_degradation_patterns(state: DepotState) -> None:
    chargers = Chargers()
    chargers.plug_in("CP1/1", requested_watts=10000, min_watts=0, energy_wh=1000, ref="s")
    action = TelemetryAction(per_node={"CP1": "stale", "CP2": "missing", "CP3": "invalid"}, pattern="noisy",
                             stale_age_s=600, noise=0.1)
    payload = _tick(state, chargers, action)
    readings = {r.node_id: r for r in payload.readings}
    assert readings[state.node_id("CP1")].observed_at == DEFAULT_ANCHOR - timedelta(seconds=600)
    assert state.node_id("CP2") not in readings
    assert readings[state.node_id("CP3")].valid is False
    assert readings[state.node_id("CP1/1")].measured_demand_watts != 10000  # noisy
    dropouts = _tick(state, chargers, TelemetryAction(pattern="dropout", dropout_rate=1.0))
    assert dropouts.readings == []


def test_one_nodes_pattern_never_shifts_another_nodes_noise(state: DepotState) -> None:
    chargers = Chargers()
    chargers.plug_in("CP4/1", requested_watts=10000, min_watts=0, energy_wh=1000, ref="s")
    plain = _tick(state, chargers, TelemetryAction(pattern="noisy"))
    with_gap = _tick(state, chargers, TelemetryAction(pattern="noisy", per_node={"CP1": "missing"}))
    node = state.node_id("CP4/1")
    assert [r for r in plain.readings if r.node_id == node] == [r for r in with_gap.readings if r.node_id == node]


def _cycle(allocations: dict, outcome: CycleOutcome = CycleOutcome.CURTAILED) -> CycleResultRecord:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    return CycleResultRecord(
        cycle_id=uuid4(), microgrid_id=uuid4(), topology_version=1, started_at=now, ended_at=now, outcome=outcome,
        reason_codes=[], allocation_summary=AllocationSummaryRecord(
            total_allocated_watts=sum(allocations.values()), total_requested_watts=0,
            by_node=[NodeAllocationRecord(node_id=n, node_type=NodeType.CONNECTOR, allocated_watts=w,
                                          requested_watts=w) for n, w in allocations.items()]),
        audit=CycleAuditRecord(actor="t", source=RebalanceSource.OPERATOR_HTTP, correlation_id="c", inputs_digest="d"),
    )


def test_chargers_start_uncontrolled_then_follow_allocations_until_full() -> None:
    chargers = Chargers()
    chargers.plug_in("a", requested_watts=20000, min_watts=1000, energy_wh=5000, ref="s")
    assert chargers.draw("a") == 20000
    node = uuid4()
    chargers.follow(_cycle({node: 8000}), {node: "a"})
    assert chargers.draw("a") == 8000
    chargers.follow(_cycle({node: 0}, CycleOutcome.REJECTED), {node: "a"})
    assert chargers.draw("a") == 8000  # nothing is applied from a rejected cycle
    assert chargers.advance(0.5) == []
    assert chargers.advance(0.2) == ["a"]  # 8 kW for 0.7 h delivers the 5 kWh
    assert chargers.draw("a") == 0


def test_tree_edits_produce_the_intended_invalid_trees() -> None:
    layout = load_depot("deep-tree")
    s = DepotState.create(layout, Identities(run_namespace("t", 1, DEFAULT_ANCHOR)))
    s.node_ids["Feeder Main"] = uuid4()
    tree = [TopologyNodeInput(node_id=s.node_id("Feeder Main"), name="Feeder Main", node_type=NodeType.GRID_CONNECTION),
            *[n for n in s.authored_tree([]) if n.name != "Feeder Main"]]
    cycle = operator.apply_edit(s, tree, TopologyEdit(reparent={"node": "Bay West", "parent": "Bay West Row 1"}))
    parents = {n.node_id: n.parent_node_id for n in cycle}
    assert parents[s.node_id("Bay West")] == s.node_id("Bay West Row 1")
    orphan = operator.apply_edit(s, tree, TopologyEdit(detach="Bay East"))
    detached_parent = next(n.parent_node_id for n in orphan if n.name == "Bay East")
    assert detached_parent not in {n.node_id for n in orphan}
    removed = operator.apply_edit(s, tree, TopologyEdit(remove="W1-CP1"))
    assert s.node_id("W1-CP1") not in {n.node_id for n in removed}
    assert len(removed) == len(tree) - 1
