"""What this service keeps in its ServiceContext: the clock it reads time from, and its typed settings."""

from __future__ import annotations

from libs.platform.clock import Clock, SystemClock
from libs.platform.runtime import ServiceContext
from services.envelope_lifecycle.settings import EnvelopeLifecycleSettings, envelope_lifecycle_settings

CLOCK = "clock"


def clock_of(ctx: ServiceContext) -> Clock:
    clock: Clock = ctx.extras.setdefault(CLOCK, SystemClock())
    return clock


def settings_of(ctx: ServiceContext) -> EnvelopeLifecycleSettings:
    return envelope_lifecycle_settings(ctx.settings)
