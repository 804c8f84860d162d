"""The adapter's use cases: legacy circuit rebalances, from each of their three doors, translated into
microgrid ones through the one translate path (`translation.py`), and the cycle results the HTTP door
waits for.

- `load_balancer.rebalance_requested` -> `translate_legacy_rebalance`;
- `scheduler.rebalance_periodic` -> `dispatch_periodic_rebalance`;
- `POST /api/circuit/{circuit_id}/rebalance_load` -> `request_circuit_rebalance`, then `await_cycle_result`
  (the result read by `cycle_result_reader.py` while the door waits).

The effective-capacity events are `capacity_changes.py`; the TOU doors are `tou_limits.py`; the reads
are `views.py`.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from contracts.enums import AliasPath, RebalanceSource
from contracts.events import (
    LegacyRebalanceRequested,
    RebalanceRequested,
    RebalanceRequestedPayload,
    ScheduledRebalancePeriodic,
    SchedulerDispatchFailed,
    SchedulerDispatchFailedPayload,
)
from contracts.records import CycleResultRecord
from libs.domain.circuit_alias import AliasFailure
from libs.platform.messaging.unit_of_work import UnitOfWork
from libs.platform.result_waiter import result_channel, wait_for_result
from services.compatibility_adapter.adapters import cycle_results, translation_audit
from services.compatibility_adapter.adapters.translation_audit import Translation
from services.compatibility_adapter.cycle_result_reader import CYCLE_RESULT, CycleResultReader
from services.compatibility_adapter.settings import CompatibilityAdapterContext
from services.compatibility_adapter.translation import (
    PRODUCER,
    AliasedRequest,
    apply_alias,
    record_failure,
    refuse_translation,
    resolve,
)
from services.compatibility_adapter.translation_keys import (
    derived_event_id,
    legacy_event_request_key,
    legacy_http_request_key,
    scheduler_request_key,
)

# Result channel the HTTP alias waits on (libs.platform.result_waiter), keyed by request key.


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
    await apply_alias(
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
    await apply_alias(
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
    reader = _reader(ctx)
    if reader is not None:  # before the request can be committed: its cycle is read, whenever it comes
        await reader.watch(request_key)
    async with ctx.unit_of_work() as uow:
        earlier = await _earlier_http_request(uow, request_key)
        if earlier is not None:
            return earlier
        resolution = await resolve(uow, circuit_id)
        if isinstance(resolution, AliasFailure):
            if reader is not None:
                reader.forget(request_key)
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
        if await apply_alias(
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
    return AliasedRequest(t.circuit_id, t.microgrid_id, t.node_id, request_key, t.correlation_id, t.recorded_at)


def _reader(ctx: CompatibilityAdapterContext) -> CycleResultReader | None:
    return ctx.memory if isinstance(ctx.memory, CycleResultReader) else None


async def await_cycle_result(*, ctx: CompatibilityAdapterContext, request: AliasedRequest) -> CycleResultRecord | None:
    """The requested cycle's result as kept, waiting up to the bound; woken by its commit. A repeat of a
    request whose result is not kept yet has it looked for from when the request was recorded."""
    settings, request_key = ctx.settings, request.request_key
    reader = _reader(ctx)
    if reader is not None and request.earlier_at is not None:
        if await cycle_results.by_request_key(ctx.pool, request_key) is None:
            await reader.watch(request_key, since=request.earlier_at)
    return await wait_for_result(
        client=ctx.redis,
        channel=result_channel(ctx.settings, CYCLE_RESULT, request_key),
        fetch=lambda: cycle_results.by_request_key(ctx.pool, request_key),
        timeout_s=settings.compat_rebalance_wait_s,
        fallback_poll_s=settings.compat_rebalance_poll_interval_s,
    )
