"""The adapter's use cases: translate legacy circuit rebalances into microgrid ones, keep the read models.

Every legacy door ends in `_apply_alias` (one microgrid.rebalance_requested + one
compatibility.circuit_alias_applied, recorded once per legacy ref) or `refuse_translation` (an audit row
with the Appendix A reason code and compatibility.circuit_alias_failed; the scheduler door publishes its own
scheduler_dispatch_failed instead). The adapter translates and never decides: the microgrid stays the
source of truth (D-011, NFR-006).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from contracts.api.compatibility_adapter import (
    CircuitEffectiveCapacityView,
    CircuitRebalanceResponse,
    TranslationSummary,
)
from contracts.base import Message
from contracts.enums import AliasPath, ProjectionTrigger, ReasonCode, RebalanceSource, order_reason_codes
from contracts.events import (
    CircuitAliasApplied,
    CircuitAliasAppliedPayload,
    CircuitAliasFailed,
    CircuitAliasFailedPayload,
    EffectiveCircuitCapacityChanged,
    EffectiveCircuitCapacityReconciled,
    LegacyRebalanceRequested,
    RebalanceRequested,
    RebalanceRequestedPayload,
    ScheduledRebalancePeriodic,
    SchedulerDispatchFailed,
    SchedulerDispatchFailedPayload,
)
from contracts.records import CycleResultRecord
from libs.domain.circuit_alias import (
    AliasFailure,
    AliasScope,
    AliasTarget,
    resolve_circuit_alias,
)
from libs.platform.messaging.unit_of_work import UnitOfWork
from libs.platform.observability import get_metrics
from libs.platform.result_waiter import result_channel, wait_for_result
from services.compatibility_adapter.adapters import (
    alias_read_model,
    circuit_capacity,
    cycle_results,
    translation_audit,
)
from services.compatibility_adapter.adapters.translation_audit import Translation
from services.compatibility_adapter.settings import CompatibilityAdapterContext
from services.compatibility_adapter.translation_keys import (
    capacity_change_request_key,
    derived_event_id,
    legacy_event_request_key,
    legacy_http_request_key,
    scheduler_request_key,
)

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


# ---- the two ends of every translation --------------------------------------------------------


async def _apply_alias(
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


async def circuit_owners(conn: asyncpg.Connection | asyncpg.Pool, circuit_id: UUID) -> tuple[UUID | None, list[UUID]]:
    """(depot_id from the legacy circuit record, microgrid_ids of every node carrying the circuit): whom a
    circuit route acts for, so the route can check the caller's grant before anything else."""
    legacy = await alias_read_model.legacy_circuit(conn, circuit_id)
    rows = await alias_read_model.rows_for_circuit(conn, circuit_id)
    return (legacy.depot_id if legacy else None), sorted({r.microgrid_id for r in rows}, key=str)


async def resolve(
    uow: UnitOfWork, circuit_id: UUID, scope: AliasScope = AliasScope.REBALANCE
) -> AliasTarget | AliasFailure:
    return resolve_circuit_alias(circuit_id, await alias_read_model.rows_for_circuit(uow.conn, circuit_id), scope)


# Result channel the HTTP alias waits on (libs.platform.result_waiter), keyed by request key.
CYCLE_RESULT = "compatibility_adapter.cycle_result"


# ---- load_balancer.rebalance_requested --------------------------------------------------------


async def translate_legacy_rebalance(*, uow: UnitOfWork, message: LegacyRebalanceRequested, now: datetime) -> None:
    """One legacy event -> one microgrid.rebalance_requested + alias event, or one failure event."""
    circuit_id = message.payload.circuit_id
    legacy_ref = str(message.event_id)
    resolution = await resolve(uow, circuit_id)
    if isinstance(resolution, AliasFailure):
        await refuse_translation(
            uow,
            failure=resolution,
            path=AliasPath.LEGACY_EVENT,
            legacy_ref=legacy_ref,
            correlation_id=message.correlation_id,
            now=now,
            causation=message,
        )
        return
    request = AliasedRequest(
        circuit_id=circuit_id,
        microgrid_id=resolution.microgrid_id,
        node_id=resolution.node_id,
        request_key=legacy_event_request_key(message.event_id),
        correlation_id=message.correlation_id,
    )
    await _apply_alias(
        uow,
        request=request,
        path=AliasPath.LEGACY_EVENT,
        legacy_ref=legacy_ref,
        source=RebalanceSource.LEGACY_ALIAS,
        requested_by=message.payload.requested_by,
        now=now,
        causation=message,
    )


# ---- scheduler.rebalance_periodic -------------------------------------------------------------


async def dispatch_periodic_rebalance(*, uow: UnitOfWork, message: ScheduledRebalancePeriodic, now: datetime) -> None:
    """Resolve a circuit-keyed job at dispatch time (failure: skip the cycle, publish the scheduler error);
    forward a microgrid-keyed job unchanged. One cycle per schedule occurrence."""
    job = message.payload
    target_id = job.microgrid_id or job.circuit_id
    assert target_id is not None  # the payload holds exactly one of the two
    request_key = scheduler_request_key(job.schedule_ref, target_id, job.scheduled_for)
    if job.microgrid_id is not None:
        await _pass_through_periodic(
            uow, message=message, microgrid_id=job.microgrid_id, request_key=request_key, now=now
        )
        return
    assert job.circuit_id is not None
    resolution = await resolve(uow, job.circuit_id)
    if isinstance(resolution, AliasFailure):
        if await record_failure(
            uow,
            failure=resolution,
            path=AliasPath.SCHEDULER,
            legacy_ref=request_key,
            correlation_id=message.correlation_id,
            now=now,
        ):
            await uow.publish(
                SchedulerDispatchFailed.create(
                    SchedulerDispatchFailedPayload(
                        circuit_id=job.circuit_id,
                        schedule_ref=job.schedule_ref,
                        scheduled_for=job.scheduled_for,
                        reason_code=resolution.reason_code,
                    ),
                    producer=PRODUCER,
                    occurred_at=now,
                    causation=message,
                )
            )
        return
    request = AliasedRequest(
        circuit_id=job.circuit_id,
        microgrid_id=resolution.microgrid_id,
        node_id=resolution.node_id,
        request_key=request_key,
        correlation_id=message.correlation_id,
    )
    await _apply_alias(
        uow,
        request=request,
        path=AliasPath.SCHEDULER,
        legacy_ref=request_key,
        source=RebalanceSource.SCHEDULER,
        requested_by=f"scheduler:{job.schedule_ref}",
        now=now,
        causation=message,
    )


async def _pass_through_periodic(
    uow: UnitOfWork, *, message: ScheduledRebalancePeriodic, microgrid_id: UUID, request_key: str, now: datetime
) -> None:
    first_time = await translation_audit.record(
        uow.conn,
        Translation(
            legacy_ref=request_key,
            path=AliasPath.SCHEDULER,
            result="PASSED_THROUGH",
            correlation_id=message.correlation_id,
            recorded_at=now,
            microgrid_id=microgrid_id,
            request_key=request_key,
        ),
    )
    if first_time:
        await uow.publish(
            RebalanceRequested.create(
                RebalanceRequestedPayload(
                    microgrid_id=microgrid_id,
                    source=RebalanceSource.SCHEDULER,
                    correlation_id=message.correlation_id,
                    request_key=request_key,
                    requested_by=f"scheduler:{message.payload.schedule_ref}",
                ),
                producer=PRODUCER,
                occurred_at=now,
                causation=message,
                event_id=derived_event_id(request_key, RebalanceRequested.EVENT_TYPE),
            )
        )


# ---- POST /api/circuit/{circuit_id}/rebalance_load --------------------------------------------


async def request_circuit_rebalance(
    *,
    ctx: CompatibilityAdapterContext,
    circuit_id: UUID,
    idempotency_key: str | None,
    correlation_id: str | None,
    requested_by: str,
    now: datetime,
) -> AliasedRequest | AliasFailure:
    """Translate the HTTP call into one cycle request; the same Idempotency-Key returns the first one."""
    request_key = legacy_http_request_key(circuit_id, idempotency_key or str(uuid4()))
    correlation_id = correlation_id or str(uuid4())
    async with ctx.unit_of_work() as uow:
        earlier = await _earlier_http_request(uow, request_key)
        if earlier is not None:
            return earlier
        resolution = await resolve(uow, circuit_id)
        if isinstance(resolution, AliasFailure):
            await refuse_translation(
                uow,
                failure=resolution,
                path=AliasPath.LEGACY_HTTP,
                legacy_ref=request_key,
                correlation_id=correlation_id,
                now=now,
            )
            return resolution
        request = AliasedRequest(circuit_id, resolution.microgrid_id, resolution.node_id, request_key, correlation_id)
        if await _apply_alias(
            uow,
            request=request,
            path=AliasPath.LEGACY_HTTP,
            legacy_ref=request_key,
            source=RebalanceSource.LEGACY_ALIAS,
            requested_by=requested_by,
            now=now,
        ):
            return request
        # A concurrent call with the same key won the insert; answer with its translation.
        earlier = await _earlier_http_request(uow, request_key)
        assert earlier is not None
        return earlier


async def _earlier_http_request(uow: UnitOfWork, request_key: str) -> AliasedRequest | None:
    t = await translation_audit.applied(uow.conn, AliasPath.LEGACY_HTTP, request_key)
    if t is None:
        return None
    assert t.circuit_id and t.microgrid_id and t.node_id
    return AliasedRequest(t.circuit_id, t.microgrid_id, t.node_id, request_key, t.correlation_id)


async def await_cycle_result(*, ctx: CompatibilityAdapterContext, request_key: str) -> CycleResultRecord | None:
    """The requested cycle's result from the read model, waiting up to the bound; woken by its commit."""
    settings = ctx.settings
    return await wait_for_result(
        client=ctx.redis,
        channel=result_channel(ctx.settings, CYCLE_RESULT, request_key),
        fetch=lambda: cycle_results.by_request_key(ctx.pool, request_key),
        timeout_s=settings.compat_rebalance_wait_s,
        fallback_poll_s=settings.compat_rebalance_poll_interval_s,
    )


def circuit_rebalance_response(
    request: AliasedRequest, cycle: CycleResultRecord | None, now: datetime
) -> CircuitRebalanceResponse:
    codes = [*cycle.reason_codes, ReasonCode.LEGACY_ALIAS_TRANSLATION_APPLIED] if cycle else []
    return CircuitRebalanceResponse(
        circuit_id=request.circuit_id,
        microgrid_id=request.microgrid_id,
        node_id=request.node_id,
        request_key=request.request_key,
        correlation_id=request.correlation_id,
        status="COMPLETED" if cycle else "PENDING",
        timestamp=now,
        reason_codes=order_reason_codes(codes),
        result=cycle,
    )


async def record_cycle_result(*, uow: UnitOfWork, cycle: CycleResultRecord) -> None:
    """Keep the results of the cycles the adapter requested (the others are not its business)."""
    key = cycle.audit.request_key
    if key and await translation_audit.requested(uow.conn, key):
        await cycle_results.save(uow.conn, key, cycle)
        uow.signal_after_commit(result_channel(uow.settings, CYCLE_RESULT, key))


# ---- effective circuit capacity ---------------------------------------------------------------


async def apply_capacity_changed(*, uow: UnitOfWork, message: EffectiveCircuitCapacityChanged, now: datetime) -> None:
    """Update the circuit-facing value; request one legacy rebalance per change of the projection.

    A cycle's guard may have reconciled the same new value first (a rebalance right at a block
    boundary): the projection's change still requests its rebalance, so how many cycles run does not
    depend on which of the two events arrived first (NFR-007). Only a projection no newer than one
    already applied (replayed, or late) changes nothing.
    """
    change = message.payload
    held = await circuit_capacity.current(uow.conn, change.circuit_id, lock=True)
    if held is not None and held.projected_at is not None and held.projected_at >= change.evaluated_at:
        return  # an older evaluation arriving late changes nothing
    if held is None or held.evaluated_at <= change.evaluated_at:
        await circuit_capacity.save(uow.conn, change, message.event_id, projected=True)
    else:  # a reconciliation newer than this projection holds the value already
        await circuit_capacity.mark_projected(uow.conn, change.circuit_id, change.evaluated_at)
    reference = (
        held.effective_capacity_watts
        if held is not None and held.projection_trigger != ProjectionTrigger.REBALANCE_GUARD.value
        else change.previous_capacity_watts
    )
    if reference == change.effective_capacity_watts:
        return
    request = AliasedRequest(
        circuit_id=change.circuit_id,
        microgrid_id=change.microgrid_id,
        node_id=change.node_id,
        request_key=capacity_change_request_key(message.event_id),
        correlation_id=message.correlation_id,
    )
    await _apply_alias(
        uow,
        request=request,
        path=AliasPath.CAPACITY_CHANGE,
        legacy_ref=str(message.event_id),
        source=RebalanceSource.ENVELOPE_CHANGE,
        requested_by=PRODUCER,
        now=now,
        causation=message,
    )


async def apply_capacity_reconciled(*, uow: UnitOfWork, message: EffectiveCircuitCapacityReconciled) -> None:
    """The rebalance-time guard corrected the value: update it, never request another rebalance."""
    held = await circuit_capacity.current(uow.conn, message.payload.circuit_id, lock=True)
    if held is None or held.evaluated_at <= message.payload.evaluated_at:
        await circuit_capacity.save(uow.conn, message.payload, message.event_id, projected=False)


async def read_effective_capacity(
    *, ctx: CompatibilityAdapterContext, circuit_id: UUID, now: datetime
) -> CircuitEffectiveCapacityView | None:
    """The circuit-facing value, else the legacy default capacity; None when the circuit is unknown."""
    held = await circuit_capacity.current(ctx.pool, circuit_id)
    legacy = await alias_read_model.legacy_circuit(ctx.pool, circuit_id)
    if held is None and legacy is None:
        return None
    target = resolve_circuit_alias(circuit_id, await alias_read_model.rows_for_circuit(ctx.pool, circuit_id))
    view: dict[str, Any] = {"circuit_id": circuit_id, "timestamp": now}
    if isinstance(target, AliasTarget):
        view |= {"microgrid_id": target.microgrid_id, "node_id": target.node_id}
    if legacy is not None:
        view |= {
            "depot_id": legacy.depot_id,
            "parent_circuit_id": legacy.parent_circuit_id,
            "default_capacity_watts": legacy.default_capacity_watts,
            "fail_safe_capacity_watts": legacy.fail_safe_capacity_watts,
        }
    if held is not None:
        view |= {
            "microgrid_id": held.microgrid_id,
            "node_id": held.node_id,
            "effective_capacity_watts": held.effective_capacity_watts,
            "basis": held.basis,
            "projection_trigger": held.projection_trigger,
            "binding_envelope_id": held.binding_envelope_id,
            "evaluated_at": held.evaluated_at,
        }
    else:
        assert legacy is not None
        view |= {"effective_capacity_watts": legacy.default_capacity_watts, "basis": "LEGACY_DEFAULT"}
    return CircuitEffectiveCapacityView(**view)


# ---- observability ----------------------------------------------------------------------------


async def translation_summary(*, ctx: CompatibilityAdapterContext, now: datetime) -> TranslationSummary:
    return TranslationSummary(counts=await translation_audit.counts(ctx.pool), timestamp=now)
