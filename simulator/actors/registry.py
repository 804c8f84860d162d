"""The legacy circuit registry: the source of feeder circuits (legacy_circuit.circuit_updated records)."""

from __future__ import annotations

from contracts.events import LegacyCircuitUpdated, LegacyCircuitUpdatedPayload
from simulator.actors.messages import new_message
from simulator.clock import ScenarioClock
from simulator.depot import CircuitSpec
from simulator.depot_state import DepotState
from simulator.wire import Publication

PRODUCER = "simulator.circuit-registry"


def circuit_updated(state: DepotState, clock: ScenarioClock, circuit: CircuitSpec, *, correlation_id: str,
                    removed: bool = False) -> Publication:
    payload = LegacyCircuitUpdatedPayload(
        circuit_id=state.circuit_id(circuit.name),
        depot_id=state.depot_id,
        parent_circuit_id=state.circuit_id(circuit.parent) if circuit.parent else None,
        name=circuit.name,
        default_capacity_watts=circuit.default_capacity_watts,
        fail_safe_capacity_watts=circuit.fail_safe_capacity_watts,
        removed=removed,
    )
    return Publication(new_message(LegacyCircuitUpdated, payload, producer=PRODUCER, ids=state.ids, clock=clock,
                                   correlation_id=correlation_id))
