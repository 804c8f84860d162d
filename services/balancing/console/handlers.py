"""The console's part of balancing's consumer: keep the console tables from events, wake the live page.

Balancing's own handlers already keep the tree, limits, envelopes, telemetry and capability status
(adapters/read_models). The console adds what an operator needs beyond a cycle's inputs: every
envelope transition and the circuit capacity with the value it replaced. A cycle's timeline points are
written with the cycle itself (cycle_execution, store.timeline_points), and the cycle list is balancing's
`cycles` table. Each runs in the same transaction as balancing's handler for that event;
the page is told after the commit (a Redis signal, as result_waiter does), so what it reloads is there.
"""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from contracts import events as ev
from contracts.base import Message
from libs.platform.messaging.unit_of_work import UnitOfWork
from libs.platform.result_waiter import result_channel
from libs.platform.runtime import ServiceContext, ServiceHandler
from libs.platform.settings import PlatformSettings
from services.balancing.console import store

# Events that change what the page shows (telemetry alone does not: it shows through the next cycle; a cycle
# tells the page itself, cycle_execution).
_LIVE: frozenset[type[Message]] = frozenset({
    ev.TopologyUpdated,
    ev.NodeLimitUpdated,
    ev.OperatingEnvelopeReceived,
    ev.OperatingEnvelopeLifecycleEvaluated,
    ev.EffectiveCircuitCapacityChanged,
    ev.EffectiveCircuitCapacityReconciled,
    ev.CapabilityStatusRecorded,
})
# Events only the console reads (balancing's own handlers do not).
_CONSOLE_ONLY: tuple[type[Message], ...] = (ev.EffectiveCircuitCapacityReconciled,)


def console_channel(settings: PlatformSettings, microgrid_id: UUID | str) -> str:
    """Where the live page of one microgrid listens for "something changed"."""
    return result_channel(settings, "console", str(microgrid_id))


async def on_event(message: Message, uow: UnitOfWork) -> None:
    """The console's bookkeeping for one event (after balancing's own handler, same transaction)."""
    if isinstance(message, ev.OperatingEnvelopeReceived):
        e = message.payload
        await store.save_transition(
            uow.conn, event_id=message.event_id, envelope_id=e.envelope_id, microgrid_id=e.microgrid_id,
            transition="RECEIVED", previous_status=None, status=e.status, at=e.received_at,
        )
    elif isinstance(message, ev.OperatingEnvelopeLifecycleEvaluated):
        p = message.payload
        await store.save_transition(
            uow.conn, event_id=message.event_id, envelope_id=p.envelope_id, microgrid_id=p.microgrid_id,
            transition=p.timer_kind, previous_status=p.previous_status, status=p.status, at=p.evaluated_at,
        )
    elif isinstance(message, ev.EffectiveCircuitCapacityChanged | ev.EffectiveCircuitCapacityReconciled):
        await store.save_circuit_capacity(uow.conn, message.payload)
    if type(message) in _LIVE:
        microgrid_id = getattr(message.payload, "microgrid_id", None)
        if microgrid_id is not None:
            uow.signal_after_commit(console_channel(uow.settings, microgrid_id))


async def _nothing(message: Message, uow: UnitOfWork, ctx: ServiceContext) -> None:
    return None


def with_console(handlers: Mapping[type[Message], ServiceHandler]) -> dict[type[Message], ServiceHandler]:
    """Balancing's handlers, each followed by the console's, plus the events only the console reads."""

    def chained(first: ServiceHandler) -> ServiceHandler:
        async def handle(message: Message, uow: UnitOfWork, ctx: ServiceContext) -> None:
            await first(message, uow, ctx)
            await on_event(message, uow)

        return handle

    return {message: chained(handlers.get(message, _nothing)) for message in [*handlers, *_CONSOLE_ONLY]}
