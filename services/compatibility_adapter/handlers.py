"""One handler per consumed message type. Parsing and inbox dedup are done by the platform consumer; each
handler runs in the consumer's unit of work and hands on to the use case."""

from __future__ import annotations

from collections.abc import Mapping

from contracts import events as ev
from contracts.base import Message
from libs.platform.messaging.unit_of_work import UnitOfWork
from libs.platform.runtime import ServiceHandler
from services.compatibility_adapter import capacity_changes, service, tou_limits
from services.compatibility_adapter.adapters import alias_read_model
from services.compatibility_adapter.settings import CompatibilityAdapterContext as Ctx


async def on_topology_updated(message: ev.TopologyUpdated, uow: UnitOfWork, ctx: Ctx) -> None:
    await alias_read_model.apply_topology(uow.conn, message.payload, ctx.clock.now())


async def on_legacy_circuit_updated(message: ev.LegacyCircuitUpdated, uow: UnitOfWork, ctx: Ctx) -> None:
    await alias_read_model.save_legacy_circuit(uow.conn, message.payload, ctx.clock.now())


async def on_legacy_rebalance_requested(message: ev.LegacyRebalanceRequested, uow: UnitOfWork, ctx: Ctx) -> None:
    await service.translate_legacy_rebalance(uow=uow, message=message, now=ctx.clock.now())


async def on_rebalance_periodic(message: ev.ScheduledRebalancePeriodic, uow: UnitOfWork, ctx: Ctx) -> None:
    await service.dispatch_periodic_rebalance(uow=uow, message=message, now=ctx.clock.now())


async def on_effective_circuit_capacity_changed(
    message: ev.EffectiveCircuitCapacityChanged, uow: UnitOfWork, ctx: Ctx
) -> None:
    await capacity_changes.apply_capacity_changed(uow=uow, message=message, now=ctx.clock.now())


async def on_effective_circuit_capacity_reconciled(
    message: ev.EffectiveCircuitCapacityReconciled, uow: UnitOfWork, ctx: Ctx
) -> None:
    await capacity_changes.apply_capacity_reconciled(uow=uow, message=message)


async def on_operating_envelope_received(message: ev.OperatingEnvelopeReceived, uow: UnitOfWork, ctx: Ctx) -> None:
    await tou_limits.record_envelope(uow=uow, envelope=message.payload, now=ctx.clock.now())


async def on_operating_envelope_lifecycle_evaluated(
    message: ev.OperatingEnvelopeLifecycleEvaluated, uow: UnitOfWork, ctx: Ctx
) -> None:
    evaluated = message.payload
    # The event's status is the outcome of this evaluation; the embedded record may predate it.
    envelope = evaluated.envelope.model_copy(update={"status": evaluated.status})
    await tou_limits.record_envelope(uow=uow, envelope=envelope, now=ctx.clock.now())


HANDLERS: Mapping[type[Message], ServiceHandler] = {
    ev.TopologyUpdated: on_topology_updated,
    ev.LegacyCircuitUpdated: on_legacy_circuit_updated,
    ev.LegacyRebalanceRequested: on_legacy_rebalance_requested,
    ev.ScheduledRebalancePeriodic: on_rebalance_periodic,
    ev.EffectiveCircuitCapacityChanged: on_effective_circuit_capacity_changed,
    ev.EffectiveCircuitCapacityReconciled: on_effective_circuit_capacity_reconciled,
    ev.OperatingEnvelopeReceived: on_operating_envelope_received,
    ev.OperatingEnvelopeLifecycleEvaluated: on_operating_envelope_lifecycle_evaluated,
}
