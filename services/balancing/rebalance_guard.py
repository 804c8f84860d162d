"""The rebalance-time guard (FR-028, D-023): `get_effective_circuit_capacity` before allocation.

For every managed GRID_CONNECTION node, the effective feeder-circuit capacity is recomputed at
`now` from envelope state (the domain's one resolution, the same one the cycle then uses as the
node's cap). When it differs from the last circuit-facing value (projected by envelope-lifecycle
or reconciled by an earlier cycle; the circuit's default capacity when nothing was ever
projected), the drift is corrected with trigger REBALANCE_GUARD. The guard never requests another
rebalance: it runs inside the cycle it protects.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

from contracts.enums import ProjectionTrigger
from contracts.events import EffectiveCircuitCapacityPayload
from libs.domain import (
    CircuitCapacityResolution,
    CycleInputs,
    managed_circuit_id,
    resolve_effective_circuit_capacity,
)
from services.balancing.adapters.read_models import CircuitCapacity as KnownCapacity


def get_effective_circuit_capacity(inputs: CycleInputs, circuit_id: str) -> CircuitCapacityResolution | None:
    """The effective capacity of `circuit_id` at the cycle's `now`, or None when no managed node maps to it."""
    circuits = {c.circuit_id: c for c in inputs.circuit_capacities}
    circuit = circuits.get(circuit_id)
    nodes = [n for n in inputs.nodes if managed_circuit_id(n) == circuit_id]
    if circuit is None or len(nodes) != 1:
        return None  # unmapped or ambiguous scope: nothing to project (D-022)
    return resolve_effective_circuit_capacity(
        circuit_id=circuit_id,
        node_id=nodes[0].node_id,
        envelopes=inputs.envelopes,
        forecast_sources=inputs.forecast_sources,
        default_capacity_watts=circuit.default_capacity_watts,
        fail_safe_capacity_watts=circuit.fail_safe_capacity_watts,
        now=inputs.now,
        gap_policy=inputs.gap_policy,
    )


def reconcile_circuit_capacities(
    inputs: CycleInputs, known: Mapping[UUID, KnownCapacity]
) -> list[EffectiveCircuitCapacityPayload]:
    """The reconciliations this cycle must record: one per managed node whose value drifted."""
    defaults = {c.circuit_id: c.default_capacity_watts for c in inputs.circuit_capacities}
    out = []
    for circuit_id in sorted(defaults):
        resolution = get_effective_circuit_capacity(inputs, circuit_id)
        if resolution is None:
            continue
        node_id = UUID(resolution.node_id)
        last = known.get(node_id)
        previous = last.capacity_watts if last is not None else defaults[circuit_id]
        if resolution.effective_capacity_watts != previous:
            out.append(_payload(inputs, resolution, previous, inputs.now))
    return out


def _payload(
    inputs: CycleInputs, resolution: CircuitCapacityResolution, previous: int, now: datetime
) -> EffectiveCircuitCapacityPayload:
    binding_envelope_id = resolution.binding_envelope_id
    return EffectiveCircuitCapacityPayload(
        microgrid_id=UUID(inputs.microgrid.microgrid_id),
        node_id=UUID(resolution.node_id),
        circuit_id=UUID(resolution.circuit_id),
        effective_capacity_watts=resolution.effective_capacity_watts,
        projection_trigger=ProjectionTrigger.REBALANCE_GUARD,
        previous_capacity_watts=previous,
        basis=resolution.basis,
        binding_envelope_id=UUID(binding_envelope_id) if binding_envelope_id is not None else None,
        forecast_source_health=resolution.forecast_health,
        evaluated_at=now,
    )

