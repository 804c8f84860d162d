"""The result bytes orjson writes (`to_canonical_json`'s fast path) are the generic encoder's, byte for
byte, on random depots and on the cases where orjson and json.dumps would differ (floats, datetimes,
text escapes): replay and the output digest depend on it."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings

from libs.domain.codec import _native_canonical_json, canonical_bytes, canonical_json_of, to_jsonable
from libs.domain.cycle import run_balancing_cycle
from tests.unit.domain.strategies import depots


@pytest.mark.req("NFR-001")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs=depots())
def test_orjson_writes_the_generic_encoders_bytes_for_any_cycle_result(inputs) -> None:  # noqa: ANN001
    result = run_balancing_cycle(inputs)
    assert _native_canonical_json(result) == canonical_bytes(to_jsonable(result)) == canonical_json_of(result)


@pytest.mark.req("NFR-001")
@pytest.mark.parametrize("age", [0.0, -0.0, 1e-05, 2.5e-4, 12.345678, 1e16, 1e22, -3.5, 5e-324])
def test_floats_are_written_as_json_dumps_writes_them(age: float) -> None:
    from benchmarks.domain_cycle import depot

    result = run_balancing_cycle(depot(30, 40))
    odd = replace(result, demand_resolutions=(replace(result.demand_resolutions[0], age_seconds=age),
                                              *result.demand_resolutions[1:]))
    assert _native_canonical_json(odd) == canonical_bytes(to_jsonable(odd))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_float_is_refused_not_written_as_null(bad: float) -> None:
    from benchmarks.domain_cycle import depot

    result = run_balancing_cycle(depot(30, 40))
    odd = replace(result, demand_resolutions=(replace(result.demand_resolutions[0], age_seconds=bad),))
    with pytest.raises((TypeError, ValueError)):
        _native_canonical_json(odd)


def test_text_escapes_match_json_dumps() -> None:
    from benchmarks.domain_cycle import depot

    result = run_balancing_cycle(depot(30, 40))
    odd = replace(result, microgrid_id="q\"\\\x00\x1f\x7f\u2028é漢\n\t")
    assert _native_canonical_json(odd) == canonical_bytes(to_jsonable(odd))
