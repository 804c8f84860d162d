"""Balancing's replicas of upstream state, kept from the events alone (it reads no other service's tables).

Each table keeps the latest whole record, as its contract JSON. Writes are guarded so an older
record (lower topology version, earlier timestamp) never overwrites a newer one, and a terminal
envelope status never comes back to life.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import BaseModel

from contracts.enums import ForecastSourceHealth, ProjectionTrigger
from contracts.events import EffectiveCircuitCapacityPayload, TopologyUpdatedPayload
from contracts.records import (
    CapabilityControlPointRecord,
    CapabilityStatusEventRecord,
    ConnectorDemandRecord,
    FallbackRuleRecord,
    LegacyCircuitRecord,
    MicrogridNodeRecord,
    NodeLimitRecord,
    OperatingEnvelopeRecord,
    TelemetryReadingRecord,
)


@dataclass(frozen=True)
class TopologySnapshot:
    microgrid_id: UUID
    depot_id: UUID
    version: int
    nodes: list[MicrogridNodeRecord]
    fallback_rules: list[FallbackRuleRecord]


@dataclass(frozen=True)
class CircuitCapacity:
    """The last circuit-facing effective capacity balancing knows for one managed node."""

    node_id: UUID
    circuit_id: UUID
    capacity_watts: int
    trigger: ProjectionTrigger
    evaluated_at: datetime


@dataclass(frozen=True)
class MicrogridState:
    """Everything balancing knows about one microgrid, read in the cycle's transaction."""

    topology: TopologySnapshot | None
    node_limits: list[NodeLimitRecord] = field(default_factory=list)
    control_points: list[CapabilityControlPointRecord] = field(default_factory=list)
    capability_status: list[CapabilityStatusEventRecord] = field(default_factory=list)
    envelopes: list[OperatingEnvelopeRecord] = field(default_factory=list)
    circuits: dict[UUID, LegacyCircuitRecord] = field(default_factory=dict)
    circuit_capacities: dict[UUID, CircuitCapacity] = field(default_factory=dict)
    forecast_health: dict[UUID, ForecastSourceHealth] = field(default_factory=dict)
    readings: list[TelemetryReadingRecord] = field(default_factory=list)
    demands: list[ConnectorDemandRecord] = field(default_factory=list)


def _json(model: object) -> str:
    return model.model_dump_json()  # type: ignore[attr-defined]


# ---- writes (one per consumed event) -------------------------------------------------------------


async def save_topology(conn: asyncpg.Connection, topology: TopologyUpdatedPayload) -> bool:
    """Store the tree at this version; False when an equal or newer version is already known."""
    stored = await conn.fetchval(
        "INSERT INTO microgrids (microgrid_id, depot_id, version, nodes, fallback_rules, updated_at)"
        " VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, clock_timestamp())"
        " ON CONFLICT (microgrid_id) DO UPDATE SET depot_id = EXCLUDED.depot_id, version = EXCLUDED.version,"
        "  nodes = EXCLUDED.nodes, fallback_rules = EXCLUDED.fallback_rules, updated_at = EXCLUDED.updated_at"
        " WHERE microgrids.version < EXCLUDED.version RETURNING 1",
        topology.microgrid_id,
        topology.depot_id,
        topology.version,
        json.dumps([n.model_dump(mode="json") for n in topology.nodes]),
        json.dumps([r.model_dump(mode="json") for r in topology.fallback_rules]),
    )
    return stored is not None


async def save_node_limit(conn: asyncpg.Connection, limit: NodeLimitRecord) -> None:
    record = NodeLimitRecord.model_validate(limit.model_dump(include=set(NodeLimitRecord.model_fields)))
    await conn.execute(
        "INSERT INTO node_limits (node_limit_id, microgrid_id, record, updated_at) VALUES ($1, $2, $3::jsonb, $4)"
        " ON CONFLICT (node_limit_id) DO UPDATE SET record = EXCLUDED.record, updated_at = EXCLUDED.updated_at"
        " WHERE node_limits.updated_at <= EXCLUDED.updated_at",
        record.node_limit_id,
        record.microgrid_id,
        _json(record),
        record.updated_at,
    )


async def save_control_point(conn: asyncpg.Connection, point: CapabilityControlPointRecord) -> None:
    record = CapabilityControlPointRecord.model_validate(
        point.model_dump(include=set(CapabilityControlPointRecord.model_fields))
    )
    # No timestamp on the record: partition order (keyed by microgrid) makes the last event the latest.
    await conn.execute(
        "INSERT INTO control_points (control_point_id, microgrid_id, record) VALUES ($1, $2, $3::jsonb)"
        " ON CONFLICT (control_point_id) DO UPDATE SET record = EXCLUDED.record",
        record.control_point_id,
        record.microgrid_id,
        _json(record),
    )


async def save_capability_status(conn: asyncpg.Connection, status: CapabilityStatusEventRecord) -> None:
    await conn.execute(
        "INSERT INTO capability_status (control_point_id, microgrid_id, record, observed_at)"
        " VALUES ($1, $2, $3::jsonb, $4)"
        " ON CONFLICT (control_point_id) DO UPDATE SET record = EXCLUDED.record, observed_at = EXCLUDED.observed_at"
        " WHERE capability_status.observed_at <= EXCLUDED.observed_at",
        status.control_point_id,
        status.microgrid_id,
        _json(status),
        status.observed_at,
    )


async def save_envelope(conn: asyncpg.Connection, envelope: OperatingEnvelopeRecord) -> None:
    await conn.execute(
        "INSERT INTO envelopes (envelope_id, microgrid_id, status, record) VALUES ($1, $2, $3, $4::jsonb)"
        " ON CONFLICT (envelope_id) DO UPDATE SET status = EXCLUDED.status, record = EXCLUDED.record"
        " WHERE envelopes.status NOT IN ('EXPIRED', 'WITHDRAWN', 'REJECTED')",
        envelope.envelope_id,
        envelope.microgrid_id,
        envelope.status.value,
        _json(envelope),
    )


async def save_forecast_health(
    conn: asyncpg.Connection,
    *,
    microgrid_id: UUID,
    control_point_id: UUID,
    health: ForecastSourceHealth,
    evaluated_at: datetime,
    first_only: bool = False,
) -> None:
    """Health of a forecast source; with `first_only`, only when none is known yet (a first forecast)."""
    guard = "FALSE" if first_only else "forecast_sources.evaluated_at <= EXCLUDED.evaluated_at"
    await conn.execute(
        "INSERT INTO forecast_sources (control_point_id, microgrid_id, health, evaluated_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (control_point_id) DO UPDATE SET health = EXCLUDED.health, evaluated_at = EXCLUDED.evaluated_at"
        f" WHERE {guard}",
        control_point_id,
        microgrid_id,
        health.value,
        evaluated_at,
    )


async def save_legacy_circuit(conn: asyncpg.Connection, circuit: LegacyCircuitRecord) -> None:
    await conn.execute(
        "INSERT INTO legacy_circuits (circuit_id, depot_id, record) VALUES ($1, $2, $3::jsonb)"
        " ON CONFLICT (circuit_id) DO UPDATE SET depot_id = EXCLUDED.depot_id, record = EXCLUDED.record",
        circuit.circuit_id,
        circuit.depot_id,
        _json(circuit),
    )


async def save_circuit_capacity(conn: asyncpg.Connection, capacity: EffectiveCircuitCapacityPayload) -> None:
    """The last circuit-facing value, projected upstream or reconciled by our guard: newest wins."""
    await conn.execute(
        "INSERT INTO circuit_capacities (microgrid_id, node_id, circuit_id, capacity_watts, trigger, evaluated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (microgrid_id, node_id) DO UPDATE SET circuit_id = EXCLUDED.circuit_id,"
        "  capacity_watts = EXCLUDED.capacity_watts, trigger = EXCLUDED.trigger, evaluated_at = EXCLUDED.evaluated_at"
        " WHERE circuit_capacities.evaluated_at <= EXCLUDED.evaluated_at",
        capacity.microgrid_id,
        capacity.node_id,
        capacity.circuit_id,
        capacity.effective_capacity_watts,
        capacity.projection_trigger.value,
        capacity.evaluated_at,
    )


async def save_telemetry(
    conn: asyncpg.Connection,
    microgrid_id: UUID,
    readings: list[TelemetryReadingRecord],
    demands: list[ConnectorDemandRecord],
) -> None:
    """Keep the newest reading and demand per node (an older report arriving late changes nothing)."""
    for table, records in (("telemetry_readings", readings), ("connector_demands", demands)):
        if not records:
            continue
        await conn.executemany(
            f"INSERT INTO {table} (node_id, microgrid_id, record, observed_at) VALUES ($1, $2, $3::jsonb, $4)"
            f" ON CONFLICT (node_id) DO UPDATE SET microgrid_id = EXCLUDED.microgrid_id,"
            f"  record = EXCLUDED.record, observed_at = EXCLUDED.observed_at"
            f" WHERE {table}.observed_at <= EXCLUDED.observed_at",
            [(r.node_id, microgrid_id, _json(r), r.observed_at) for r in records],
        )


# ---- reads ---------------------------------------------------------------------------------------


async def known_topology_version(conn: asyncpg.Connection, microgrid_id: UUID) -> int | None:
    version = await conn.fetchval("SELECT version FROM microgrids WHERE microgrid_id = $1", microgrid_id)
    return None if version is None else int(version)


async def load_microgrid_state(conn: asyncpg.Connection, microgrid_id: UUID) -> MicrogridState:
    row = await conn.fetchrow("SELECT * FROM microgrids WHERE microgrid_id = $1", microgrid_id)
    if row is None:
        return MicrogridState(topology=None)
    topology = TopologySnapshot(
        microgrid_id=row["microgrid_id"],
        depot_id=row["depot_id"],
        version=row["version"],
        nodes=[MicrogridNodeRecord.model_validate(n) for n in json.loads(row["nodes"])],
        fallback_rules=[FallbackRuleRecord.model_validate(r) for r in json.loads(row["fallback_rules"])],
    )

    async def records(sql: str, model: type[BaseModel]) -> list[Any]:
        return [model.model_validate_json(r["record"]) for r in await conn.fetch(sql, microgrid_id)]

    circuits = [
        LegacyCircuitRecord.model_validate_json(r["record"])
        for r in await conn.fetch("SELECT record FROM legacy_circuits WHERE depot_id = $1", topology.depot_id)
    ]
    capacities = {
        r["node_id"]: CircuitCapacity(
            node_id=r["node_id"],
            circuit_id=r["circuit_id"],
            capacity_watts=int(r["capacity_watts"]),
            trigger=ProjectionTrigger(r["trigger"]),
            evaluated_at=r["evaluated_at"],
        )
        for r in await conn.fetch("SELECT * FROM circuit_capacities WHERE microgrid_id = $1", microgrid_id)
    }
    health = {
        r["control_point_id"]: ForecastSourceHealth(r["health"])
        for r in await conn.fetch("SELECT * FROM forecast_sources WHERE microgrid_id = $1", microgrid_id)
    }
    return MicrogridState(
        topology=topology,
        node_limits=await records(
            "SELECT record FROM node_limits WHERE microgrid_id = $1 ORDER BY node_limit_id", NodeLimitRecord
        ),
        control_points=await records(
            "SELECT record FROM control_points WHERE microgrid_id = $1 ORDER BY control_point_id",
            CapabilityControlPointRecord,
        ),
        capability_status=await records(
            "SELECT record FROM capability_status WHERE microgrid_id = $1 ORDER BY control_point_id",
            CapabilityStatusEventRecord,
        ),
        envelopes=await records(
            "SELECT record FROM envelopes WHERE microgrid_id = $1 ORDER BY envelope_id", OperatingEnvelopeRecord
        ),
        circuits={c.circuit_id: c for c in circuits},
        circuit_capacities=capacities,
        forecast_health=health,
        readings=await records(
            "SELECT record FROM telemetry_readings WHERE microgrid_id = $1 ORDER BY node_id", TelemetryReadingRecord
        ),
        demands=await records(
            "SELECT record FROM connector_demands WHERE microgrid_id = $1 ORDER BY node_id", ConnectorDemandRecord
        ),
    )
