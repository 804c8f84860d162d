import pytest

from contracts.enums import EnvelopeStatus, EnvelopeType, ForecastSourceHealth
from libs.domain.circuit_capacity import (
    ForecastBasis,
    ForecastSource,
    GapPolicy,
    resolve_effective_circuit_capacity,
)
from libs.domain.limits import ConstraintSource
from tests.unit.domain.scenario import NOW, envelope

HEALTHY, STALE, OFFLINE = ForecastSourceHealth.HEALTHY, ForecastSourceHealth.STALE, ForecastSourceHealth.OFFLINE
FORECAST = envelope("fc", "gc1", EnvelopeType.FORECAST, (-30, 30, 70_000), origin="cp-oscp")
FALLBACK = envelope("fb", "gc1", EnvelopeType.FALLBACK, (-30, 30, 40_000), origin="cp-oscp-fallback")


def capacity(envelopes, health=None, gap_policy=GapPolicy.DEFAULT_CAPACITY):
    sources = [ForecastSource("cp-oscp", health)] if health else []
    return resolve_effective_circuit_capacity(
        circuit_id="feeder-1",
        node_id="gc1",
        envelopes=envelopes,
        forecast_sources=sources,
        default_capacity_watts=100_000,
        fail_safe_capacity_watts=25_000,
        now=NOW,
        gap_policy=gap_policy,
    )


@pytest.mark.req("FR-028")
def test_healthy_primary_forecast_sets_the_capacity():
    got = capacity([FORECAST, FALLBACK], HEALTHY)
    assert got.effective_capacity_watts == 70_000
    assert got.forecast_basis is ForecastBasis.PRIMARY_FORECAST
    assert (got.binding.source, got.binding.ref) == (ConstraintSource.PRIMARY_FORECAST, "fc")


@pytest.mark.req("FR-030")
@pytest.mark.parametrize("health", [STALE, OFFLINE])
def test_stale_or_offline_source_uses_the_fallback_forecast(health):
    got = capacity([FORECAST, FALLBACK], health)
    assert (got.effective_capacity_watts, got.forecast_basis) == (40_000, ForecastBasis.FALLBACK_FORECAST)


@pytest.mark.req("FR-030")
@pytest.mark.parametrize("health", [STALE, OFFLINE])
def test_without_a_valid_fallback_the_circuit_fail_safe_applies(health):
    expired_fallback = envelope("fb", "gc1", EnvelopeType.FALLBACK, (-30, 30, 40_000), status=EnvelopeStatus.EXPIRED)
    got = capacity([FORECAST, expired_fallback], health)
    assert (got.effective_capacity_watts, got.forecast_basis) == (25_000, ForecastBasis.FAIL_SAFE)
    assert got.binding.source is ConstraintSource.CIRCUIT_FAIL_SAFE


@pytest.mark.req("FR-030", "NFR-004")
def test_a_forecast_source_of_unknown_health_counts_as_offline():
    got = capacity([FORECAST])  # no health reported for cp-oscp
    assert (got.effective_capacity_watts, got.forecast_health) == (25_000, OFFLINE)


@pytest.mark.req("FR-031")
def test_healthy_source_with_no_active_block_applies_the_gap_policy():
    later = envelope("fc", "gc1", EnvelopeType.FORECAST, (30, 60, 70_000), origin="cp-oscp")
    got = capacity([later], HEALTHY)
    assert (got.effective_capacity_watts, got.forecast_basis) == (100_000, ForecastBasis.GAP_POLICY)
    assert got.binding.source is ConstraintSource.CIRCUIT_DEFAULT
    strict = capacity([later], HEALTHY, GapPolicy.FAIL_SAFE_CAPACITY)
    assert strict.effective_capacity_watts == 25_000


@pytest.mark.req("FR-028")
def test_tou_limits_and_overrides_only_tighten():
    tou = envelope("tou", "gc1", EnvelopeType.TOU_LIMIT, (-10, 10, 60_000))
    loose_override = envelope("ov", "gc1", EnvelopeType.OVERRIDE, (-10, 10, 90_000))
    got = capacity([FORECAST, tou, loose_override], HEALTHY)
    assert got.effective_capacity_watts == 60_000
    assert got.binding.ref == "tou"
    assert [c.ref for c in got.candidates] == ["tou", "fc", "ov"]


@pytest.mark.req("FR-028")
def test_no_forecast_source_means_default_capacity_and_other_nodes_do_not_count():
    elsewhere = envelope("tou", "c1", EnvelopeType.TOU_LIMIT, (-10, 10, 1_000))
    got = capacity([elsewhere])
    assert (got.effective_capacity_watts, got.forecast_basis) == (100_000, ForecastBasis.NO_FORECAST_SOURCE)


@pytest.mark.req("FR-028", "NFR-001")
def test_resolution_is_a_pure_function_of_its_inputs():
    assert capacity([FORECAST, FALLBACK], STALE) == capacity([FALLBACK, FORECAST], STALE)


@pytest.mark.req("FR-028", "FR-029")
@pytest.mark.parametrize(
    ("envelopes", "health", "basis", "binding_envelope"),
    [
        ([FORECAST], HEALTHY, "PRIMARY_FORECAST", "fc"),
        ([FORECAST, FALLBACK], STALE, "FALLBACK_FORECAST", "fb"),
        ([FORECAST], OFFLINE, "FAIL_SAFE", None),
        ([envelope("fc", "gc1", EnvelopeType.FORECAST, (30, 60, 70_000), origin="cp-oscp")], HEALTHY, "GAP_POLICY",
         None),
        ([FORECAST, envelope("tou", "gc1", EnvelopeType.TOU_LIMIT, (-10, 10, 60_000))], HEALTHY, "TOU_LIMIT", "tou"),
        ([envelope("ov", "gc1", EnvelopeType.OVERRIDE, (-10, 10, 60_000))], None, "OVERRIDE", "ov"),
        ([], None, "CIRCUIT_DEFAULT", None),
    ],
    ids=["primary", "fallback", "fail-safe", "gap", "tou", "override", "no-source"],
)
def test_the_basis_and_the_binding_envelope_name_what_sets_the_capacity(envelopes, health, basis, binding_envelope):
    got = capacity(envelopes, health)
    assert (got.basis, got.binding_envelope_id) == (basis, binding_envelope)
