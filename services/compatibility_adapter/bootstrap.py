"""The compatibility adapter, wired: legacy circuit doors in, microgrid contracts out (port 8104).

Removable by design (spec section 7): stop this service and drop its schema; no other service reads its
tables or depends on its events to do its own job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from contracts import events as ev
from contracts.topics import topic_for
from libs.platform.messaging.backpressure import hold_while_behind_forever
from libs.platform.runtime import ServiceDefinition
from services.compatibility_adapter.handlers import HANDLERS, PASSES_OVER
from services.compatibility_adapter.routes import router
from services.compatibility_adapter.settings import CompatibilityAdapterContext, CompatibilityAdapterSettings

# The periodic triggers that become cycles: held back in Kafka while balancing is behind.
TRIGGER_TOPICS = (topic_for(ev.LegacyRebalanceRequested).name, topic_for(ev.ScheduledRebalancePeriodic).name)


def background(ctx: CompatibilityAdapterContext) -> list[Callable[[], Awaitable[None]]]:
    s, consumer = ctx.settings, ctx.consumer
    if not s.compat_backpressure_high or consumer is None:
        return []
    return [lambda: hold_while_behind_forever(
        ctx.redis, s, consumer, downstream_group="balancing", topics=TRIGGER_TOPICS,
        high=s.compat_backpressure_high, low=s.compat_backpressure_low,
    )]


DEFINITION = ServiceDefinition(
    name="compatibility_adapter",
    migrations=Path(__file__).parent / "migrations",
    append_only_tables=("translation_audit",),
    handlers=HANDLERS,
    passes_over=PASSES_OVER,
    routers=lambda: [router],
    background=background,
    settings_type=CompatibilityAdapterSettings,
)
