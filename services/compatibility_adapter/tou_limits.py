"""GET/POST /api/circuit/{circuit_id}/tou_limits: legacy TOU schedules through the envelope write port.

POST replaces the circuit's schedule: the new one goes out as a SubmitOperatingEnvelope command
(TOU_LIMIT on the circuit's node, source_ref from circuit + revision + schedule) that names the
envelopes it supersedes; the write port withdraws those only when it accepts the new one, so a
replacement that fails leaves the old limit in force. The replacement is judged against the same
envelope rules before anything is sent (422 otherwise). Clearing (no periods) withdraws.
GET reads the TOU_LIMIT envelopes the envelope service reports for
that node, never the adapter's own copy: the microgrid stays the source of truth (D-021).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from contracts.api.compatibility_adapter import (
    LegacyTouSchedule,
    TouEnvelopeView,
    TouLimitsSubmitted,
    TouLimitsView,
)
from contracts.commands import (
    MAX_SUPERSEDED,
    SubmitOperatingEnvelope,
    SubmitOperatingEnvelopePayload,
    WithdrawOperatingEnvelope,
    WithdrawOperatingEnvelopePayload,
)
from contracts.enums import AliasPath, EnvelopeType
from contracts.events import CircuitAliasAppliedPayload
from contracts.records import OperatingEnvelopeRecord
from libs.domain.circuit_alias import (
    AliasFailure,
    AliasScope,
    AliasTarget,
    resolve_circuit_alias,
)
from libs.domain.envelopes import LIVE_STATUSES
from libs.domain.tou_translation import (
    envelope_for_schedule,
    ordered_periods,
    periods_of_envelope,
    replacement_problems,
    schedule_digest,
    tou_source_ref,
    tou_source_ref_prefix,
)
from libs.platform.messaging.unit_of_work import UnitOfWork
from libs.platform.runtime import ServiceContext
from services.compatibility_adapter.adapters import alias_read_model, tou_envelopes, translation_audit
from services.compatibility_adapter.adapters.tou_envelopes import TouSubmission
from services.compatibility_adapter.adapters.translation_audit import Translation
from services.compatibility_adapter.translation import (
    PRODUCER,
    metrics,
    publish_alias_applied,
    refuse_translation,
    resolve,
)


@dataclass(frozen=True)
class InvalidSchedule:
    """The replacement would be rejected by the envelope write port: refused, nothing withdrawn."""

    problems: list[str]


@dataclass(frozen=True)
class TouRequest:
    circuit_id: UUID
    schedule: LegacyTouSchedule
    submitted_by: str
    correlation_id: str


async def submit_tou_schedule(
    *, ctx: ServiceContext, request: TouRequest, now: datetime
) -> TouLimitsSubmitted | AliasFailure | InvalidSchedule:
    periods = ordered_periods(request.schedule.periods)
    async with ctx.unit_of_work() as uow:
        target = await resolve(uow, request.circuit_id, AliasScope.LIMIT)
        if isinstance(target, AliasFailure):
            legacy_ref = f"legacy-tou:{request.circuit_id}:{schedule_digest(periods)}"
            await refuse_translation(
                uow,
                failure=target,
                path=AliasPath.TOU_LIMITS,
                legacy_ref=legacy_ref,
                correlation_id=request.correlation_id,
                now=now,
            )
            return target
        previous = await tou_envelopes.submission(uow.conn, request.circuit_id)
        answer: dict[str, Any] = {
            "circuit_id": request.circuit_id,
            "microgrid_id": target.microgrid_id,
            "node_id": target.node_id,
            "periods": periods,
            "timestamp": now,
        }
        if _unchanged(previous, target, periods):
            return TouLimitsSubmitted(
                status="UNCHANGED", source_ref=previous.source_ref if previous else None, **answer
            )
        revision = previous.revision + 1 if previous else 1
        source_ref = tou_source_ref(request.circuit_id, revision, periods) if periods else None
        in_force = await _in_force(uow, previous, request.circuit_id)
        withdrawn = previous.source_ref if previous and previous.source_ref else None
        if source_ref is None:
            await _withdraw(uow, previous, in_force, request, now)
        else:
            same_microgrid = previous is None or previous.microgrid_id == target.microgrid_id
            envelope = envelope_for_schedule(
                microgrid_id=target.microgrid_id,
                node_id=target.node_id,
                periods=periods,
                source_ref=source_ref,
                submitted_by=request.submitted_by,
                supersedes=in_force if same_microgrid else (),
            )
            problems = replacement_problems(envelope, now=now)
            if problems:
                return InvalidSchedule(problems)
            if not same_microgrid:  # moved to another microgrid: the old envelope is not this one's to replace
                await _withdraw(uow, previous, in_force, request, now)
            await _submit(uow, target, request, envelope, now)
        await tou_envelopes.save_submission(
            uow.conn,
            TouSubmission(request.circuit_id, target.microgrid_id, target.node_id, revision, source_ref, periods),
            now,
        )
        return TouLimitsSubmitted(
            status="SUBMITTED" if source_ref else "CLEARED",
            source_ref=source_ref,
            withdrawn_source_ref=withdrawn,
            **answer,
        )


def _unchanged(previous: TouSubmission | None, target: AliasTarget, periods: list) -> bool:
    if previous is None:
        return not periods  # clearing a circuit that never had a schedule
    same_node = (previous.microgrid_id, previous.node_id) == (target.microgrid_id, target.node_id)
    return same_node and schedule_digest(previous.periods) == schedule_digest(periods)


async def _in_force(uow: UnitOfWork, previous: TouSubmission | None, circuit_id: UUID) -> list[str]:
    """The circuit's TOU envelopes a new schedule replaces: the last one submitted, and any earlier one
    still PENDING or ACTIVE (a replacement the write port rejected left its predecessor in force)."""
    if previous is None:
        return []
    refs = [previous.source_ref] if previous.source_ref else []
    own = tou_source_ref_prefix(circuit_id)
    for e in await tou_envelopes.envelopes_on_node(uow.conn, previous.microgrid_id, previous.node_id, LIVE_STATUSES):
        if e.source_ref.startswith(own) and e.source_ref not in refs:
            refs.append(e.source_ref)
    # More than a couple only after many rejected replacements in a row; the command bounds the list.
    return refs[:MAX_SUPERSEDED]


async def _withdraw(
    uow: UnitOfWork, previous: TouSubmission | None, source_refs: list[str], request: TouRequest, now: datetime
) -> None:
    if previous is None:
        return
    for source_ref in source_refs:
        await uow.publish(
            WithdrawOperatingEnvelope.create(
                WithdrawOperatingEnvelopePayload(
                    microgrid_id=previous.microgrid_id, source_ref=source_ref, withdrawn_by=request.submitted_by
                ),
                producer=PRODUCER,
                occurred_at=now,
                correlation_id=request.correlation_id,
            )
        )


async def _submit(
    uow: UnitOfWork, target: AliasTarget, request: TouRequest, envelope: SubmitOperatingEnvelopePayload, now: datetime
) -> None:
    source_ref = envelope.source_ref
    await translation_audit.record(
        uow.conn,
        Translation(
            legacy_ref=source_ref,
            path=AliasPath.TOU_LIMITS,
            result="APPLIED",
            correlation_id=request.correlation_id,
            recorded_at=now,
            circuit_id=request.circuit_id,
            microgrid_id=target.microgrid_id,
            node_id=target.node_id,
        ),
    )
    common: dict[str, Any] = {"producer": PRODUCER, "occurred_at": now, "correlation_id": request.correlation_id}
    await uow.publish(SubmitOperatingEnvelope.create(envelope, **common))
    await publish_alias_applied(
        uow,
        payload=CircuitAliasAppliedPayload(
            circuit_id=request.circuit_id,
            microgrid_id=target.microgrid_id,
            node_id=target.node_id,
            path=AliasPath.TOU_LIMITS,
            legacy_ref=source_ref,
        ),
        **common,
    )


async def read_tou_limits(*, ctx: ServiceContext, circuit_id: UUID, now: datetime) -> TouLimitsView | AliasFailure:
    target = resolve_circuit_alias(
        circuit_id, await alias_read_model.rows_for_circuit(ctx.pool, circuit_id), AliasScope.LIMIT
    )
    if isinstance(target, AliasFailure):
        metrics.count_alias_failure(reason_code=target.reason_code)
        return target
    envelopes = await tou_envelopes.envelopes_on_node(ctx.pool, target.microgrid_id, target.node_id, LIVE_STATUSES)
    views = [
        TouEnvelopeView(
            envelope_id=e.envelope_id, source_ref=e.source_ref, status=e.status, periods=periods_of_envelope(e)
        )
        for e in envelopes
    ]
    return TouLimitsView(
        circuit_id=circuit_id,
        microgrid_id=target.microgrid_id,
        node_id=target.node_id,
        periods=ordered_periods(p for v in views for p in v.periods),
        envelopes=views,
        timestamp=now,
    )


async def record_envelope(*, uow: UnitOfWork, envelope: OperatingEnvelopeRecord, now: datetime) -> None:
    """Keep TOU_LIMIT envelopes (received or re-evaluated); other envelope types are not legacy TOU limits."""
    if envelope.envelope_type == EnvelopeType.TOU_LIMIT:
        await tou_envelopes.save_envelope(uow.conn, envelope, now)
