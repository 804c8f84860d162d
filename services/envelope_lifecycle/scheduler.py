"""The envelope lifecycle scheduler loop: evaluates due timers (`service.evaluate_due_timers`) at the
service clock's time every `lifecycle_scheduler_interval_s`. Start-up calls it once before the service
consumes anything (bootstrap.py), so timers that came due while it was down fire then, in order.
"""

from __future__ import annotations

import asyncio

from services.envelope_lifecycle.service import evaluate_due_timers
from services.envelope_lifecycle.settings import EnvelopeLifecycleContext


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
