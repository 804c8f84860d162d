"""What topology does with the events it consumes: keep small read models, nothing else.

- `legacy_circuit.circuit_updated`: the depot's circuits, so resync knows its top-level feeders;
- operating envelope received / lifecycle evaluated: the active envelopes the depot view shows;
- effective circuit capacity changed / reconciled: the feeder capacities the depot view shows.
"""

from __future__ import annotations

from collections.abc import Mapping

from contracts import events as ev
from contracts.base import Message
from libs.platform.messaging.unit_of_work import UnitOfWork
from libs.platform.runtime import ServiceHandler
from services.topology.adapters import read_models
from services.topology.settings import TopologyContext as Ctx


async def on_legacy_circuit_updated(message: ev.LegacyCircuitUpdated, uow: UnitOfWork, ctx: Ctx) -> None:
    await read_models.save_legacy_circuit(uow.conn, message.payload, message.occurred_at)


async def on_operating_envelope_received(message: ev.OperatingEnvelopeReceived, uow: UnitOfWork, ctx: Ctx) -> None:
    await read_models.save_envelope(uow.conn, message.payload, message.occurred_at)


async def on_operating_envelope_lifecycle_evaluated(
    message: ev.OperatingEnvelopeLifecycleEvaluated, uow: UnitOfWork, ctx: Ctx
) -> None:
    # The payload's envelope is the whole record; its status is the one just evaluated.
    envelope = message.payload.envelope.model_copy(update={"status": message.payload.status})
    await read_models.save_envelope(uow.conn, envelope, message.payload.evaluated_at)


async def on_effective_circuit_capacity(
    message: ev.EffectiveCircuitCapacityChanged | ev.EffectiveCircuitCapacityReconciled, uow: UnitOfWork, ctx: Ctx
) -> None:
    await read_models.save_effective_capacity(uow.conn, message.payload)


HANDLERS: Mapping[type[Message], ServiceHandler] = {
    ev.LegacyCircuitUpdated: on_legacy_circuit_updated,
    ev.OperatingEnvelopeReceived: on_operating_envelope_received,
    ev.OperatingEnvelopeLifecycleEvaluated: on_operating_envelope_lifecycle_evaluated,
    ev.EffectiveCircuitCapacityChanged: on_effective_circuit_capacity,
    ev.EffectiveCircuitCapacityReconciled: on_effective_circuit_capacity,
}
