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
from services.compatibility_adapter.cycle_result_reader import CycleResultReader
from services.compatibility_adapter.handlers import HANDLERS
from services.compatibility_adapter.routes import router
from services.compatibility_adapter.settings import CompatibilityAdapterContext, CompatibilityAdapterSettings

# The periodic triggers that become cycles: held back in Kafka while balancing is behind.
TRIGGER_TOPICS = (topic_for(ev.LegacyRebalanceRequested).name, topic_for(ev.ScheduledRebalancePeriodic).name)


def background(ctx: CompatibilityAdapterContext) -> list[Callable[[], Awaitable[None]]]:
    s, consumer, reader = ctx.settings, ctx.consumer, ctx.memory
    loops: list[Callable[[], Awaitable[None]]] = [lambda: reader.run(ctx)]  # the HTTP door's cycle results
    if s.compat_backpressure_high and consumer is not None:
        loops.append(lambda: hold_while_behind_forever(
            ctx.redis, s, consumer, downstream_group="balancing", topics=TRIGGER_TOPICS,
            high=s.compat_backpressure_high, low=s.compat_backpressure_low,
        ))
    return loops


DEFINITION = ServiceDefinition(
    name="compatibility_adapter",
    migrations=Path(__file__).parent / "migrations",
    append_only_tables=("translation_audit",),
    handlers=HANDLERS,
    memory=CycleResultReader,
    routers=lambda: [router],
    background=background,
    settings_type=CompatibilityAdapterSettings,
)
