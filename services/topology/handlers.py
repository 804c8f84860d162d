"""What topology does with the events it consumes: keep small read models, nothing else.

- `legacy_circuit.circuit_updated`: the depot's circuits, so resync knows its top-level feeders;
- operating envelope received / lifecycle evaluated: the active envelopes the depot view shows;
- effective circuit capacity changed / reconciled: the feeder capacities the depot view shows.
"""

from __future__ import annotations

from collections.abc import Mapping

from contracts.base import Message
from contracts.events import (
    EffectiveCircuitCapacityChanged,
    EffectiveCircuitCapacityReconciled,
    LegacyCircuitUpdated,
    OperatingEnvelopeLifecycleEvaluated,
    OperatingEnvelopeReceived,
)
from libs.platform.messaging.consumer import Handler
from libs.platform.messaging.unit_of_work import UnitOfWork
from libs.platform.runtime import ServiceContext
from services.topology.adapters import read_models


async def on_legacy_circuit_updated(message: Message, uow: UnitOfWork) -> None:
    assert isinstance(message, LegacyCircuitUpdated)
    await read_models.save_legacy_circuit(uow.conn, message.payload, message.occurred_at)


async def on_operating_envelope_received(message: Message, uow: UnitOfWork) -> None:
    assert isinstance(message, OperatingEnvelopeReceived)
    await read_models.save_envelope(uow.conn, message.payload, message.occurred_at)


async def on_operating_envelope_lifecycle_evaluated(message: Message, uow: UnitOfWork) -> None:
    assert isinstance(message, OperatingEnvelopeLifecycleEvaluated)
    # The payload's envelope is the whole record; its status is the one just evaluated.
    envelope = message.payload.envelope.model_copy(update={"status": message.payload.status})
    await read_models.save_envelope(uow.conn, envelope, message.payload.evaluated_at)


async def on_effective_circuit_capacity(message: Message, uow: UnitOfWork) -> None:
    assert isinstance(message, EffectiveCircuitCapacityChanged | EffectiveCircuitCapacityReconciled)
    await read_models.save_effective_capacity(uow.conn, message.payload)


def handlers(_: ServiceContext) -> Mapping[str, Handler]:
    return {
        "legacy_circuit.circuit_updated": on_legacy_circuit_updated,
        "microgrid.operating_envelope_received": on_operating_envelope_received,
        "microgrid.operating_envelope_lifecycle_evaluated": on_operating_envelope_lifecycle_evaluated,
        "compatibility.effective_circuit_capacity_changed": on_effective_circuit_capacity,
        "compatibility.effective_circuit_capacity_reconciled": on_effective_circuit_capacity,
    }
