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
from libs.platform.messaging.consumer import Handler
from libs.platform.messaging.unit_of_work import UnitOfWork
from libs.platform.runtime import ServiceContext
from services.balancing import service
from services.balancing.adapters import read_models
from services.balancing.settings import balancing_settings


def handlers(ctx: ServiceContext) -> Mapping[str, Handler]:
    settings = balancing_settings(ctx.settings)
    cache = service.state_cache_of(ctx)

    async def on_rebalance_requested(message: Message, uow: UnitOfWork) -> None:
        assert isinstance(message, ev.RebalanceRequested)
        await service.handle_rebalance_requested(
            uow, message, clock=service.clock_of(ctx), settings=settings, cache=cache
        )

    async def on_topology_updated(message: Message, uow: UnitOfWork) -> None:
        assert isinstance(message, ev.TopologyUpdated)
        topology = message.payload
        if await read_models.save_topology(uow.conn, topology):
            # Requests that were waiting for this version run now, in this transaction.
            await service.run_ready_requests(
                uow, topology.microgrid_id, topology.version, clock=service.clock_of(ctx), settings=settings,
                cache=cache,
            )

    async def on_node_limit_updated(message: Message, uow: UnitOfWork) -> None:
        assert isinstance(message, ev.NodeLimitUpdated)
        await read_models.save_node_limit(uow.conn, message.payload)

    async def on_control_point_updated(message: Message, uow: UnitOfWork) -> None:
        assert isinstance(message, ev.CapabilityControlPointUpdated)
        await read_models.save_control_point(uow.conn, message.payload)

    async def on_capability_status_recorded(message: Message, uow: UnitOfWork) -> None:
        assert isinstance(message, ev.CapabilityStatusRecorded)
        await read_models.save_capability_status(uow.conn, message.payload)

    async def on_envelope_received(message: Message, uow: UnitOfWork) -> None:
        assert isinstance(message, ev.OperatingEnvelopeReceived)
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

    async def on_envelope_lifecycle_evaluated(message: Message, uow: UnitOfWork) -> None:
        assert isinstance(message, ev.OperatingEnvelopeLifecycleEvaluated)
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

    async def on_effective_circuit_capacity_changed(message: Message, uow: UnitOfWork) -> None:
        assert isinstance(message, ev.EffectiveCircuitCapacityChanged)
        await read_models.save_circuit_capacity(uow.conn, message.payload)

    async def on_legacy_circuit_updated(message: Message, uow: UnitOfWork) -> None:
        assert isinstance(message, ev.LegacyCircuitUpdated)
        await read_models.save_legacy_circuit(uow.conn, LegacyCircuitRecord(**message.payload.model_dump()))

    async def on_telemetry_reported(message: Message, uow: UnitOfWork) -> None:
        assert isinstance(message, ev.TelemetryReported)
        report = message.payload
        await read_models.save_telemetry(uow.conn, report.microgrid_id, report.readings, report.demands)

    return {
        "microgrid.rebalance_requested": on_rebalance_requested,
        "microgrid.topology_updated": on_topology_updated,
        "microgrid.node_limit_updated": on_node_limit_updated,
        "microgrid.capability_control_point_updated": on_control_point_updated,
        "microgrid.capability_status.recorded": on_capability_status_recorded,
        "microgrid.operating_envelope_received": on_envelope_received,
        "microgrid.operating_envelope_lifecycle_evaluated": on_envelope_lifecycle_evaluated,
        "compatibility.effective_circuit_capacity_changed": on_effective_circuit_capacity_changed,
        "legacy_circuit.circuit_updated": on_legacy_circuit_updated,
        "microgrid.telemetry_reported": on_telemetry_reported,
    }
