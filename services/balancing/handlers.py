"""One handler per consumed topic. Upstream events keep balancing's read models; a rebalance request runs a cycle.

Each handler runs in the consumer's transaction (inbox row, state, outbox together); partition
order (keyed by microgrid) makes the consumer sequential per microgrid.
"""

from __future__ import annotations

from collections.abc import Mapping

from contracts import events as ev
from contracts.base import Message
from contracts.enums import EnvelopeType, ForecastSourceHealth
from contracts.records import LegacyCircuitRecord
from libs.platform.messaging.unit_of_work import UnitOfWork
from libs.platform.runtime import ServiceHandler
from services.balancing import service
from services.balancing.adapters import read_models
from services.balancing.settings import BalancingContext as Ctx


async def on_rebalance_requested(message: ev.RebalanceRequested, uow: UnitOfWork, ctx: Ctx) -> None:
    await service.handle_rebalance_requested(
        uow, message, clock=ctx.clock, settings=ctx.settings, cache=service.state_cache_of(ctx)
    )


async def on_topology_updated(message: ev.TopologyUpdated, uow: UnitOfWork, ctx: Ctx) -> None:
    topology = message.payload
    if await read_models.save_topology(uow.conn, topology):
        # Requests that were waiting for this version run now, in this transaction.
        await service.run_ready_requests(
            uow, topology.microgrid_id, topology.version, clock=ctx.clock, settings=ctx.settings,
            cache=service.state_cache_of(ctx),
        )


async def on_node_limit_updated(message: ev.NodeLimitUpdated, uow: UnitOfWork, ctx: Ctx) -> None:
    await read_models.save_node_limit(uow.conn, message.payload)


async def on_control_point_updated(message: ev.CapabilityControlPointUpdated, uow: UnitOfWork, ctx: Ctx) -> None:
    await read_models.save_control_point(uow.conn, message.payload)


async def on_capability_status_recorded(message: ev.CapabilityStatusRecorded, uow: UnitOfWork, ctx: Ctx) -> None:
    await read_models.save_capability_status(uow.conn, message.payload)


async def on_envelope_received(message: ev.OperatingEnvelopeReceived, uow: UnitOfWork, ctx: Ctx) -> None:
    envelope = message.payload
    await read_models.save_envelope(uow.conn, envelope)
    if envelope.envelope_type is EnvelopeType.FORECAST and envelope.origin_control_point_id is not None:
        # A source's first forecast is fresh; later health changes arrive as lifecycle evaluations.
        await read_models.save_forecast_health(
            uow.conn,
            microgrid_id=envelope.microgrid_id,
            control_point_id=envelope.origin_control_point_id,
            health=ForecastSourceHealth.HEALTHY,
            evaluated_at=envelope.received_at,
            first_only=True,
        )


async def on_envelope_lifecycle_evaluated(
    message: ev.OperatingEnvelopeLifecycleEvaluated, uow: UnitOfWork, ctx: Ctx
) -> None:
    evaluation = message.payload
    await read_models.save_envelope(uow.conn, evaluation.envelope)
    if evaluation.forecast_source_health is not None and evaluation.origin_control_point_id is not None:
        await read_models.save_forecast_health(
            uow.conn,
            microgrid_id=evaluation.microgrid_id,
            control_point_id=evaluation.origin_control_point_id,
            health=evaluation.forecast_source_health,
            evaluated_at=evaluation.evaluated_at,
        )


async def on_effective_circuit_capacity_changed(
    message: ev.EffectiveCircuitCapacityChanged, uow: UnitOfWork, ctx: Ctx
) -> None:
    await read_models.save_circuit_capacity(uow.conn, message.payload)


async def on_legacy_circuit_updated(message: ev.LegacyCircuitUpdated, uow: UnitOfWork, ctx: Ctx) -> None:
    await read_models.save_legacy_circuit(uow.conn, LegacyCircuitRecord(**message.payload.model_dump()))


async def on_telemetry_reported(message: ev.TelemetryReported, uow: UnitOfWork, ctx: Ctx) -> None:
    report = message.payload
    saved = await read_models.save_telemetry(uow.conn, report.microgrid_id, report.readings, report.demands)
    if saved is not None:
        cache = service.state_cache_of(ctx)
        uow.on_commit(lambda: cache.telemetry_saved(report.microgrid_id, saved))


# The console adds its own bookkeeping to these, and two event types only it reads (bootstrap.py).
HANDLERS: Mapping[type[Message], ServiceHandler] = {
    ev.RebalanceRequested: on_rebalance_requested,
    ev.TopologyUpdated: on_topology_updated,
    ev.NodeLimitUpdated: on_node_limit_updated,
    ev.CapabilityControlPointUpdated: on_control_point_updated,
    ev.CapabilityStatusRecorded: on_capability_status_recorded,
    ev.OperatingEnvelopeReceived: on_envelope_received,
    ev.OperatingEnvelopeLifecycleEvaluated: on_envelope_lifecycle_evaluated,
    ev.EffectiveCircuitCapacityChanged: on_effective_circuit_capacity_changed,
    ev.LegacyCircuitUpdated: on_legacy_circuit_updated,
    ev.TelemetryReported: on_telemetry_reported,
}
