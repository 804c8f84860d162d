"""The envelope-lifecycle use cases: submit and withdraw (the MicrogridOperatingEnvelopeWritePort, one
path for the command topic and HTTP), and evaluate the lifecycle timers that came due.

Submit: idempotent by source_ref (NFR-010), validated against the target node and the domain's envelope
rules; an invalid envelope is stored REJECTED with its reason and reported, never dropped. An accepted
one is stored PENDING or ACTIVE (by its window at receipt), its boundaries and expiry become durable
timers, the envelopes it supersedes are withdrawn in the same transaction (a rejected replacement
leaves them in force), and the node's feeder-circuit projection is recomputed (trigger ENVELOPE_CHANGE).

Evaluate due timers, in order, exactly once, across replicas. Per microgrid, one transaction at a time:
take the microgrid's advisory lock (try-lock: a replica that finds it held skips that microgrid this
round), claim every timer of the earliest due instant with FOR UPDATE SKIP LOCKED, apply them (health
checks first, then envelope boundaries by envelope id), recompute the affected projections once at that
instant, mark the timers FIRED, commit. State change, outbox rows and the FIRED mark commit together, so
a timer fires once or not at all. Each instant is evaluated at its scheduled timestamp, not at `now`,
so a late run gives the same result (NFR-011).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from contracts.base import Message
from contracts.enums import ConstraintType, EnvelopeStatus, EnvelopeType, ProjectionTrigger, ReasonCode
from contracts.events import (
    OperatingEnvelopeReceived,
    OperatingEnvelopeRejected,
    OperatingEnvelopeRejectedPayload,
)
from libs.domain.envelope_lifecycle import acceptance_status, evaluate_lifecycle, lifecycle_boundaries
from libs.domain.envelopes import TERMINAL_STATUSES, envelope_violations
from libs.domain.from_records import domain_envelope
from libs.platform.messaging.unit_of_work import UnitOfWork
from services.envelope_lifecycle.adapters import envelopes, forecast_sources, timers, topology
from services.envelope_lifecycle.adapters.envelopes import StoredEnvelope
from services.envelope_lifecycle.adapters.locks import lock_microgrid, try_lock_microgrid
from services.envelope_lifecycle.adapters.timers import Timer, TimerKind
from services.envelope_lifecycle.lifecycle import PRODUCER, Transition, append_transition, record_transition
from services.envelope_lifecycle.projection import project_nodes
from services.envelope_lifecycle.settings import EnvelopeLifecycleContext, EnvelopeLifecycleSettings
from services.envelope_lifecycle.source_health import (
    announce_health_change,
    record_forecast_receipt,
    reevaluate_source,
)
from services.envelope_lifecycle.submission import EnvelopeSubmission

log = logging.getLogger(__name__)

_REPORTED_PROBLEMS = 20


class EnvelopeRule:
    """`violated_rule` values of a rejection."""

    ENVELOPE_TYPE_KNOWN = "ENVELOPE_TYPE_KNOWN"
    CONSTRAINT_TYPE_KNOWN = "CONSTRAINT_TYPE_KNOWN"
    TARGET_NODE_IN_MICROGRID = "TARGET_NODE_IN_MICROGRID"
    # The domain's envelope invariants (window order, blocks inside the window and not overlapping,
    # min <= target <= max, a bound per block); `details.problems` names each broken one.
    ENVELOPE_INVARIANTS = "ENVELOPE_INVARIANTS"
    EFFECTIVE_WINDOW_NOT_ELAPSED = "EFFECTIVE_WINDOW_NOT_ELAPSED"
    # Idempotency by source_ref: a replay must carry the content first ingested under that ref.
    SOURCE_REF_CONTENT_UNCHANGED = "SOURCE_REF_CONTENT_UNCHANGED"


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    message: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Ingested:
    """The outcome of a submission: the stored envelope (ACTIVE, PENDING or REJECTED) and whether this
    was a replay of an earlier submission with the same source_ref (then nothing new happened)."""

    envelope: StoredEnvelope
    replay: bool
    conflict: bool = False  # same source_ref, different content: refused (and audited), nothing stored

    @property
    def rejected(self) -> bool:
        return self.envelope.status is EnvelopeStatus.REJECTED


class EnvelopeNotFound(Exception):
    pass


class NotWithdrawable(Exception):
    def __init__(self, envelope: StoredEnvelope) -> None:
        super().__init__(f"envelope {envelope.envelope_id} is {envelope.status.value}; nothing to withdraw")
        self.envelope = envelope


# ---- validation --------------------------------------------------------------------------------------


def judge_submission(
    submission: EnvelopeSubmission, *, node_known: bool, now: datetime, waited_for_node_s: float | None = None
) -> Violation | None:
    """The first rule the submission breaks, or None. Pure; the envelope rules are the domain's."""
    if submission.envelope_type not in EnvelopeType.__members__:
        return Violation(
            EnvelopeRule.ENVELOPE_TYPE_KNOWN,
            f"unknown envelope_type {submission.envelope_type!r}",
            {"envelope_type": submission.envelope_type, "known": list(EnvelopeType.__members__)},
        )
    if submission.constraint_type not in ConstraintType.__members__:
        return Violation(
            EnvelopeRule.CONSTRAINT_TYPE_KNOWN,
            f"unknown constraint_type {submission.constraint_type!r}",
            {"constraint_type": submission.constraint_type, "known": list(ConstraintType.__members__)},
        )
    if not node_known:
        waited = (
            f" (not known here after waiting {waited_for_node_s:.0f} s for the microgrid's topology)"
            if waited_for_node_s
            else ""
        )
        return Violation(
            EnvelopeRule.TARGET_NODE_IN_MICROGRID,
            f"node {submission.node_id} is not a node of microgrid {submission.microgrid_id}{waited}",
            {"node_id": str(submission.node_id)},
        )
    record = _stored(submission, EnvelopeStatus.PENDING, now).record()
    assert record is not None  # both types are known by now
    candidate = domain_envelope(record)
    problems = envelope_violations(candidate, str(submission.microgrid_id), [str(submission.node_id)])
    if problems:
        # The first few name the fault; all of them could outgrow the rejection event's size budget.
        return Violation(
            EnvelopeRule.ENVELOPE_INVARIANTS,
            problems[0],
            {"problems": list(problems[:_REPORTED_PROBLEMS]), "problem_count": len(problems)},
        )
    if submission.effective_to <= now:
        return Violation(
            EnvelopeRule.EFFECTIVE_WINDOW_NOT_ELAPSED,
            f"effective_to {submission.effective_to.isoformat()} is not after receipt {now.isoformat()}",
            {"effective_to": submission.effective_to.isoformat(), "received_at": now.isoformat()},
        )
    return None


def _stored(
    submission: EnvelopeSubmission, status: EnvelopeStatus, received_at: datetime, violation: Violation | None = None
) -> StoredEnvelope:
    return StoredEnvelope(
        envelope_id=submission.envelope_id,
        microgrid_id=submission.microgrid_id,
        node_id=submission.node_id,
        origin_control_point_id=submission.origin_control_point_id,
        envelope_type=submission.envelope_type,
        constraint_type=submission.constraint_type,
        effective_from=submission.effective_from,
        effective_to=submission.effective_to,
        source_ref=submission.source_ref,
        status=status,
        received_at=received_at,
        submission_digest=submission.digest(),
        submitted_by=submission.submitted_by,
        claimed_by=submission.claimed_by,
        blocks=submission.blocks,
        rejection_reason=violation.message if violation else None,
        violated_rule=violation.rule if violation else None,
        rejection_details=violation.details if violation else {},
    )


# ---- submit ------------------------------------------------------------------------------------------


async def submit_envelope(
    uow: UnitOfWork,
    *,
    settings: EnvelopeLifecycleSettings,
    submission: EnvelopeSubmission,
    now: datetime,
    causation: Message | None = None,
    waited_for_node_s: float | None = None,
) -> Ingested:
    conn = uow.conn
    await lock_microgrid(conn, submission.microgrid_id)
    existing = await envelopes.by_source_ref(conn, submission.microgrid_id, submission.source_ref)
    if existing is not None:
        if existing.submission_digest != submission.digest():
            await _refuse_conflicting_content(uow, existing, submission, now, causation)
            return Ingested(existing, replay=False, conflict=True)
        if existing.status is not EnvelopeStatus.REJECTED:
            return Ingested(existing, replay=True)
        # A rejected envelope sent again is judged again: a rejection is a verdict at a moment (for
        # example its node was not yet known here), and the same content may be valid now.

    node = await topology.node(conn, submission.microgrid_id, submission.node_id)
    violation = judge_submission(submission, node_known=node is not None, now=now, waited_for_node_s=waited_for_node_s)
    if violation is not None:
        if existing is not None:
            return Ingested(existing, replay=True)  # still rejected: nothing new
        return Ingested(await _reject(uow, submission, violation, now, causation), replay=False)

    received = _stored(submission, EnvelopeStatus.PENDING, now).record()
    assert received is not None  # types were judged known
    status = acceptance_status(domain_envelope(received), now)
    env = _stored(submission, status, now)
    record = env.record()
    assert record is not None
    if existing is None:
        await envelopes.insert_envelope(conn, env)
    else:
        await envelopes.accept_rejected(conn, env)
    await append_transition(
        uow,
        env,
        transition=Transition.RECEIVED.value,
        previous_status=existing.status if existing else None,
        status=status,
        at=now,
    )
    await timers.schedule_envelope_timers(conn, env.microgrid_id, env.envelope_id, _timers_after(env, now))
    await uow.publish(OperatingEnvelopeReceived.create(record, producer=PRODUCER, occurred_at=now, causation=causation))
    for superseded in submission.supersedes_source_refs:
        if superseded == submission.source_ref:
            continue
        try:
            await withdraw_envelope(
                uow,
                settings=settings,
                microgrid_id=submission.microgrid_id,
                source_ref=superseded,
                withdrawn_by=submission.submitted_by,
                now=now,
                causation=causation,
            )
        except (EnvelopeNotFound, NotWithdrawable):
            pass  # already gone, expired or never accepted: nothing in force to replace

    affected = {env.node_id}
    if record.envelope_type is EnvelopeType.FORECAST and env.origin_control_point_id is not None:
        change = await record_forecast_receipt(
            uow,
            settings=settings,
            microgrid_id=env.microgrid_id,
            control_point_id=env.origin_control_point_id,
            received_at=now,
        )
        if change is not None:
            affected |= await announce_health_change(uow, change, at=now, causation=causation)
    await project_nodes(
        uow,
        settings=settings,
        microgrid_id=env.microgrid_id,
        node_ids=affected,
        at=now,
        trigger=ProjectionTrigger.ENVELOPE_CHANGE,
        causation=causation,
    )
    return Ingested(env, replay=False)


def _timers_after(env: StoredEnvelope, now: datetime) -> list[tuple[TimerKind, datetime]]:
    """A timer for every boundary still ahead; those already passed are reflected in the initial status."""
    record = env.record()
    assert record is not None
    return [
        (TimerKind.EXPIRY if instant == env.effective_to else TimerKind.BLOCK_BOUNDARY, instant)
        for instant in lifecycle_boundaries(domain_envelope(record))
        if instant > now
    ]


async def _refuse_conflicting_content(
    uow: UnitOfWork, existing: StoredEnvelope, submission: EnvelopeSubmission, now: datetime, causation: Message | None
) -> None:
    """Audit the refusal (NFR-010) without touching the stored envelope: its source_ref keeps its content."""
    await uow.publish(
        OperatingEnvelopeRejected.create(
            OperatingEnvelopeRejectedPayload(
                microgrid_id=existing.microgrid_id,
                envelope_id=existing.envelope_id,
                node_id=submission.node_id,
                source_ref=submission.source_ref,
                reason_code=ReasonCode.ENVELOPE_INVALID,
                violated_rule=EnvelopeRule.SOURCE_REF_CONTENT_UNCHANGED,
                details={
                    "message": f"source_ref {submission.source_ref!r} was already ingested with different content",
                    "stored_digest": existing.submission_digest,
                    "submitted_digest": submission.digest(),
                },
            ),
            producer=PRODUCER,
            occurred_at=now,
            causation=causation,
        )
    )


async def _reject(
    uow: UnitOfWork, submission: EnvelopeSubmission, violation: Violation, now: datetime, causation: Message | None
) -> StoredEnvelope:
    env = _stored(submission, EnvelopeStatus.REJECTED, now, violation)
    await envelopes.insert_envelope(uow.conn, env)
    await append_transition(
        uow,
        env,
        transition=Transition.REJECTED.value,
        previous_status=None,
        status=EnvelopeStatus.REJECTED,
        at=now,
        detail={"violated_rule": violation.rule, **violation.details},
    )
    await uow.publish(
        OperatingEnvelopeRejected.create(
            OperatingEnvelopeRejectedPayload(
                microgrid_id=env.microgrid_id,
                envelope_id=env.envelope_id,
                node_id=env.node_id,
                source_ref=env.source_ref,
                reason_code=ReasonCode.ENVELOPE_INVALID,
                violated_rule=violation.rule,
                details={"message": violation.message, **violation.details},
                envelope=env.record(),
            ),
            producer=PRODUCER,
            occurred_at=now,
            causation=causation,
        )
    )
    return env


# ---- withdraw ----------------------------------------------------------------------------------------


async def withdraw_envelope(
    uow: UnitOfWork,
    *,
    settings: EnvelopeLifecycleSettings,
    microgrid_id: UUID,
    envelope_id: UUID | None = None,
    source_ref: str | None = None,
    withdrawn_by: str,
    now: datetime,
    causation: Message | None = None,
) -> Ingested:
    """Withdraw a PENDING or ACTIVE envelope at once; withdrawing a WITHDRAWN one again is a replay."""
    conn = uow.conn
    await lock_microgrid(conn, microgrid_id)
    env = (
        await envelopes.by_id(conn, envelope_id)
        if envelope_id is not None
        else await envelopes.by_source_ref(conn, microgrid_id, source_ref or "")
    )
    if env is None or env.microgrid_id != microgrid_id:
        raise EnvelopeNotFound(f"no envelope {envelope_id or source_ref!r} in microgrid {microgrid_id}")
    if env.status is EnvelopeStatus.WITHDRAWN:
        return Ingested(env, replay=True)
    if env.status in TERMINAL_STATUSES:
        raise NotWithdrawable(env)
    await timers.cancel_envelope_timers(conn, env.envelope_id, now)
    after = await record_transition(
        uow,
        env,
        transition=Transition.WITHDRAWAL,
        status=EnvelopeStatus.WITHDRAWN,
        at=now,
        detail={"withdrawn_by": withdrawn_by},
        causation=causation,
    )
    await project_nodes(
        uow,
        settings=settings,
        microgrid_id=microgrid_id,
        node_ids={env.node_id},
        at=now,
        trigger=ProjectionTrigger.ENVELOPE_CHANGE,
        causation=causation,
    )
    return Ingested(after, replay=False)


# ---- evaluate due timers ------------------------------------------------------------------------------


@dataclass
class EvaluationReport:
    fired: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    skipped_microgrids: list[UUID] = field(default_factory=list)


async def evaluate_due_timers(ctx: EnvelopeLifecycleContext, now: datetime) -> EvaluationReport:
    """Evaluate every timer due at or before `now`; returns what fired, failed, or was left to a peer."""
    settings = ctx.settings
    report = EvaluationReport()
    for microgrid_id in await timers.microgrids_with_due_timers(ctx.pool, now):
        await _evaluate_microgrid(ctx, settings, microgrid_id, now, report)
    return report


async def _evaluate_microgrid(
    ctx: EnvelopeLifecycleContext,
    settings: EnvelopeLifecycleSettings,
    microgrid_id: UUID,
    now: datetime,
    report: EvaluationReport,
) -> None:
    # Several instants share a transaction (fewer commits and relay wake-ups when catching up); after a
    # failure the batch is redone one instant per transaction, so the failing instant is the one blamed.
    batch = max(1, settings.lifecycle_instants_per_transaction)
    while True:
        current: list[Timer] = []
        fired: list[int] = []
        instants = 0
        try:
            async with ctx.unit_of_work() as uow:
                if not await try_lock_microgrid(uow.conn, microgrid_id):
                    report.skipped_microgrids.append(microgrid_id)  # another replica (or a write) has it
                    return
                while instants < batch:
                    current = await timers.claim_next_due_instant(uow.conn, microgrid_id, now)
                    if not current:
                        break
                    await _evaluate_instant(uow, settings, microgrid_id, current)
                    await timers.mark_fired(uow.conn, [t.timer_id for t in current], now)
                    fired += [t.timer_id for t in current]
                    instants += 1
            report.fired.extend(fired)
            if instants < batch:
                return  # nothing more due for this microgrid
        except Exception as exc:  # later instants of this microgrid wait: evaluating them first breaks order
            if batch > 1:
                batch = 1
                continue
            ids = [t.timer_id for t in current]
            log.exception("lifecycle timers %s of microgrid %s failed", ids, microgrid_id)
            if not ids:
                return
            async with ctx.unit_of_work() as uow:
                gave_up = await timers.record_failure(
                    uow.conn, ids, repr(exc), max_attempts=settings.lifecycle_timer_max_attempts, at=now
                )
            if not gave_up:
                return  # retried on the next round
            report.failed.extend(ids)  # given up on: the next instant may proceed


async def _evaluate_instant(
    uow: UnitOfWork, settings: EnvelopeLifecycleSettings, microgrid_id: UUID, claimed: list[Timer]
) -> None:
    at = claimed[0].fire_at
    affected: set[UUID] = set()
    for timer in claimed:
        if timer.kind is TimerKind.HEALTH_CHECK:
            assert timer.control_point_id is not None
            change = await reevaluate_source(
                uow, settings=settings, microgrid_id=microgrid_id, control_point_id=timer.control_point_id, at=at
            )
            if change is not None:
                affected |= await announce_health_change(uow, change, at=at, timer_id=timer.timer_id)
            continue
        assert timer.envelope_id is not None
        env = await envelopes.by_id(uow.conn, timer.envelope_id)
        if env is None or env.status in TERMINAL_STATUSES:
            continue  # withdrawn (its timers were cancelled) or already finished: nothing left to move
        record = env.record()
        assert record is not None
        evaluation = evaluate_lifecycle(domain_envelope(record), at)
        source = (
            await forecast_sources.get(uow.conn, microgrid_id, env.origin_control_point_id)
            if env.origin_control_point_id is not None
            else None
        )
        await record_transition(
            uow,
            env,
            transition=Transition.EXPIRY if timer.kind is TimerKind.EXPIRY else Transition.BLOCK_BOUNDARY,
            status=evaluation.status,
            at=at,
            timer_id=timer.timer_id,
            forecast_source_health=source.health if source else None,
            detail={"limit_watts": evaluation.limit_watts},
        )
        affected.add(env.node_id)
    await project_nodes(
        uow,
        settings=settings,
        microgrid_id=microgrid_id,
        node_ids=affected,
        at=at,
        trigger=ProjectionTrigger.ENVELOPE_LIFECYCLE,
    )
