import pytest

from contracts.enums import SourceMode
from libs.domain.demand import FallbackBasis, TelemetryState, resolve_scope_demand
from tests.unit.domain.scenario import NOW, reading, rule


def resolve(r, fallback=None, fail_safe=None):
    return resolve_scope_demand("c1", r, fallback, NOW, 60, fail_safe)


@pytest.mark.req("FR-004")
def test_fresh_valid_reading_is_measured_with_inputs_and_threshold_recorded():
    got = resolve(reading("c1", 12_000, age_s=59), rule("c1", 30_000))
    assert (got.source_mode, got.effective_demand_watts) == (SourceMode.MEASURED, 12_000)
    assert (got.telemetry_state, got.age_seconds, got.freshness_threshold_seconds) == (TelemetryState.FRESH, 59, 60)


@pytest.mark.req("FR-004", "NFR-002")
@pytest.mark.parametrize(
    ("r", "state"),
    [
        (reading("c1", 12_000, age_s=61), TelemetryState.STALE),
        (reading("c1", 12_000, valid=False), TelemetryState.INVALID),
        (None, TelemetryState.MISSING),
        (reading("c1", 12_000, age_s=-120), TelemetryState.STALE),
    ],
)
def test_unusable_telemetry_falls_back_to_the_rule(r, state):
    got = resolve(r, rule("c1", 30_000))
    assert (got.source_mode, got.telemetry_state) == (SourceMode.FALLBACK_DERIVED, state)
    assert (got.effective_demand_watts, got.fallback_basis) == (30_000, FallbackBasis.FALLBACK_RULE)


@pytest.mark.req("NFR-004")
def test_fallback_never_assumes_less_than_the_last_valid_reading_plus_margin():
    got = resolve(reading("c1", 40_001, age_s=600), rule("c1", 30_000, margin=10))
    assert (got.effective_demand_watts, got.fallback_basis) == (44_002, FallbackBasis.LAST_KNOWN_WITH_MARGIN)
    invalid = resolve(reading("c1", 40_001, valid=False), rule("c1", 30_000, margin=10))
    assert invalid.effective_demand_watts == 30_000  # an invalid value is not a last known value


@pytest.mark.req("NFR-004")
def test_no_fallback_rule_fails_safe_to_the_tightest_cap():
    got = resolve(reading("c1", 5_000, age_s=600), None, fail_safe=32_000)
    assert (got.source_mode, got.fallback_basis) == (SourceMode.FALLBACK_DERIVED, FallbackBasis.FAIL_SAFE_TIGHTEST_CAP)
    assert (got.effective_demand_watts, got.fail_safe_limit_watts) == (32_000, 32_000)
