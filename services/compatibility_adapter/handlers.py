"""One handler per consumed topic. Parsing and inbox dedup are done by the platform consumer; each
handler runs in the consumer's unit of work and hands on to the use case."""

from __future__ import annotations

from collections.abc import Mapping

from contracts.base import Message
from contracts.events import (
    CycleCompleted,
    EffectiveCircuitCapacityChanged,
    EffectiveCircuitCapacityReconciled,
    LegacyCircuitUpdated,
    LegacyRebalanceRequested,
    OperatingEnvelopeLifecycleEvaluated,
    OperatingEnvelopeReceived,
    ScheduledRebalancePeriodic,
    TopologyUpdated,
)
from libs.platform.clock import Clock
from libs.platform.messaging.consumer import Handler
from libs.platform.messaging.unit_of_work import UnitOfWork
from libs.platform.runtime import ServiceContext
from services.compatibility_adapter import service, tou_limits
from services.compatibility_adapter.adapters import alias_read_model


def handlers(ctx: ServiceContext) -> Mapping[str, Handler]:
    clock: Clock = ctx.extras["clock"]

    async def on_topology_updated(message: Message, uow: UnitOfWork) -> None:
        assert isinstance(message, TopologyUpdated)
        await alias_read_model.apply_topology(uow.conn, message.payload, clock.now())

    async def on_legacy_circuit_updated(message: Message, uow: UnitOfWork) -> None:
        assert isinstance(message, LegacyCircuitUpdated)
        await alias_read_model.save_legacy_circuit(uow.conn, message.payload, clock.now())

    async def on_legacy_rebalance_requested(message: Message, uow: UnitOfWork) -> None:
        assert isinstance(message, LegacyRebalanceRequested)
        await service.translate_legacy_rebalance(uow=uow, message=message, now=clock.now())

    async def on_rebalance_periodic(message: Message, uow: UnitOfWork) -> None:
        assert isinstance(message, ScheduledRebalancePeriodic)
        await service.dispatch_periodic_rebalance(uow=uow, message=message, now=clock.now())

    async def on_effective_circuit_capacity_changed(message: Message, uow: UnitOfWork) -> None:
        assert isinstance(message, EffectiveCircuitCapacityChanged)
        await service.apply_capacity_changed(uow=uow, message=message, now=clock.now())

    async def on_effective_circuit_capacity_reconciled(message: Message, uow: UnitOfWork) -> None:
        assert isinstance(message, EffectiveCircuitCapacityReconciled)
        await service.apply_capacity_reconciled(uow=uow, message=message)

    async def on_cycle_completed(message: Message, uow: UnitOfWork) -> None:
        assert isinstance(message, CycleCompleted)
        await service.record_cycle_result(uow=uow, cycle=message.payload)

    async def on_operating_envelope_received(message: Message, uow: UnitOfWork) -> None:
        assert isinstance(message, OperatingEnvelopeReceived)
        await tou_limits.record_envelope(uow=uow, envelope=message.payload, now=clock.now())

    async def on_operating_envelope_lifecycle_evaluated(message: Message, uow: UnitOfWork) -> None:
        assert isinstance(message, OperatingEnvelopeLifecycleEvaluated)
        evaluated = message.payload
        # The event's status is the outcome of this evaluation; the embedded record may predate it.
        envelope = evaluated.envelope.model_copy(update={"status": evaluated.status})
        await tou_limits.record_envelope(uow=uow, envelope=envelope, now=clock.now())

    return {
        "microgrid.topology_updated": on_topology_updated,
        "legacy_circuit.circuit_updated": on_legacy_circuit_updated,
        "load_balancer.rebalance_requested": on_legacy_rebalance_requested,
        "scheduler.rebalance_periodic": on_rebalance_periodic,
        "compatibility.effective_circuit_capacity_changed": on_effective_circuit_capacity_changed,
        "compatibility.effective_circuit_capacity_reconciled": on_effective_circuit_capacity_reconciled,
        "microgrid.cycle_completed": on_cycle_completed,
        "microgrid.operating_envelope_received": on_operating_envelope_received,
        "microgrid.operating_envelope_lifecycle_evaluated": on_operating_envelope_lifecycle_evaluated,
    }
