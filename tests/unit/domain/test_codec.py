import json
from dataclasses import replace
from datetime import datetime

import pytest

from contracts.enums import EnvelopeType, ForecastSourceHealth
from libs.domain.circuit_capacity import CircuitCapacity, ForecastSource
from libs.domain.codec import (
    canonical_bytes,
    canonical_inputs_json,
    cycle_inputs_from_dict,
    cycle_inputs_to_dict,
    to_canonical_json,
    to_jsonable,
)
from libs.domain.cycle import run_balancing_cycle
from libs.domain.limits import AggregateCap
from tests.unit.domain.scenario import cycle_inputs, demand, envelope, limit, reading, rule

INPUTS = cycle_inputs(
    node_limits=(limit("c1", 30_000),),
    envelopes=(envelope("fc", "gc1", EnvelopeType.FORECAST, (-5, 5, 45_000), (5, 10, 40_000), origin="cp"),),
    forecast_sources=(ForecastSource("cp", ForecastSourceHealth.STALE, "gc1"),),
    circuit_capacities=(CircuitCapacity("feeder-1", 60_000, 20_000),),
    aggregate_caps=(AggregateCap("cp-lb", 50_000),),
    telemetry=(reading("c1", 9_000, age_s=3.25),),
    fallback_rules=(rule("c1", 10_000, 5),),
    connector_demands=(demand("k1", 22_000, 6_000, weight=2), demand("k3", 11_000, priority=1)),
    correlation_id="corr-1",
)


@pytest.mark.req("NFR-001")
def test_inputs_survive_a_json_round_trip_and_replay_to_the_same_bytes():
    stored = json.loads(json.dumps(cycle_inputs_to_dict(INPUTS)))
    replayed = cycle_inputs_from_dict(stored)
    assert cycle_inputs_to_dict(replayed) == cycle_inputs_to_dict(INPUTS)
    assert to_canonical_json(run_balancing_cycle(replayed)) == to_canonical_json(run_balancing_cycle(INPUTS))


def test_canonical_json_is_sorted_compact_utc():
    text = to_canonical_json(run_balancing_cycle(INPUTS)).decode()
    assert '"evaluated_at":"2025-03-01T12:00:00.000000Z"' in text
    assert ": " not in text and ", " not in text.replace("W, ", "")
    data = json.loads(text)
    assert list(data) == sorted(data)


def test_decoder_is_strict():
    stored = cycle_inputs_to_dict(INPUTS)
    with pytest.raises(ValueError, match="unknown fields"):
        cycle_inputs_from_dict({**stored, "surprise": 1})
    with pytest.raises(ValueError, match="no timezone"):
        cycle_inputs_from_dict({**stored, "now": "2025-03-01T12:00:00"})
    with pytest.raises(ValueError, match="expected an integer"):
        cycle_inputs_from_dict({**stored, "rotation": "3"})
    with pytest.raises(ValueError, match="timezone-aware"):
        cycle_inputs_to_dict(replace(INPUTS, now=datetime(2025, 3, 1, 12)))


def test_inputs_joined_from_fields_are_the_canonical_bytes_whichever_fields_were_kept():
    """Balancing keeps the text of unchanged fields between cycles; the join must not drift from the whole."""
    from libs.domain.codec import canonical_inputs_fields, canonical_inputs_json, join_canonical_fields

    inputs = INPUTS
    whole = canonical_inputs_json(inputs)
    fields = canonical_inputs_fields(inputs)
    assert join_canonical_fields(fields) == whole
    kept = {name: fields[name] for name in ("nodes", "node_limits", "telemetry")}
    assert join_canonical_fields(canonical_inputs_fields(inputs, known=kept)) == whole
    assert json.loads(whole) == cycle_inputs_to_dict(inputs)


@pytest.mark.req("NFR-001")
def test_records_encoded_once_give_the_bytes_a_fresh_encoding_gives():
    """Input records keep their canonical text from the first time they are encoded; a later digest of
    inputs holding the same (or equal) records joins those texts, byte for byte what encoding from
    scratch gives."""
    first = INPUTS
    fresh = canonical_bytes(cycle_inputs_to_dict(first))
    assert canonical_inputs_json(first) == fresh
    # Equal records rebuilt from the stored form, in another order: the kept texts are joined.
    again = cycle_inputs_from_dict(json.loads(fresh))
    again = replace(again, telemetry=tuple(reversed(again.telemetry)))
    assert canonical_inputs_json(again) == fresh
    changed = replace(again, telemetry=(replace(again.telemetry[0], measured_watts=1),))
    assert canonical_inputs_json(changed) == canonical_bytes(cycle_inputs_to_dict(changed))


@pytest.mark.req("NFR-001")
def test_result_bytes_are_those_of_the_generic_encoder():
    """`to_canonical_json` encodes a result with the encoder generated for its class; the bytes are the
    generic encoder's, and a value the generated one does not take (a NaN) is refused the same way."""
    result = run_balancing_cycle(INPUTS)
    assert to_canonical_json(result) == canonical_bytes(to_jsonable(result))
    odd = replace(result, demand_resolutions=(replace(result.demand_resolutions[0], age_seconds=float("nan")),))
    with pytest.raises(ValueError):
        to_canonical_json(odd)
