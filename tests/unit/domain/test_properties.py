"""Properties over random depots: caps hold, replays are byte-identical, uncertainty never raises, fairness."""

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.enums import ConstraintType, CycleOutcome, EnvelopeType, LimitStatus, NodeType
from libs.domain.allocation import AllocationState, allocate
from libs.domain.codec import to_canonical_json
from libs.domain.cycle import run_balancing_cycle
from tests.unit.domain.lp_reference import lp_max_min
from tests.unit.domain.scenario import NOW
from tests.unit.domain.strategies import THRESHOLD, allocation_problems, amplifying_problems, depots

LP_TOLERANCE = 1e-6  # the reference solves in floating point
PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def by_node(result):
    return {n.node_id: n for n in result.allocation_summary.nodes}


def fresh_generation_below(inputs, result):
    """Fresh generation per checked node's subtree, computed here independently of the domain."""
    parents = {n.node_id: n.parent_node_id for n in inputs.nodes}
    kinds = {n.node_id: n.node_type for n in inputs.nodes}
    out = dict.fromkeys(by_node(result), 0)
    for r in inputs.telemetry:
        age = (NOW - r.observed_at).total_seconds()
        if kinds.get(r.node_id) is NodeType.POWER_SOURCE and r.valid and abs(age) <= THRESHOLD:
            at = r.node_id
            while at is not None:
                if at in out:
                    out[at] += r.generation_watts
                at = parents.get(at)
    return out


@pytest.mark.req("FR-003", "FR-005", "FR-027")
@PROPERTY
@given(depots())
def test_no_cap_anywhere_is_exceeded(inputs):
    result = run_balancing_cycle(inputs)
    assert result.outcome is not CycleOutcome.REJECTED
    nodes = by_node(result)
    total = result.allocation_summary.total_allocated_watts
    generation = fresh_generation_below(inputs, result)
    # Against the effective constraints the cycle reports, counting the uncontrolled load it reports.
    for c in result.effective_constraints:
        if c.node_id is None or c.constraint_type is ConstraintType.GENERATION_CAP:
            continue
        placed = nodes[c.node_id].allocated_watts
        if placed:
            extra = generation[c.node_id] if c.constraint_type is ConstraintType.NET_CAP else 0
            assert placed + nodes[c.node_id].uncontrolled_watts <= c.limit_watts + extra, c
    # Against the raw inputs, independently: baseline caps, tightening envelopes, aggregate caps.
    for nl in inputs.node_limits:
        if (
            nl.status is LimitStatus.ACTIVE
            and nl.constraint_type is ConstraintType.CONSUMPTION_CAP
            and nl.node_id in nodes
        ):
            assert nodes[nl.node_id].allocated_watts <= nl.limit_watts
    for env in inputs.envelopes:
        value = env.limit_at(NOW)
        tightening = env.envelope_type in (EnvelopeType.TOU_LIMIT, EnvelopeType.OVERRIDE)
        if tightening and value is not None and env.node_id in nodes:
            assert nodes[env.node_id].allocated_watts <= value
    for cap in inputs.aggregate_caps:
        assert total <= cap.limit_watts
    for n in nodes.values():
        if n.node_type is NodeType.CONNECTOR and n.state is not None:
            assert 0 <= n.allocated_watts <= max(0, n.requested_watts)
            assert n.allocated_watts == 0 or n.allocated_watts >= n.min_watts


@pytest.mark.req("NFR-001")
@PROPERTY
@given(depots(), st.randoms(use_true_random=False))
def test_same_inputs_give_byte_identical_output_in_any_order(inputs, rnd):
    first = to_canonical_json(run_balancing_cycle(inputs))
    assert to_canonical_json(run_balancing_cycle(inputs)) == first
    shuffled = replace(
        inputs,
        nodes=tuple(rnd.sample(inputs.nodes, len(inputs.nodes))),
        node_limits=tuple(rnd.sample(inputs.node_limits, len(inputs.node_limits))),
        telemetry=tuple(rnd.sample(inputs.telemetry, len(inputs.telemetry))),
        connector_demands=tuple(rnd.sample(inputs.connector_demands, len(inputs.connector_demands))),
        fallback_rules=tuple(rnd.sample(inputs.fallback_rules, len(inputs.fallback_rules))),
    )
    assert to_canonical_json(run_balancing_cycle(shuffled)) == first


def _made_stale(inputs, picks):
    old = NOW - timedelta(seconds=THRESHOLD * 20)
    return replace(
        inputs,
        telemetry=tuple(replace(r, observed_at=old) if p else r for r, p in zip(inputs.telemetry, picks, strict=False)),
    )


@pytest.mark.req("NFR-004", "NFR-002")
@PROPERTY
@given(depots(minimums=False), st.lists(st.booleans(), min_size=40, max_size=40))
def test_losing_telemetry_freshness_never_increases_any_allocation(inputs, picks):
    before = by_node(run_balancing_cycle(inputs))
    after = by_node(run_balancing_cycle(_made_stale(inputs, picks)))
    for node_id, n in after.items():
        assert n.allocated_watts <= before[node_id].allocated_watts, node_id


@pytest.mark.req("NFR-004")
@PROPERTY
@given(depots(), st.lists(st.booleans(), min_size=40, max_size=40))
def test_with_minimum_power_losing_freshness_never_increases_the_total(inputs, picks):
    # With minimums, who is paused may change; the total under the microgrid never grows.
    before = run_balancing_cycle(inputs).allocation_summary.total_allocated_watts
    after = run_balancing_cycle(_made_stale(inputs, picks)).allocation_summary.total_allocated_watts
    assert after <= before


def _lp_check(problem):
    parent, end, headroom, requests = problem
    got = allocate(parent, end, headroom, requests)
    # Caps hold in the allocator itself.
    for i, h in enumerate(headroom):
        if h is not None:
            assert sum(w for r, w in zip(requests, got.watts, strict=True) if i <= r.node < end[i]) <= max(0, h)
    # The reference solves the same problem for the requests the allocator admitted.
    spec = []
    for r, state in zip(requests, got.states, strict=True):
        admitted = state in (AllocationState.ALLOCATED, AllocationState.CURTAILED)
        spec.append((r.node, r.min_watts if admitted else 0, r.requested_watts if admitted else 0, r.weight))
    reference = lp_max_min(parent, end, headroom, spec)
    for mine, ref in zip(got.watts, reference, strict=True):
        assert abs(mine - ref) <= 1 + LP_TOLERANCE, (got.watts, reference)


@pytest.mark.req("FR-003")
@settings(max_examples=40, deadline=None)
@given(allocation_problems())
def test_allocation_is_max_min_fair_against_an_lp_reference(problem):
    _lp_check(problem)


@pytest.mark.req("FR-003")
@settings(max_examples=25, deadline=None)
@given(allocation_problems(minimums=True))
def test_allocation_with_minimums_is_max_min_fair_among_the_admitted(problem):
    _lp_check(problem)


@pytest.mark.req("FR-003")
@settings(max_examples=10, deadline=None)
@given(amplifying_problems(50))
def test_amplifying_shapes_at_50_charge_points_stay_within_one_watt_of_the_lp(problem):
    _lp_check(problem)


@pytest.mark.req("FR-003")
@settings(max_examples=3, deadline=None)
@given(amplifying_problems(300))
def test_amplifying_shapes_at_300_charge_points_stay_within_one_watt_of_the_lp(problem):
    _lp_check(problem)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 60), st.integers(1, 3)), min_size=1, max_size=60),
    st.integers(0, 4_000),
    st.booleans(),
)
def test_every_level_solver_finds_the_same_saturation_level(spec, target, equal_weights):
    # The allocator picks a solver by size and shape; all must agree with the breakpoint sweep.
    from libs.domain import allocation as a

    low = [s for s, _, _ in spec]
    level = [s + extra for s, extra, _ in spec]
    weight = [1 if equal_weights else w for _, _, w in spec]
    target = max(target, sum(w * s for w, s in zip(weight, low, strict=True)))
    expected = a._weighted_level(low, level, weight, 0, len(spec), target)
    assert a._level_by_bisection(low, level, weight, 0, len(spec), target) == expected
    if equal_weights and not any(low):
        assert a._uniform_level(level, 0, len(spec), target) == expected


@pytest.mark.req("NFR-001")
@settings(max_examples=60, deadline=None)
@given(depots())
def test_fast_canonical_inputs_json_matches_the_generic_encoding(inputs):
    from libs.domain.codec import canonical_bytes, canonical_inputs_json, cycle_inputs_to_dict

    assert canonical_inputs_json(inputs) == canonical_bytes(cycle_inputs_to_dict(inputs))
