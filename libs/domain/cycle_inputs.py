"""Everything one balancing cycle decides from, passed in explicitly (no clock, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from contracts.enums import RebalanceSource
from libs.domain.circuit_capacity import CircuitCapacity, ForecastSource, GapPolicy
from libs.domain.demand import FallbackRule, TelemetryReading
from libs.domain.envelopes import OperatingEnvelope
from libs.domain.limits import AggregateCap, NodeLimit
from libs.domain.topology import Microgrid, MicrogridNode


@dataclass(frozen=True, slots=True)
class ConnectorDemand:
    """What a connector asks for this cycle.

    ``min_watts``: below it the connector cannot charge, so it gets 0 rather than a trickle.
    ``priority``: higher classes are served first. ``weight``: its share within a class.
    """

    node_id: str
    requested_watts: int
    min_watts: int = 0
    priority: int = 0
    weight: int = 1


@dataclass(frozen=True, slots=True)
class CycleInputs:
    cycle_id: str
    microgrid: Microgrid
    nodes: tuple[MicrogridNode, ...]
    now: datetime
    started_at: datetime | None = None  # defaults to now
    ended_at: datetime | None = None  # defaults to started_at: the decision itself takes no model time
    expected_topology_version: int | None = None
    scope_node_id: str | None = None
    node_limits: tuple[NodeLimit, ...] = ()
    envelopes: tuple[OperatingEnvelope, ...] = ()
    forecast_sources: tuple[ForecastSource, ...] = ()
    circuit_capacities: tuple[CircuitCapacity, ...] = ()
    aggregate_caps: tuple[AggregateCap, ...] = ()
    telemetry: tuple[TelemetryReading, ...] = ()
    connector_demands: tuple[ConnectorDemand, ...] = ()
    fallback_rules: tuple[FallbackRule, ...] = ()
    freshness_threshold_seconds: int = 60
    gap_policy: GapPolicy = GapPolicy.DEFAULT_CAPACITY
    rotation: int = 0
    rebalance_source: RebalanceSource | None = None
    correlation_id: str | None = None
    legacy_alias_applied: bool = False
