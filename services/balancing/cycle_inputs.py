"""The cycle's inputs, gathered from balancing's read models into the domain's `CycleInputs`.

Pure translation from contract records to domain values: no rule is decided here. Two choices
the records leave open are made here, on the safe side (D-012):

- a fallback rule with no `fallback_demand_watts` gives no value to fall back on, so it is left out
  and a stale scope with only that rule fails safe (TELEMETRY_INSUFFICIENT);
- a LOAD_BALANCING control point whose aggregate cap config cannot be read caps the microgrid at
  0 W (the breach names that control point) rather than leaving the site uncapped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from contracts.enums import CapabilityType, ConstraintType, RebalanceSource
from contracts.events import RebalanceRequestedPayload
from contracts.records import (
    CapabilityControlPointRecord,
    ConnectorDemandRecord,
    FallbackRuleRecord,
    LegacyCircuitRecord,
    TelemetryReadingRecord,
)
from libs.domain import (
    AggregateCap,
    CircuitCapacity,
    ConnectorDemand,
    CycleInputs,
    FallbackRule,
    ForecastSource,
    GapPolicy,
    Microgrid,
    MicrogridNode,
    NodeLimit,
    OperatingEnvelope,
    TelemetryReading,
    aggregate_caps_from_local_config,
    managed_circuit_id,
)
from libs.domain.envelopes import LIVE_STATUSES
from libs.domain.from_records import domain_envelope, domain_node, domain_node_limit
from services.balancing.adapters.read_models import MicrogridState, StaticPart, TelemetryPart

log = logging.getLogger(__name__)

_NIL = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class CycleSettings:
    freshness_threshold_seconds: int
    gap_policy: GapPolicy = GapPolicy.DEFAULT_CAPACITY


@dataclass(frozen=True)
class StaticCycleInputs:
    """The domain values a microgrid's static read models give; computed once per state stamp."""

    microgrid: Microgrid | None
    nodes: tuple[MicrogridNode, ...]
    node_limits: tuple[NodeLimit, ...]
    envelopes: tuple[OperatingEnvelope, ...]
    forecast_sources: tuple[ForecastSource, ...]
    circuit_capacities: tuple[CircuitCapacity, ...]
    aggregate_caps: tuple[AggregateCap, ...]
    fallback_rules: tuple[FallbackRule, ...]


@dataclass(frozen=True)
class TelemetryCycleInputs:
    telemetry: tuple[TelemetryReading, ...]
    connector_demands: tuple[ConnectorDemand, ...]


def static_cycle_inputs(state: StaticPart | MicrogridState) -> StaticCycleInputs:
    topology = state.topology
    nodes = tuple(domain_node(n) for n in topology.nodes) if topology else ()
    return StaticCycleInputs(
        microgrid=Microgrid(str(topology.microgrid_id), str(topology.depot_id), topology.version) if topology else None,
        nodes=nodes,
        node_limits=tuple(domain_node_limit(x) for x in state.node_limits),
        envelopes=tuple(domain_envelope(e) for e in state.envelopes if e.status in LIVE_STATUSES),
        forecast_sources=forecast_sources(state),
        circuit_capacities=circuit_capacities(nodes, state.circuits),
        aggregate_caps=aggregate_caps(state.control_points),
        fallback_rules=tuple(
            r for r in (domain_fallback_rule(x) for x in (topology.fallback_rules if topology else ())) if r
        ),
    )


def telemetry_cycle_inputs(state: TelemetryPart | MicrogridState) -> TelemetryCycleInputs:
    return TelemetryCycleInputs(
        telemetry=tuple(map(domain_reading, state.readings)),
        connector_demands=tuple(map(domain_demand, state.demands)),
    )


def assemble_cycle_inputs(
    *,
    state: MicrogridState,
    request: RebalanceRequestedPayload,
    cycle_id: UUID,
    now: datetime,
    rotation: int,
    settings: CycleSettings,
) -> CycleInputs:
    """Everything the cycle decides from. Without a known topology the tree is empty (TOPOLOGY_INVALID)."""
    return cycle_inputs_from(
        static_cycle_inputs(state),
        telemetry_cycle_inputs(state),
        request=request,
        cycle_id=cycle_id,
        now=now,
        rotation=rotation,
        settings=settings,
    )


def cycle_inputs_from(
    static: StaticCycleInputs,
    telemetry: TelemetryCycleInputs,
    *,
    request: RebalanceRequestedPayload,
    cycle_id: UUID,
    now: datetime,
    rotation: int,
    settings: CycleSettings,
) -> CycleInputs:
    """The cycle's inputs from domain values already derived (and cached) from the read models."""
    return CycleInputs(
        cycle_id=str(cycle_id),
        microgrid=static.microgrid or Microgrid(str(request.microgrid_id), _NIL, 0),
        nodes=static.nodes,
        now=now,
        expected_topology_version=request.expected_topology_version,
        scope_node_id=str(request.node_id) if request.node_id else None,
        node_limits=static.node_limits,
        envelopes=static.envelopes,
        forecast_sources=static.forecast_sources,
        circuit_capacities=static.circuit_capacities,
        aggregate_caps=static.aggregate_caps,
        telemetry=telemetry.telemetry,
        connector_demands=telemetry.connector_demands,
        fallback_rules=static.fallback_rules,
        freshness_threshold_seconds=settings.freshness_threshold_seconds,
        gap_policy=settings.gap_policy,
        rotation=rotation,
        rebalance_source=request.source,
        correlation_id=request.correlation_id,
        legacy_alias_applied=request.source is RebalanceSource.LEGACY_ALIAS or request.circuit_id is not None,
    )


# ---- records -> domain values ------------------------------------------------------------------





def domain_reading(r: TelemetryReadingRecord) -> TelemetryReading:
    # A report with neither value measured nothing: it cannot count as fresh demand.
    measured, generated = r.measured_demand_watts, r.measured_generation_watts
    return TelemetryReading(
        node_id_text(r.node_id),
        r.observed_at,
        measured or 0,
        generated or 0,
        r.valid and not (measured is None and generated is None),
    )


def domain_demand(d: ConnectorDemandRecord) -> ConnectorDemand:
    return ConnectorDemand(node_id_text(d.node_id), d.requested_watts, d.min_watts, d.priority, d.weight)


# A node id's text by its integer: every telemetry report names the same nodes again, and `str(UUID)`
# formats in Python (~1 us; a depot's report has ~500 records). Bounded (~30 MB at most): forgotten all
# at once beyond it.
_ID_TEXTS: dict[int, str] = {}
_ID_TEXTS_MAX = 200_000  # a 300-depot fleet names ~93,000 nodes


def node_id_text(node_id: UUID) -> str:
    key = node_id.int
    text = _ID_TEXTS.get(key)
    if text is None:
        if len(_ID_TEXTS) >= _ID_TEXTS_MAX:
            _ID_TEXTS.clear()
        text = _ID_TEXTS[key] = str(node_id)
    return text


def domain_fallback_rule(r: FallbackRuleRecord) -> FallbackRule | None:
    if r.fallback_demand_watts is None:
        return None
    return FallbackRule(str(r.node_id), r.fallback_demand_watts)


def forecast_sources(state: StaticPart | MicrogridState) -> tuple[ForecastSource, ...]:
    """Known forecast sources with their health, bound to the node their control point targets."""
    target: dict[UUID, UUID | None] = {cp.control_point_id: cp.node_id for cp in state.control_points}
    return tuple(
        ForecastSource(str(cp_id), health, str(target[cp_id]) if target.get(cp_id) else None)
        for cp_id, health in sorted(state.forecast_health.items(), key=lambda kv: str(kv[0]))
    )


def circuit_capacities(
    nodes: tuple[MicrogridNode, ...], circuits: dict[UUID, LegacyCircuitRecord]
) -> tuple[CircuitCapacity, ...]:
    """Default and fail-safe capacity of the feeder circuit behind each managed GRID_CONNECTION node."""
    out = []
    for node in nodes:
        circuit_id = managed_circuit_id(node)
        circuit = circuits.get(UUID(circuit_id)) if circuit_id else None
        if circuit is not None and not circuit.removed:
            out.append(
                CircuitCapacity(
                    str(circuit.circuit_id), circuit.default_capacity_watts, circuit.fail_safe_capacity_watts
                )
            )
    return tuple(out)


def aggregate_caps(points: list[CapabilityControlPointRecord]) -> tuple[AggregateCap, ...]:
    """Caps of the active microgrid-wide LOAD_BALANCING control point (node_id null)."""
    caps: list[AggregateCap] = []
    for cp in points:
        if cp.capability_type is not CapabilityType.LOAD_BALANCING or cp.node_id is not None or not cp.active:
            continue
        try:
            caps.extend(aggregate_caps_from_local_config(str(cp.control_point_id), cp.local_config))
        except ValueError as exc:
            log.warning("control point %s: unreadable aggregate cap (%s); capping at 0 W", cp.control_point_id, exc)
            caps.append(AggregateCap(str(cp.control_point_id), 0, ConstraintType.CONSUMPTION_CAP))
    return tuple(caps)
