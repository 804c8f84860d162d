import hashlib
import random
import uuid
from dataclasses import replace

import pytest

from contracts.enums import (
    ConstraintType,
    CycleOutcome,
    EnvelopeType,
    ForecastSourceHealth,
    LimitSourceType,
    LimitStatus,
    NodeStatus,
    NodeType,
    RebalanceSource,
    SourceMode,
)
from contracts.enums import ReasonCode as RC
from libs.domain.allocation import AllocationState
from libs.domain.circuit_capacity import CircuitCapacity, ForecastBasis, ForecastSource
from libs.domain.codec import canonical_bytes, cycle_inputs_to_dict, to_canonical_json
from libs.domain.cycle import breach_id, run_balancing_cycle
from libs.domain.explanation import explain_cycle
from libs.domain.limits import AggregateCap, ConstraintSource
from tests.unit.domain.scenario import (
    MICROGRID,
    allocated,
    connector,
    cycle_inputs,
    demand,
    depot_nodes,
    envelope,
    grid_connection,
    limit,
    node,
    node_result,
    reading,
    rule,
)

DEMANDS = (demand("k1", 22_000), demand("k2", 22_000), demand("k3", 22_000))
CONS, NET, GEN = ConstraintType.CONSUMPTION_CAP, ConstraintType.NET_CAP, ConstraintType.GENERATION_CAP


def breach_codes(result):
    return {(b.node_id, b.constraint_type, b.reason_code) for b in result.breaches}


@pytest.mark.req("FR-001", "FR-005")
def test_uncongested_cycle_applies_every_request():
    result = run_balancing_cycle(cycle_inputs(node_limits=(limit("gc1", 100_000),), connector_demands=DEMANDS))
    assert result.outcome is CycleOutcome.APPLIED
    assert result.reason_codes == ()
    assert result.allocation_summary.total_allocated_watts == 66_000
    assert node_result(result, "k1").state is AllocationState.ALLOCATED


@pytest.mark.req("FR-003", "FR-005")
def test_aggregate_cap_breached_while_every_node_is_below_its_local_cap():
    # Edge case: "Aggregate cap breached while all individual nodes remain below local caps."
    nodes = [
        *depot_nodes(),
        grid_connection("gc2", "feeder-2"),
        node("cp9", "gc2", NodeType.CHARGE_POINT),
        connector("k9", "cp9"),
    ]
    inputs = cycle_inputs(
        nodes,
        node_limits=(limit("gc1", 70_000), limit("gc2", 30_000)),
        aggregate_caps=(AggregateCap("cp-lb", 60_000),),
        connector_demands=(*DEMANDS, demand("k9", 22_000)),
    )
    result = run_balancing_cycle(inputs)
    assert breach_codes(result) == {(None, CONS, RC.AGGREGATE_CAP_EXCEEDED)}
    assert result.reason_codes == (RC.AGGREGATE_CAP_EXCEEDED,)
    assert result.outcome is CycleOutcome.CURTAILED
    assert result.allocation_summary.total_allocated_watts == 60_000
    assert {allocated(result, k) for k in ("k1", "k2", "k3", "k9")} == {15_000}
    (breach,) = result.breaches
    assert (breach.constraint_ref, breach.effective_demand_watts, breach.resolved_limit_watts) == (
        "cp-lb",
        88_000,
        60_000,
    )
    assert breach.source_mode is SourceMode.MEASURED


@pytest.mark.req("FR-003", "FR-012")
def test_node_ancestor_and_aggregate_caps_are_enforced_in_one_cycle_with_ordered_codes():
    inputs = cycle_inputs(
        node_limits=(limit("c1", 30_000), limit("k3", 11_000), limit("gc1", 50_000)),
        aggregate_caps=(AggregateCap("cp-lb", 40_000),),
        connector_demands=DEMANDS,
        legacy_alias_applied=True,
        rebalance_source=RebalanceSource.LEGACY_ALIAS,
    )
    result = run_balancing_cycle(inputs)
    assert breach_codes(result) == {
        (None, CONS, RC.AGGREGATE_CAP_EXCEEDED),
        ("gc1", CONS, RC.ANCESTOR_CAP_EXCEEDED),
        ("c1", CONS, RC.ANCESTOR_CAP_EXCEEDED),
        ("k3", CONS, RC.NODE_CAP_EXCEEDED),
    }
    assert result.reason_codes == (
        RC.ANCESTOR_CAP_EXCEEDED,
        RC.AGGREGATE_CAP_EXCEEDED,
        RC.NODE_CAP_EXCEEDED,
        RC.LEGACY_ALIAS_TRANSLATION_APPLIED,
    )
    assert (allocated(result, "k1"), allocated(result, "k2"), allocated(result, "k3")) == (14_500, 14_500, 11_000)
    assert node_result(result, "k3").binding.node_id == "k3"
    assert node_result(result, "k1").binding.node_id is None  # the aggregate bound first


@pytest.mark.req("FR-003")
def test_uncontrolled_load_uses_headroom_first_and_over_cap_by_itself_is_a_node_breach():
    # c1's meter reads 20 kW while its connectors draw 5 kW: 15 kW is a building nobody controls.
    inputs = cycle_inputs(
        node_limits=(limit("c1", 30_000), limit("cp2", 10_000)),
        telemetry=(reading("c1", 20_000), reading("k1", 5_000), reading("cp2", 12_000)),
        connector_demands=DEMANDS,
    )
    result = run_balancing_cycle(inputs)
    assert node_result(result, "c1").uncontrolled_watts == 15_000
    assert allocated(result, "k1") + allocated(result, "k2") == 15_000
    assert allocated(result, "k3") == 0
    assert ("cp2", CONS, RC.NODE_CAP_EXCEEDED) in breach_codes(result)
    assert ("c1", CONS, RC.ANCESTOR_CAP_EXCEEDED) in breach_codes(result)


@pytest.mark.req("FR-004", "NFR-002", "NFR-004")
def test_stale_telemetry_uses_the_fallback_rule_and_enforcement_continues():
    # Edge case: "Telemetry missing/stale for one or more nodes."
    fresh = cycle_inputs(
        node_limits=(limit("c1", 30_000),),
        telemetry=(reading("c1", 10_000),),
        fallback_rules=(rule("c1", 18_000),),
        connector_demands=DEMANDS,
    )
    stale = replace(fresh, telemetry=(reading("c1", 10_000, age_s=300),))
    before, after = run_balancing_cycle(fresh), run_balancing_cycle(stale)
    assert allocated(before, "c1") == 20_000
    assert allocated(after, "c1") == 12_000  # less under uncertainty, never more
    assert after.reason_codes == (RC.ANCESTOR_CAP_EXCEEDED, RC.TELEMETRY_STALE_FALLBACK_USED)
    (res,) = [r for r in after.demand_resolutions if r.node_id == "c1"]
    assert (res.source_mode, res.effective_demand_watts, res.freshness_threshold_seconds) == (
        SourceMode.FALLBACK_DERIVED,
        18_000,
        60,
    )
    assert res.fallback_rule == rule("c1", 18_000)
    (breach,) = after.breaches
    assert breach.source_mode is SourceMode.FALLBACK_DERIVED


@pytest.mark.req("NFR-004", "NFR-002")
def test_no_usable_telemetry_and_no_rule_fails_safe_and_says_so():
    inputs = cycle_inputs(
        node_limits=(limit("c1", 30_000),),
        telemetry=(reading("c1", 10_000, valid=False),),
        connector_demands=DEMANDS,
    )
    result = run_balancing_cycle(inputs)
    assert (allocated(result, "k1"), allocated(result, "k2"), allocated(result, "k3")) == (0, 0, 22_000)
    assert result.missing_inputs == ("c1",)
    assert result.safe_action_taken
    assert RC.TELEMETRY_STALE_FALLBACK_USED in result.reason_codes
    assert result.reason_codes[-1] is RC.TELEMETRY_INSUFFICIENT


@pytest.mark.req("NFR-004")
def test_stale_connector_draw_is_not_subtracted_from_the_meter_above_it():
    inputs = cycle_inputs(
        node_limits=(limit("c1", 30_000),),
        telemetry=(reading("c1", 20_000), reading("k1", 8_000, age_s=300)),
        fallback_rules=(rule("c1", 0),),
        connector_demands=DEMANDS,
    )
    result = run_balancing_cycle(inputs)
    assert node_result(result, "c1").uncontrolled_watts == 20_000
    assert allocated(result, "c1") == 10_000
    assert RC.TELEMETRY_STALE_FALLBACK_USED in result.reason_codes


@pytest.mark.req("FR-005", "FR-012")
def test_invalid_topology_is_rejected_before_anything_is_allocated():
    nodes = [*depot_nodes(), node("x", "y", NodeType.VIRTUAL), node("y", "x", NodeType.VIRTUAL)]
    result = run_balancing_cycle(cycle_inputs(nodes, connector_demands=DEMANDS, expected_topology_version=6))
    assert result.outcome is CycleOutcome.REJECTED
    assert result.reason_codes == (RC.TOPOLOGY_INVALID, RC.TOPOLOGY_VERSION_CONFLICT)
    assert result.allocation_summary.nodes == () and result.breaches == ()
    assert result.topology_violations[0].node_ids == ("x", "y")


@pytest.mark.req("FR-005")
def test_version_conflict_rejects_the_cycle():
    result = run_balancing_cycle(cycle_inputs(connector_demands=DEMANDS, expected_topology_version=6))
    assert (result.outcome, result.reason_codes) == (CycleOutcome.REJECTED, (RC.TOPOLOGY_VERSION_CONFLICT,))
    assert (result.expected_topology_version, result.topology_version) == (6, 7)
    ok = run_balancing_cycle(cycle_inputs(connector_demands=DEMANDS, expected_topology_version=7))
    assert ok.outcome is CycleOutcome.APPLIED


@pytest.mark.req("FR-001")
def test_subtree_scope_allocates_inside_while_ancestor_caps_count_the_rest():
    inputs = cycle_inputs(
        node_limits=(limit("gc1", 40_000),),
        telemetry=(reading("k3", 16_000),),
        connector_demands=DEMANDS,
        scope_node_id="c1",
    )
    result = run_balancing_cycle(inputs)
    assert result.node_id == "c1"
    assert [n.node_id for n in result.allocation_summary.nodes] == ["gc1", "c1", "cp1", "k1", "k2"]
    # k3 is outside the scope: it keeps drawing, counted at no less than its 22 kW request.
    assert node_result(result, "gc1").uncontrolled_watts == 22_000
    assert (allocated(result, "k1"), allocated(result, "k2")) == (9_000, 9_000)
    assert breach_codes(result) == {("gc1", CONS, RC.ANCESTOR_CAP_EXCEEDED)}


def test_unknown_scope_node_is_rejected():
    result = run_balancing_cycle(cycle_inputs(connector_demands=DEMANDS, scope_node_id="nope"))
    assert (result.outcome, result.reason_codes) == (CycleOutcome.REJECTED, (RC.TOPOLOGY_INVALID,))


def test_connectors_under_a_node_in_maintenance_get_nothing():
    nodes = depot_nodes()
    nodes[2] = replace(nodes[2], status=NodeStatus.MAINTENANCE)  # cp1
    result = run_balancing_cycle(cycle_inputs(nodes, connector_demands=DEMANDS))
    assert node_result(result, "k1").state is AllocationState.UNAVAILABLE
    assert (allocated(result, "k1"), allocated(result, "k3")) == (0, 22_000)


def with_solar(cap, generation, age_s=0):
    """The depot plus a PV inverter on gc1 reporting ``generation``."""
    return cycle_inputs(
        [*depot_nodes(), node("pv", "gc1", NodeType.POWER_SOURCE)],
        node_limits=(cap,),
        telemetry=(reading("pv", generation=generation, age_s=age_s),),
        fallback_rules=(rule("pv", 0),),
        connector_demands=DEMANDS,
    )


@pytest.mark.req("FR-003")
def test_net_cap_counts_fresh_local_generation_and_stale_generation_as_zero():
    fresh = run_balancing_cycle(with_solar(limit("gc1", 40_000, NET), 20_000))
    assert fresh.allocation_summary.total_allocated_watts == 60_000
    stale = run_balancing_cycle(with_solar(limit("gc1", 40_000, NET), 20_000, age_s=600))
    assert stale.allocation_summary.total_allocated_watts == 40_000
    assert ("gc1", NET, RC.ANCESTOR_CAP_EXCEEDED) in breach_codes(stale)


@pytest.mark.req("FR-014")
def test_generation_cap_breach_is_reported_without_touching_charging():
    result = run_balancing_cycle(with_solar(limit("pv", 10_000, GEN), 15_000))
    assert result.outcome is CycleOutcome.APPLIED
    assert breach_codes(result) == {("pv", GEN, RC.NODE_CAP_EXCEEDED)}
    assert result.allocation_summary.total_allocated_watts == 66_000


@pytest.mark.req("FR-027", "FR-028")
def test_active_envelopes_and_the_feeder_capacity_constrain_the_cycle_with_provenance():
    inputs = cycle_inputs(
        node_limits=(
            limit("gc1", 80_000),
            limit("c1", 50_000, ref="nl-c1"),
            replace(limit("c1", 10_000, ref="nl-old"), status=LimitStatus.INACTIVE),
        ),
        envelopes=(
            envelope("fc", "gc1", EnvelopeType.FORECAST, (-5, 5, 45_000), origin="cp-oscp"),
            envelope("tou", "c1", EnvelopeType.TOU_LIMIT, (-5, 5, 20_000)),
            envelope("later", "c1", EnvelopeType.OVERRIDE, (5, 10, 1_000)),
        ),
        forecast_sources=(ForecastSource("cp-oscp", ForecastSourceHealth.HEALTHY),),
        circuit_capacities=(CircuitCapacity("feeder-1", 60_000, 20_000),),
        connector_demands=DEMANDS,
    )
    result = run_balancing_cycle(inputs)
    (circuit,) = result.circuit_capacities
    assert (circuit.circuit_id, circuit.effective_capacity_watts, circuit.forecast_basis) == (
        "feeder-1",
        45_000,
        ForecastBasis.PRIMARY_FORECAST,
    )
    constraints = {(c.node_id, c.constraint_type): c for c in result.effective_constraints}
    gc1 = constraints[("gc1", CONS)]
    assert (gc1.limit_watts, gc1.binding.source, gc1.binding.ref) == (45_000, ConstraintSource.PRIMARY_FORECAST, "fc")
    c1 = constraints[("c1", CONS)]
    assert (c1.limit_watts, c1.binding.ref) == (20_000, "tou")
    assert {c.ref for c in c1.candidates} == {"tou", "nl-c1"}
    assert allocated(result, "c1") == 20_000 and allocated(result, "k3") == 22_000
    assert {(b.node_id, b.constraint_ref) for b in result.breaches} == {("c1", "tou"), ("gc1", "fc")}


@pytest.mark.req("FR-030", "NFR-004")
def test_offline_forecast_source_on_an_unmanaged_node_without_fail_safe_allows_nothing():
    inputs = cycle_inputs(
        envelopes=(envelope("fc", "cp2", EnvelopeType.FORECAST, (-5, 5, 45_000), origin="cp-der"),),
        forecast_sources=(ForecastSource("cp-der", ForecastSourceHealth.OFFLINE),),
        node_limits=(limit("cp1", 30_000, source=LimitSourceType.FAIL_SAFE),),
        connector_demands=DEMANDS,
    )
    result = run_balancing_cycle(inputs)
    assert allocated(result, "k3") == 0
    constraint = next(c for c in result.effective_constraints if c.node_id == "cp2")
    assert (constraint.binding.source, constraint.binding.ref, constraint.forecast_basis) == (
        ConstraintSource.NODE_FAIL_SAFE,
        "cp-der",
        ForecastBasis.FAIL_SAFE,
    )


def test_minimum_power_pauses_deterministically_and_rotates():
    inputs = cycle_inputs(
        node_limits=(limit("gc1", 30_000),),
        connector_demands=(demand("k1", 22_000, 11_000), demand("k2", 22_000, 11_000), demand("k3", 22_000, 11_000)),
    )
    paused = []
    for rotation in range(3):
        result = run_balancing_cycle(replace(inputs, rotation=rotation))
        states = {k: node_result(result, k).state for k in ("k1", "k2", "k3")}
        assert list(states.values()).count(AllocationState.PAUSED) == 1
        paused.append(next(k for k, s in states.items() if s is AllocationState.PAUSED))
        assert result.allocation_summary.total_allocated_watts == 30_000
    assert sorted(paused) == ["k1", "k2", "k3"]


@pytest.mark.req("NFR-001")
def test_same_inputs_give_byte_identical_results_whatever_the_input_order():
    inputs = cycle_inputs(
        node_limits=(limit("c1", 30_000), limit("gc1", 50_000)),
        telemetry=(reading("c1", 12_000), reading("k1", 4_000), reading("cp2", 1_000, age_s=100)),
        fallback_rules=(rule("cp2", 2_000),),
        connector_demands=DEMANDS,
    )
    first = to_canonical_json(run_balancing_cycle(inputs))
    assert first == to_canonical_json(run_balancing_cycle(inputs))
    rng = random.Random(5)
    for _ in range(5):
        shuffled = replace(
            inputs,
            nodes=tuple(rng.sample(inputs.nodes, len(inputs.nodes))),
            telemetry=tuple(rng.sample(inputs.telemetry, len(inputs.telemetry))),
            connector_demands=tuple(rng.sample(inputs.connector_demands, 3)),
        )
        assert to_canonical_json(run_balancing_cycle(shuffled)) == first


@pytest.mark.req("NFR-001")
def test_inputs_digest_is_the_sha256_of_the_canonical_inputs():
    inputs = cycle_inputs(connector_demands=DEMANDS)
    result = run_balancing_cycle(inputs)
    assert result.inputs_digest == hashlib.sha256(canonical_bytes(cycle_inputs_to_dict(inputs))).hexdigest()
    other = run_balancing_cycle(replace(inputs, connector_demands=DEMANDS[:2]))
    assert other.inputs_digest != result.inputs_digest


def test_explanation_names_the_binding_constraint_its_source_and_the_shortfall():
    inputs = cycle_inputs(
        node_limits=(limit("c1", 30_000, ref="fuse-c1"),),
        telemetry=(reading("c1", 10_000, age_s=300),),
        fallback_rules=(rule("c1", 10_000),),
        connector_demands=DEMANDS,
    )
    text = explain_cycle(run_balancing_cycle(inputs))
    assert "CURTAILED" in text
    assert "Connector k1: 10000 W of 22000 W (-12000 W), bound by CONSUMPTION_CAP 30000 W on node c1" in text
    assert "NODE_LIMIT fuse-c1" in text and "FALLBACK_DERIVED" in text
    assert "Telemetry for c1 (SCOPE) was STALE" in text
    rejected = explain_cycle(
        run_balancing_cycle(replace(inputs, microgrid=replace(MICROGRID, version=8), expected_topology_version=7))
    )
    assert "Expected topology v7, found v8" in rejected


def test_breach_ids_are_the_uuid5_of_their_name() -> None:
    names = ["c/aggregate/CONSUMPTION_CAP", "", "cycle-1/cp00001/NET_CAP", "é漢/\u2028/x" * 20]
    names += [f"{uuid.UUID(int=random.Random(i).getrandbits(128))}/n{i}/GENERATION_CAP" for i in range(200)]
    for name in names:
        assert breach_id(name) == str(uuid.uuid5(uuid.NAMESPACE_URL, name))
