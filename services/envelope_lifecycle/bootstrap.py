"""The envelope-lifecycle service, wired: handlers, internal routes, the scheduler loop, the clock.

`build_definition(clock)` lets tests run the very same service on a ManualClock; `DEFINITION` is the
production wiring on the SystemClock (`mgrid run envelope_lifecycle`, port 8102).
"""

from __future__ import annotations

from pathlib import Path

from libs.platform.clock import Clock, SystemClock
from libs.platform.runtime import ServiceContext, ServiceDefinition
from services.envelope_lifecycle.context import CLOCK, clock_of
from services.envelope_lifecycle.handlers import build_handlers
from services.envelope_lifecycle.routes import router
from services.envelope_lifecycle.scheduler import evaluate_due_timers, scheduler_loop
from services.envelope_lifecycle.settings import EnvelopeLifecycleSettings
from services.envelope_lifecycle.topology_wait import parked_submission_sweeper

NAME = "envelope_lifecycle"


def build_definition(clock: Clock | None = None) -> ServiceDefinition:
    async def on_start(ctx: ServiceContext) -> None:
        ctx.extras[CLOCK] = clock or SystemClock()
        # Timers that came due while the service was down fire now, in order, before anything new is
        # consumed (the consumer starts after on_start).
        await evaluate_due_timers(ctx, clock_of(ctx).now())

    return ServiceDefinition(
        name=NAME,
        migrations=Path(__file__).parent / "migrations",
        append_only_tables=("envelope_lifecycle_history",),
        handlers=build_handlers,
        routers=lambda: [router],
        background=lambda ctx: [*scheduler_loop(ctx), *parked_submission_sweeper(ctx)],
        on_start=on_start,
        settings_factory=EnvelopeLifecycleSettings,
    )


DEFINITION = build_definition()
