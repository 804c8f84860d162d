"""A cycle's stored output in the tabular layout holds the same result as the record layout, in fewer bytes,
and the same result always gives the same bytes, however its records are held (NFR-001 replay)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings

from libs.domain import decode_cycle_output, encode_cycle_output, is_tabular, to_canonical_json
from libs.domain.cycle import run_balancing_cycle
from libs.domain.cycle_result import CycleResult
from tests.unit.domain.strategies import depots


def _as_tuples(result: CycleResult) -> CycleResult:
    """The same result with its records built and held as plain tuples (no columns left by the cycle)."""
    summary = replace(result.allocation_summary, nodes=tuple(result.allocation_summary.nodes))
    return replace(result, allocation_summary=summary, demand_resolutions=tuple(result.demand_resolutions))


def _rows(table: dict) -> list[dict]:
    return [dict(zip(table["fields"], row, strict=True)) for row in table["rows"]]


@pytest.mark.req("NFR-001")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs=depots())
def test_the_tabular_output_holds_the_record_layouts_result_for_any_cycle(inputs) -> None:  # noqa: ANN001
    result = run_balancing_cycle(inputs)
    tabular, records = encode_cycle_output(result), encode_cycle_output(result, tabular=False)
    assert records == to_canonical_json(result)
    assert is_tabular(tabular) and not is_tabular(records)

    # The same values, only arranged: each table read back as records is the record layout's array.
    doc, expected = json.loads(tabular), json.loads(records)
    doc["allocation_summary"]["nodes"] = _rows(doc["allocation_summary"]["nodes"])
    doc["demand_resolutions"] = _rows(doc["demand_resolutions"])
    assert doc == expected

    # Both layouts decode to the result; the decoded result and one holding plain tuples write the same bytes.
    assert decode_cycle_output(tabular) == decode_cycle_output(records) == result
    assert encode_cycle_output(decode_cycle_output(tabular)) == tabular
    assert encode_cycle_output(_as_tuples(run_balancing_cycle(inputs))) == tabular
    assert encode_cycle_output(decode_cycle_output(records), tabular=False) == records


def test_the_fleet_depots_output_is_a_third_smaller() -> None:
    from benchmarks.cycle_output import fleet_depot

    result = run_balancing_cycle(fleet_depot())
    tabular, records = encode_cycle_output(result), encode_cycle_output(result, tabular=False)
    assert len(tabular) < 0.75 * len(records)
    fields = json.loads(tabular)["demand_resolutions"]["fields"]
    assert fields[:3] == ["node_id", "role", "source_mode"]  # the record's own order, not sorted


@pytest.mark.parametrize("age", [0.0, -0.0, 1e-05, 12.345678, 1e16, 5e-324])
def test_a_float_cell_is_written_as_the_record_layout_writes_it(age: float) -> None:
    from benchmarks.domain_cycle import depot

    result = run_balancing_cycle(depot(30, 40))
    first = replace(result.demand_resolutions[0], age_seconds=age)
    odd = replace(result, demand_resolutions=(first, *result.demand_resolutions[1:]))
    cell = json.loads(encode_cycle_output(odd))["demand_resolutions"]["rows"][0][8]
    assert encode_cycle_output(odd).count(repr(age).encode()) >= 1
    assert cell == age and decode_cycle_output(encode_cycle_output(odd)) == odd


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_float_is_refused_in_a_table_too(bad: float) -> None:
    from benchmarks.domain_cycle import depot

    result = run_balancing_cycle(depot(30, 40))
    odd = replace(result, demand_resolutions=(replace(result.demand_resolutions[0], age_seconds=bad),))
    with pytest.raises((TypeError, ValueError)):
        encode_cycle_output(odd)
