"""The envelope-lifecycle service, wired: handlers, internal routes, the scheduler loop (port 8102)."""

from __future__ import annotations

from pathlib import Path

from libs.platform.runtime import ServiceDefinition
from services.envelope_lifecycle.handlers import HANDLERS
from services.envelope_lifecycle.routes import router
from services.envelope_lifecycle.scheduler import scheduler_loop
from services.envelope_lifecycle.service import evaluate_due_timers
from services.envelope_lifecycle.settings import EnvelopeLifecycleContext, EnvelopeLifecycleSettings
from services.envelope_lifecycle.topology_wait import parked_submission_sweeper

NAME = "envelope_lifecycle"


async def on_start(ctx: EnvelopeLifecycleContext) -> None:
    # Timers that came due while the service was down fire now, in order, before anything new is
    # consumed (the consumer starts after on_start).
    await evaluate_due_timers(ctx, ctx.clock.now())


DEFINITION = ServiceDefinition(
    name=NAME,
    migrations=Path(__file__).parent / "migrations",
    append_only_tables=("envelope_lifecycle_history",),
    handlers=HANDLERS,
    routers=lambda: [router],
    background=lambda ctx: [*scheduler_loop(ctx), *parked_submission_sweeper(ctx)],
    on_start=on_start,
    settings_type=EnvelopeLifecycleSettings,
)
