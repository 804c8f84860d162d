"""The one translate path every legacy door ends in: a circuit resolved to its microgrid target, then
either `apply_alias` (one microgrid.rebalance_requested + one compatibility.circuit_alias_applied,
recorded once per legacy ref) or `refuse_translation` (an audit row with the Appendix A reason code and
compatibility.circuit_alias_failed; the scheduler door publishes its own scheduler_dispatch_failed
instead). The adapter translates and never decides: the microgrid stays the source of truth (D-011,
NFR-006).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from contracts.base import Message
from contracts.enums import AliasPath, RebalanceSource
from contracts.events import (
    CircuitAliasApplied,
    CircuitAliasAppliedPayload,
    CircuitAliasFailed,
    CircuitAliasFailedPayload,
    RebalanceRequested,
    RebalanceRequestedPayload,
)
from libs.domain.circuit_alias import AliasFailure, AliasScope, AliasTarget, resolve_circuit_alias
from libs.platform.messaging.unit_of_work import UnitOfWork
from libs.platform.observability import get_metrics
from services.compatibility_adapter.adapters import alias_read_model, translation_audit
from services.compatibility_adapter.adapters.translation_audit import Translation
from services.compatibility_adapter.translation_keys import derived_event_id

PRODUCER = "compatibility_adapter"

metrics = get_metrics()


@dataclass(frozen=True)
class AliasedRequest:
    """A legacy rebalance translated to its microgrid target (or found already translated)."""

    circuit_id: UUID
    microgrid_id: UUID
    node_id: UUID
    request_key: str
    correlation_id: str
    earlier_at: datetime | None = None  # found already translated: when that translation was recorded


async def apply_alias(
    uow: UnitOfWork,
    *,
    request: AliasedRequest,
    path: AliasPath,
    legacy_ref: str,
    source: RebalanceSource,
    requested_by: str,
    now: datetime,
    causation: Message | None = None,
) -> bool:
    """Record the translation and request the one cycle; False (nothing published) on a replay."""
    first_time = await translation_audit.record(
        uow.conn,
        Translation(
            legacy_ref=legacy_ref,
            path=path,
            result="APPLIED",
            correlation_id=request.correlation_id,
            recorded_at=now,
            circuit_id=request.circuit_id,
            microgrid_id=request.microgrid_id,
            node_id=request.node_id,
            request_key=request.request_key,
        ),
    )
    if not first_time:
        return False
    envelope: dict[str, Any] = {
        "producer": PRODUCER,
        "occurred_at": now,
        "correlation_id": request.correlation_id,
        "causation": causation,
    }
    await uow.publish(
        RebalanceRequested.create(
            RebalanceRequestedPayload(
                microgrid_id=request.microgrid_id,
                node_id=request.node_id,
                source=source,
                correlation_id=request.correlation_id,
                request_key=request.request_key,
                requested_by=requested_by,
                circuit_id=request.circuit_id,
            ),
            event_id=derived_event_id(request.request_key, RebalanceRequested.EVENT_TYPE),
            **envelope,
        )
    )
    await publish_alias_applied(
        uow,
        payload=CircuitAliasAppliedPayload(
            circuit_id=request.circuit_id,
            microgrid_id=request.microgrid_id,
            node_id=request.node_id,
            path=path,
            legacy_ref=legacy_ref,
            rebalance_request_key=request.request_key,
        ),
        event_id=derived_event_id(request.request_key, CircuitAliasApplied.EVENT_TYPE),
        **envelope,
    )
    return True


async def publish_alias_applied(
    uow: UnitOfWork,
    *,
    payload: CircuitAliasAppliedPayload,
    producer: str,
    occurred_at: datetime,
    correlation_id: str,
    causation: Message | None = None,
    event_id: UUID | None = None,
) -> None:
    """compatibility.circuit_alias_applied, counted by path (NFR-005)."""
    await uow.publish(
        CircuitAliasApplied.create(
            payload,
            producer=producer,
            occurred_at=occurred_at,
            correlation_id=correlation_id,
            causation=causation,
            event_id=event_id,
        )
    )
    metrics.count_alias_translation(path=payload.path)


async def record_failure(
    uow: UnitOfWork,
    *,
    failure: AliasFailure,
    path: AliasPath,
    legacy_ref: str,
    correlation_id: str,
    now: datetime,
) -> bool:
    """Audit a refused translation; False when this legacy ref was already handled (publish nothing)."""
    first_time = await translation_audit.record(
        uow.conn,
        Translation(
            legacy_ref=legacy_ref,
            path=path,
            result="FAILED",
            correlation_id=correlation_id,
            recorded_at=now,
            circuit_id=failure.circuit_id,
            reason_code=failure.reason_code,
            details=failure_details(failure),
        ),
    )
    if first_time:
        metrics.count_alias_failure(reason_code=failure.reason_code)
    return first_time


def failure_details(failure: AliasFailure) -> dict[str, Any]:
    details: dict[str, Any] = {"detail": failure.detail}
    if failure.candidates:
        details["candidates"] = [{"microgrid_id": str(m), "node_id": str(n)} for m, n in failure.candidates]
    return details


async def refuse_translation(
    uow: UnitOfWork,
    *,
    failure: AliasFailure,
    path: AliasPath,
    legacy_ref: str,
    correlation_id: str,
    now: datetime,
    causation: Message | None = None,
) -> None:
    """Audit the refusal and publish compatibility.circuit_alias_failed with its reason code (FR-016)."""
    if not await record_failure(
        uow, failure=failure, path=path, legacy_ref=legacy_ref, correlation_id=correlation_id, now=now
    ):
        return
    await uow.publish(
        CircuitAliasFailed.create(
            CircuitAliasFailedPayload(
                circuit_id=failure.circuit_id,
                path=path,
                reason_code=failure.reason_code,
                legacy_ref=legacy_ref,
                details=failure_details(failure),
            ),
            producer=PRODUCER,
            occurred_at=now,
            correlation_id=correlation_id,
            causation=causation,
        )
    )


async def resolve(
    uow: UnitOfWork, circuit_id: UUID, scope: AliasScope = AliasScope.REBALANCE
) -> AliasTarget | AliasFailure:
    return resolve_circuit_alias(circuit_id, await alias_read_model.rows_for_circuit(uow.conn, circuit_id), scope)
