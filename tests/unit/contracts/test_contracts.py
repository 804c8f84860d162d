"""The contracts: every spec event has a model and a topic; envelopes validate strictly; artefacts match."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from contracts.enums import ReasonCode, order_reason_codes
from contracts.events import (
    LegacyRebalanceRequested,
    LegacyRebalanceRequestedPayload,
    ScheduledRebalancePeriodicPayload,
)
from contracts.records import CapabilityControlPointRecord
from contracts.topics import BY_NAME, SPEC_EVENT_NAMES, TOPICS, dead_letter_topic
from tools.contracts_cli import GENERATED, asyncapi_document, drift


@pytest.mark.req("FR-009")
def test_every_spec_event_has_one_model_and_one_topic_keyed_sensibly() -> None:
    assert len(SPEC_EVENT_NAMES) == 13
    for name in SPEC_EVENT_NAMES:
        spec = BY_NAME[name]
        assert spec.message.EVENT_TYPE == name
        if name.startswith("microgrid."):
            assert spec.key_fields == ("microgrid_id",), name
    assert len({t.message for t in TOPICS}) == len(TOPICS), "one model per topic"


def test_every_topic_appears_in_the_asyncapi_document() -> None:
    doc = asyncapi_document()
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == {t.name for t in TOPICS}
    assert set(SPEC_EVENT_NAMES) <= addresses


def test_checked_in_artefacts_match_the_code() -> None:
    assert GENERATED.exists(), "run `mgrid contracts generate`"
    assert drift() == [], "run `mgrid contracts generate` and commit the result"


def _legacy(**overrides: object) -> dict:
    msg = LegacyRebalanceRequested.create(
        LegacyRebalanceRequestedPayload(circuit_id=uuid.uuid4()), producer="legacy", occurred_at=datetime.now(UTC)
    )
    data = json.loads(msg.model_dump_json())
    data.update(overrides)
    return data


def test_unknown_fields_are_rejected_at_the_edge() -> None:
    with pytest.raises(ValidationError):
        LegacyRebalanceRequested.model_validate(_legacy(surprise=1))
    data = _legacy()
    data["payload"]["extra"] = "x"
    with pytest.raises(ValidationError):
        LegacyRebalanceRequested.model_validate(data)


def test_event_type_must_match_the_model() -> None:
    with pytest.raises(ValidationError):
        LegacyRebalanceRequested.model_validate(_legacy(event_type="microgrid.rebalance_requested"))


def test_times_are_normalised_to_utc_and_naive_times_rejected() -> None:
    data = _legacy(occurred_at="2026-11-27T12:00:00+02:00")
    assert LegacyRebalanceRequested.model_validate(data).occurred_at == datetime(2026, 11, 27, 10, tzinfo=UTC)
    with pytest.raises(ValidationError):
        LegacyRebalanceRequested.model_validate(_legacy(occurred_at="2026-11-27T12:00:00"))
    assert datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=1))).utcoffset()


def test_causation_carries_correlation_forward() -> None:
    first = LegacyRebalanceRequested.model_validate(_legacy())
    second = LegacyRebalanceRequested.create(
        first.payload, producer="x", occurred_at=datetime.now(UTC), causation=first
    )
    assert second.correlation_id == first.correlation_id
    assert second.causation_id == str(first.event_id)


@pytest.mark.req("FR-022")
def test_schedule_ref_only_for_local_control_points() -> None:
    with pytest.raises(ValidationError, match="schedule_ref"):
        CapabilityControlPointRecord(
            control_point_id=uuid.uuid4(),
            microgrid_id=uuid.uuid4(),
            capability_type="PEAK_SHAVING",
            state="enabled",
            control_source="EXTERNAL",
            schedule_ref="sched-1",
        )


def test_periodic_schedule_names_exactly_one_target() -> None:
    now = datetime.now(UTC)
    with pytest.raises(ValidationError):
        ScheduledRebalancePeriodicPayload(schedule_ref="s", scheduled_for=now)
    with pytest.raises(ValidationError):
        ScheduledRebalancePeriodicPayload(
            schedule_ref="s", scheduled_for=now, circuit_id=uuid.uuid4(), microgrid_id=uuid.uuid4()
        )


@pytest.mark.req("FR-012")
def test_reason_codes_follow_the_spec_precedence_deduplicated() -> None:
    codes = [
        "LEGACY_ALIAS_TRANSLATION_APPLIED",
        "NODE_CAP_EXCEEDED",
        "TOPOLOGY_INVALID",
        "NODE_CAP_EXCEEDED",
        "ANCESTOR_CAP_EXCEEDED",
        "AGGREGATE_CAP_EXCEEDED",
        "TELEMETRY_STALE_FALLBACK_USED",
    ]
    assert order_reason_codes(codes) == [
        ReasonCode.TOPOLOGY_INVALID,
        ReasonCode.ANCESTOR_CAP_EXCEEDED,
        ReasonCode.AGGREGATE_CAP_EXCEEDED,
        ReasonCode.NODE_CAP_EXCEEDED,
        ReasonCode.TELEMETRY_STALE_FALLBACK_USED,
        ReasonCode.LEGACY_ALIAS_TRANSLATION_APPLIED,
    ]


def test_one_dead_letter_topic_per_consumer_group() -> None:
    assert dead_letter_topic("balancing") == "dlq.balancing"
