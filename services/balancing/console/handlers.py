"""The console's part of balancing's consumer: keep the console tables from events, wake the live page.

Balancing's own handlers already keep the tree, limits, envelopes, telemetry and capability status
(adapters/read_models). The console adds what an operator needs beyond a cycle's inputs: every
completed cycle as published (list and timeline), every envelope transition, the circuit capacity
with the value it replaced. Each runs in the same transaction as balancing's handler for that event;
the page is told after the commit (a Redis signal, as result_waiter does), so what it reloads is there.
"""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from contracts import events as ev
from contracts.base import Message
from contracts.records import CycleResultRecord
from libs.platform.messaging.unit_of_work import UnitOfWork
from libs.platform.result_waiter import result_channel
from libs.platform.runtime import ServiceContext, ServiceHandler
from libs.platform.settings import PlatformSettings
from services.balancing.console import store

# Events that change what the page shows (telemetry alone does not: it shows through the next cycle).
_LIVE: frozenset[type[Message]] = frozenset({
    ev.CycleCompleted,
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


async def _drawn(uow: UnitOfWork, cycle: CycleResultRecord) -> dict[UUID, int]:
    """What each timeline node measured when the cycle was recorded (balancing's telemetry read model)."""
    rows = await uow.conn.fetch(
        "SELECT node_id, (record->>'measured_demand_watts')::bigint AS watts FROM telemetry_readings"
        " WHERE microgrid_id = $1 AND node_id = ANY($2::uuid[])",
        cycle.microgrid_id,
        [n.node_id for n in store.timeline_nodes(cycle)],
    )
    return {r["node_id"]: int(r["watts"]) for r in rows if r["watts"] is not None}


async def on_event(message: Message, uow: UnitOfWork) -> None:
    """The console's bookkeeping for one event (after balancing's own handler, same transaction)."""
    if isinstance(message, ev.CycleCompleted):
        await store.save_timeline(uow.conn, message.payload, await _drawn(uow, message.payload))
    elif isinstance(message, ev.OperatingEnvelopeReceived):
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


async def on_cycles_published(uow: UnitOfWork, since: int = 0) -> None:
    """The cycles this transaction completes (its cycle_completed events from `uow.published[since:]`) go on
    the timeline now, and the page is told at commit.

    Balancing produces every cycle itself and keeps each one in `cycles`, so the console does not consume
    cycle_completed back from Kafka: that re-read and re-parsed every cycle's largest event for nothing.
    """
    for published in uow.published[since:]:
        if isinstance(published, ev.CycleCompleted):
            await on_event(published, uow)


async def _nothing(message: Message, uow: UnitOfWork, ctx: ServiceContext) -> None:
    return None


def with_console(handlers: Mapping[type[Message], ServiceHandler]) -> dict[type[Message], ServiceHandler]:
    """Balancing's handlers, each followed by the console's, plus the events only the console reads."""

    def chained(first: ServiceHandler) -> ServiceHandler:
        async def handle(message: Message, uow: UnitOfWork, ctx: ServiceContext) -> None:
            # One unit of work serves a whole poll batch: only this message's cycles are new here.
            since = len(uow.published)
            await first(message, uow, ctx)
            await on_event(message, uow)
            await on_cycles_published(uow, since)

        return handle

    return {message: chained(handlers.get(message, _nothing)) for message in [*handlers, *_CONSOLE_ONLY]}
