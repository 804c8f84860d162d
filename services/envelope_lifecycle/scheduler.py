"""The envelope lifecycle scheduler: evaluates due timers, in order, exactly once, across replicas.

`evaluate_due_timers(ctx, now)` is the whole mechanism; the background loop only calls it with the
service clock's time every `lifecycle_scheduler_interval_s`, and start-up calls it once before the
service consumes anything (timers that came due while it was down fire then, in order).

Per microgrid, one transaction at a time: take the microgrid's advisory lock (try-lock: a replica that
finds it held skips that microgrid this round), claim every timer of the earliest due instant with
FOR UPDATE SKIP LOCKED, apply them (health checks first, then envelope boundaries by envelope id),
recompute the affected projections once at that instant, mark the timers FIRED, commit. State change,
outbox rows and the FIRED mark commit together, so a timer fires once or not at all. Each instant is
evaluated at its scheduled timestamp, not at `now`, so a late run gives the same result (NFR-011).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from contracts.enums import ProjectionTrigger
from libs.domain.envelope_lifecycle import evaluate_lifecycle
from libs.domain.envelopes import TERMINAL_STATUSES
from libs.domain.from_records import domain_envelope
from libs.platform.messaging.unit_of_work import UnitOfWork
from services.envelope_lifecycle.adapters import envelopes, forecast_sources, timers
from services.envelope_lifecycle.adapters.locks import try_lock_microgrid
from services.envelope_lifecycle.adapters.timers import Timer, TimerKind
from services.envelope_lifecycle.lifecycle import Transition, record_transition
from services.envelope_lifecycle.projection import project_nodes
from services.envelope_lifecycle.settings import EnvelopeLifecycleContext, EnvelopeLifecycleSettings
from services.envelope_lifecycle.source_health import announce_health_change, reevaluate_source

log = logging.getLogger(__name__)


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


def scheduler_loop(ctx: EnvelopeLifecycleContext) -> list:
    """The background loop (empty when switched off): evaluate due timers at the clock's time, repeatedly."""
    settings = ctx.settings
    if not settings.lifecycle_scheduler_enabled:
        return []

    async def run() -> None:
        clock = ctx.clock
        while True:
            await evaluate_due_timers(ctx, clock.now())
            await asyncio.sleep(settings.lifecycle_scheduler_interval_s)

    return [run]
