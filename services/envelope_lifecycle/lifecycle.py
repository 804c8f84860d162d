"""One lifecycle transition of one envelope: status, history row and event, in the caller's transaction.

Every path that moves or re-evaluates an envelope (scheduled boundary or expiry, withdrawal, a change of
its forecast source's health) goes through `record_transition`, so the lifecycle history (D-025) and
the `microgrid.operating_envelope_lifecycle_evaluated` stream can never disagree.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from contracts.base import Message
from contracts.enums import EnvelopeStatus, ForecastSourceHealth
from contracts.events import OperatingEnvelopeLifecycleEvaluated, OperatingEnvelopeLifecycleEvaluatedPayload
from libs.platform.messaging.unit_of_work import UnitOfWork
from libs.platform.observability import get_metrics
from services.envelope_lifecycle.adapters import envelopes
from services.envelope_lifecycle.adapters.envelopes import StoredEnvelope

PRODUCER = "envelope_lifecycle"


class Transition(StrEnum):
    """History entries; the last four are the `timer_kind` of lifecycle_evaluated events."""

    RECEIVED = "RECEIVED"
    REJECTED = "REJECTED"
    BLOCK_BOUNDARY = "BLOCK_BOUNDARY"
    EXPIRY = "EXPIRY"
    WITHDRAWAL = "WITHDRAWAL"
    HEALTH_CHANGE = "HEALTH_CHANGE"


async def append_transition(
    uow: UnitOfWork,
    env: StoredEnvelope,
    *,
    transition: str,
    previous_status: EnvelopeStatus | None,
    status: EnvelopeStatus,
    at: datetime,
    timer_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """The lifecycle history row (D-025), and the transitions metric once the transaction commits."""
    await envelopes.append_history(
        uow.conn,
        env,
        transition=transition,
        previous_status=previous_status,
        status=status,
        evaluated_at=at,
        timer_id=timer_id,
        detail=detail,
    )
    uow.on_commit(lambda: get_metrics().count_envelope_transition(from_status=previous_status, to_status=status))


async def record_transition(
    uow: UnitOfWork,
    env: StoredEnvelope,
    *,
    transition: Transition,
    status: EnvelopeStatus,
    at: datetime,
    timer_id: int | None = None,
    forecast_source_health: ForecastSourceHealth | None = None,
    detail: dict[str, Any] | None = None,
    causation: Message | None = None,
) -> StoredEnvelope:
    """Apply `status` to `env` at `at`, append its history and emit lifecycle_evaluated. Returns the new state."""
    if status is not env.status:
        await envelopes.set_status(uow.conn, env.envelope_id, status)
    after = replace(env, status=status)
    await append_transition(
        uow,
        after,
        transition=transition.value,
        previous_status=env.status,
        status=status,
        at=at,
        timer_id=timer_id,
        detail={
            **(detail or {}),
            **({"forecast_source_health": forecast_source_health.value} if forecast_source_health else {}),
        },
    )
    record = after.record()
    assert record is not None  # only accepted envelopes (known types) have a lifecycle
    await uow.publish(
        OperatingEnvelopeLifecycleEvaluated.create(
            OperatingEnvelopeLifecycleEvaluatedPayload(
                envelope_id=env.envelope_id,
                microgrid_id=env.microgrid_id,
                origin_control_point_id=env.origin_control_point_id,
                node_id=env.node_id,
                status=status,
                previous_status=env.status,
                evaluated_at=at,
                timer_kind=transition.value,
                envelope=record,
                forecast_source_health=forecast_source_health,
            ),
            producer=PRODUCER,
            occurred_at=at,
            causation=causation,
        )
    )
    return after
