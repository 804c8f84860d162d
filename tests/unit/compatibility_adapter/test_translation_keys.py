"""Deterministic keys: the same legacy input always names the same request, so replays start no second cycle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest

from services.compatibility_adapter.translation_keys import (
    MAX_REQUEST_KEY_LENGTH,
    derived_event_id,
    legacy_event_request_key,
    legacy_http_request_key,
    scheduler_request_key,
)


@pytest.mark.req("NFR-005", "FR-015")
def test_keys_are_a_function_of_the_legacy_input() -> None:
    event_id, circuit = uuid4(), uuid4()
    assert legacy_event_request_key(event_id) == legacy_event_request_key(event_id)
    assert legacy_event_request_key(event_id) != legacy_event_request_key(uuid4())
    assert legacy_http_request_key(circuit, "k1") == legacy_http_request_key(circuit, "k1")
    assert legacy_http_request_key(circuit, "k1") != legacy_http_request_key(uuid4(), "k1")
    key = legacy_event_request_key(event_id)
    assert derived_event_id(key, "a") == derived_event_id(key, "a") != derived_event_id(key, "b")


@pytest.mark.req("NFR-005")
def test_a_schedule_occurrence_is_one_key_whatever_the_time_zone() -> None:
    slot, target = datetime(2025, 1, 1, 12, tzinfo=UTC), uuid4()
    same_slot = slot.astimezone(timezone(timedelta(hours=2)))
    assert scheduler_request_key("job", target, slot) == scheduler_request_key("job", target, same_slot)
    assert scheduler_request_key("job", target, slot) != scheduler_request_key(
        "job", target, slot + timedelta(minutes=5)
    )
    # one job fanned out over several circuits: one cycle each
    assert scheduler_request_key("job", target, slot) != scheduler_request_key("job", uuid4(), slot)


def test_long_keys_stay_within_the_contract_and_distinct() -> None:
    circuit = uuid4()
    a = legacy_http_request_key(circuit, "x" * 119 + "a")
    b = legacy_http_request_key(circuit, "x" * 119 + "b")
    long_a = scheduler_request_key("s" * 300 + "a", circuit, datetime(2025, 1, 1, tzinfo=UTC))
    long_b = scheduler_request_key("s" * 300 + "b", circuit, datetime(2025, 1, 1, tzinfo=UTC))
    assert all(len(k) <= MAX_REQUEST_KEY_LENGTH for k in (a, b, long_a, long_b))
    assert a != b and long_a != long_b
