"""Deterministic keys for translations: the same legacy input always yields the same request key,
source_ref and outgoing event ids, so a replay can never start a second cycle or a second envelope
(FR-015, NFR-005). Pure.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from uuid import UUID, uuid5

# Namespace of the adapter's derived event ids (uuid5 of the request key).
_EVENT_ID_NAMESPACE = UUID("6f4c2d0e-2a57-4a8e-9d3b-4c1f0b7e9a21")
MAX_REQUEST_KEY_LENGTH = 200  # RebalanceRequestedPayload.request_key
MAX_IDEMPOTENCY_KEY_LENGTH = 120


def _bounded(key: str) -> str:
    """Keys past the contract's length keep their prefix and end in a digest of the whole key."""
    if len(key) <= MAX_REQUEST_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[: MAX_REQUEST_KEY_LENGTH - 65]}#{digest}"


def legacy_event_request_key(legacy_event_id: UUID) -> str:
    return f"legacy-event:{legacy_event_id}"


_LEGACY_HTTP = "legacy-http:"


def legacy_http_request_key(circuit_id: UUID, idempotency_key: str) -> str:
    # Scoped by circuit: one Idempotency-Key reused on another circuit is another request.
    return _bounded(f"{_LEGACY_HTTP}{circuit_id}:{idempotency_key}")


def is_legacy_http_request_key(request_key: str) -> bool:
    """Whether `request_key` has the HTTP door's shape (whether the adapter made it, its audit says)."""
    return request_key.startswith(_LEGACY_HTTP)


def scheduler_request_key(schedule_ref: str, target_id: UUID, scheduled_for: datetime) -> str:
    """By occurrence (job, target circuit or microgrid, slot), not by event id: two scheduler replicas
    firing the same slot give one cycle, and one job fanned out over several circuits gives one each."""
    slot = scheduled_for.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return _bounded(f"scheduler:{schedule_ref}:{target_id}:{slot}")


def capacity_change_request_key(change_event_id: UUID) -> str:
    return f"capacity-change:{change_event_id}"


def derived_event_id(request_key: str, event_type: str) -> UUID:
    """The id of an event the adapter emits for `request_key`: stable across retries and replays."""
    return uuid5(_EVENT_ID_NAMESPACE, f"{event_type}|{request_key}")
