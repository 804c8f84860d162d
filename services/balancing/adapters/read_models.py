"""Balancing's replicas of upstream state, kept from the events alone (it reads no other service's tables).

Each table keeps the latest whole record, as its contract JSON. Writes are guarded so an older
record (lower topology version, earlier timestamp) never overwrites a newer one, and a terminal
envelope status never comes back to life.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from pydantic import BaseModel, TypeAdapter

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
from libs.domain.envelopes import TERMINAL_STATUSES


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
# Every write also stamps the microgrid's part it changed (microgrid_stamps), which is how an
# in-memory copy of the read models knows it is out of date (adapters/state_cache.py).

async def stamp(conn: asyncpg.Connection, microgrid_id: UUID) -> None:
    """Mark the microgrid's static part (everything but telemetry) as changed, in the writer's transaction.
    Telemetry stamps its own part (`save_telemetry`), returning the stamp it replaced."""
    await conn.execute(
        "INSERT INTO microgrid_stamps (microgrid_id, static_stamp) VALUES ($1, nextval('state_stamps'))"
        " ON CONFLICT (microgrid_id) DO UPDATE SET static_stamp = EXCLUDED.static_stamp",
        microgrid_id,
    )



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
    if stored is not None:
        await stamp(conn, topology.microgrid_id)
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
    await stamp(conn, record.microgrid_id)


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
    await stamp(conn, record.microgrid_id)


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
    await stamp(conn, status.microgrid_id)


async def save_envelope(conn: asyncpg.Connection, envelope: OperatingEnvelopeRecord) -> None:
    await conn.execute(
        "INSERT INTO envelopes (envelope_id, microgrid_id, status, record) VALUES ($1, $2, $3, $4::jsonb)"
        " ON CONFLICT (envelope_id) DO UPDATE SET status = EXCLUDED.status, record = EXCLUDED.record"
        " WHERE envelopes.status <> ALL($5::text[])",  # a terminal status never changes again
        envelope.envelope_id,
        envelope.microgrid_id,
        envelope.status.value,
        _json(envelope),
        [s.value for s in TERMINAL_STATUSES],
    )
    await stamp(conn, envelope.microgrid_id)


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
    await stamp(conn, microgrid_id)


async def save_legacy_circuit(conn: asyncpg.Connection, circuit: LegacyCircuitRecord) -> None:
    await conn.execute(
        "INSERT INTO legacy_circuits (circuit_id, depot_id, record) VALUES ($1, $2, $3::jsonb)"
        " ON CONFLICT (circuit_id) DO UPDATE SET depot_id = EXCLUDED.depot_id, record = EXCLUDED.record",
        circuit.circuit_id,
        circuit.depot_id,
        _json(circuit),
    )
    # Circuits are the depot's: every microgrid of the depot reads them (one, by ARCHITECTURE.md 9).
    await conn.execute(
        "UPDATE microgrid_stamps SET static_stamp = nextval('state_stamps')"
        " WHERE microgrid_id IN (SELECT microgrid_id FROM microgrids WHERE depot_id = $1)",
        circuit.depot_id,
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
    await stamp(conn, capacity.microgrid_id)


@dataclass(frozen=True)
class TelemetrySaved:
    """What one telemetry write did: the records it upserted (the newest per node) and the telemetry stamp
    it moved from `previous_stamp` (None: never stamped) to `stamp`."""

    previous_stamp: int | None
    stamp: int
    readings: list[TelemetryReadingRecord]
    demands: list[ConnectorDemandRecord]


# The telemetry stamp a write replaces, its row locked first: a concurrent writer of the same microgrid's
# telemetry is ordered wholly before or after this one. (A CTE with FOR UPDATE read only in RETURNING is
# evaluated after the upsert and sees no row.)
_PREVIOUS_TELEMETRY_STAMP_SQL = "SELECT telemetry_stamp FROM microgrid_stamps WHERE microgrid_id = $1 FOR UPDATE"
_STAMP_TELEMETRY_SQL = (
    "INSERT INTO microgrid_stamps (microgrid_id, telemetry_stamp) VALUES ($1, nextval('state_stamps'))"
    " ON CONFLICT (microgrid_id) DO UPDATE SET telemetry_stamp = EXCLUDED.telemetry_stamp RETURNING telemetry_stamp"
)


async def save_telemetry(
    conn: asyncpg.Connection,
    microgrid_id: UUID,
    readings: list[TelemetryReadingRecord],
    demands: list[ConnectorDemandRecord],
) -> TelemetrySaved | None:
    """Keep the newest reading and demand per node (an older report arriving late changes nothing); None
    for an empty report (nothing written, nothing stamped).

    One statement per table for the whole report (a depot's tick is ~300 readings: as one statement each,
    telemetry was a round of Bind/Execute per node in the service and its backend, issue 13). The records
    go as one JSON array, written by pydantic in one call and taken apart by Postgres: a text per record
    (`model_dump_json` each) and arrays of their ids and instants cost the service ~1.5 ms a report."""
    if not readings and not demands:
        return None
    newest_readings, newest_demands = _newest_per_node(readings), _newest_per_node(demands)
    for table, newest, adapter in (
        ("telemetry_readings", newest_readings, _READINGS),
        ("connector_demands", newest_demands, _DEMANDS),
    ):
        if not newest:
            continue
        await conn.execute(
            f"INSERT INTO {table} (node_id, microgrid_id, record, observed_at)"
            f" SELECT (r->>'node_id')::uuid, $1, r, (r->>'observed_at')::timestamptz"
            f" FROM jsonb_array_elements($2::jsonb) AS r"
            f" ON CONFLICT (node_id) DO UPDATE SET microgrid_id = EXCLUDED.microgrid_id,"
            f"  record = EXCLUDED.record, observed_at = EXCLUDED.observed_at"
            f" WHERE {table}.observed_at <= EXCLUDED.observed_at",
            microgrid_id,
            adapter.dump_json(newest).decode(),
        )
    previous = await conn.fetchval(_PREVIOUS_TELEMETRY_STAMP_SQL, microgrid_id)
    stamped = await conn.fetchval(_STAMP_TELEMETRY_SQL, microgrid_id)
    return TelemetrySaved(previous, stamped, newest_readings, newest_demands)


def telemetry_after(part: TelemetryPart, saved: TelemetrySaved) -> TelemetryPart | None:
    """`part` as the tables hold it once `saved` committed (`load_telemetry_part` would read the same
    records, in the same order), or None when `part` is not the state that write was made on."""
    if part.stamp is None or part.stamp != saved.previous_stamp:
        return None
    return TelemetryPart(saved.stamp, _upserted(part.readings, saved.readings), _upserted(part.demands, saved.demands))


def _upserted(rows: Sequence[_Stamped], newest: Sequence[_Stamped]) -> list[_Stamped]:
    """The upsert's rule in memory: a node's record is replaced by one observed at the same instant or
    later. Ordered by node id, as the load orders them (uuid order is the same in Postgres and Python).
    Keyed by the id's integer: a UUID hashes and compares in Python, thousands of times a report."""
    by_node = {r.node_id.int: r for r in rows}
    for r in newest:
        key = r.node_id.int
        seen = by_node.get(key)
        if seen is None or seen.observed_at <= r.observed_at:
            by_node[key] = r
    return [by_node[key] for key in sorted(by_node)]


_Stamped = TypeVar("_Stamped", TelemetryReadingRecord, ConnectorDemandRecord)


def _newest_per_node(records: Sequence[_Stamped]) -> list[_Stamped]:
    """One record per node, the newest (of equal instants the later one), as a row per record upserted in
    turn would leave it: one statement may not update a row twice."""
    newest: dict[int, _Stamped] = {}
    for r in records:
        key = r.node_id.int
        seen = newest.get(key)
        if seen is None or seen.observed_at <= r.observed_at:
            newest[key] = r
    return list(newest.values())


# ---- reads ---------------------------------------------------------------------------------------


async def known_topology_version(conn: asyncpg.Connection, microgrid_id: UUID) -> int | None:
    version = await conn.fetchval("SELECT version FROM microgrids WHERE microgrid_id = $1", microgrid_id)
    return None if version is None else int(version)


@dataclass(frozen=True)
class StaticPart:
    """Everything but telemetry, as of `stamp` (None: never stamped, so never trusted from a cache)."""

    stamp: int | None
    topology: TopologySnapshot | None
    node_limits: list[NodeLimitRecord]
    control_points: list[CapabilityControlPointRecord]
    capability_status: list[CapabilityStatusEventRecord]
    envelopes: list[OperatingEnvelopeRecord]
    circuits: dict[UUID, LegacyCircuitRecord]
    circuit_capacities: dict[UUID, CircuitCapacity]
    forecast_health: dict[UUID, ForecastSourceHealth]


@dataclass(frozen=True)
class TelemetryPart:
    stamp: int | None
    readings: list[TelemetryReadingRecord]
    demands: list[ConnectorDemandRecord]


def combine(static: StaticPart, telemetry: TelemetryPart) -> MicrogridState:
    return MicrogridState(
        topology=static.topology,
        node_limits=static.node_limits,
        control_points=static.control_points,
        capability_status=static.capability_status,
        envelopes=static.envelopes,
        circuits=static.circuits,
        circuit_capacities=static.circuit_capacities,
        forecast_health=static.forecast_health,
        readings=telemetry.readings,
        demands=telemetry.demands,
    )


def _list_of(model: type[BaseModel]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


_NODES = _list_of(MicrogridNodeRecord)
_FALLBACK_RULES = _list_of(FallbackRuleRecord)
_NODE_LIMITS = _list_of(NodeLimitRecord)
_CONTROL_POINTS = _list_of(CapabilityControlPointRecord)
_STATUSES = _list_of(CapabilityStatusEventRecord)
_ENVELOPES = _list_of(OperatingEnvelopeRecord)
_CIRCUITS = _list_of(LegacyCircuitRecord)
_READINGS = _list_of(TelemetryReadingRecord)
_DEMANDS = _list_of(ConnectorDemandRecord)


def _agg(table: str, order: str, where: str = "microgrid_id = $1") -> str:
    return f"(SELECT coalesce(json_agg(record ORDER BY {order}), '[]') FROM {table} WHERE {where})::text"


# One round trip for the whole static part: each read model as one JSON array, parsed by pydantic's core.
_STATIC_SQL = (
    "SELECT m.microgrid_id, m.depot_id, m.version, m.nodes::text AS nodes, m.fallback_rules::text AS fallback_rules,"
    f" {_agg('node_limits', 'node_limit_id')} AS node_limits,"
    f" {_agg('control_points', 'control_point_id')} AS control_points,"
    f" {_agg('capability_status', 'control_point_id')} AS capability_status,"
    f" {_agg('envelopes', 'envelope_id')} AS envelopes,"
    f" {_agg('legacy_circuits', 'circuit_id', 'depot_id = m.depot_id')} AS circuits,"
    " (SELECT coalesce(json_agg(json_build_object('node_id', node_id, 'circuit_id', circuit_id,"
    "   'capacity_watts', capacity_watts, 'trigger', trigger, 'evaluated_at', evaluated_at)), '[]')"
    "  FROM circuit_capacities WHERE microgrid_id = $1)::text AS capacities,"
    " (SELECT coalesce(json_agg(json_build_object('control_point_id', control_point_id, 'health', health)), '[]')"
    "  FROM forecast_sources WHERE microgrid_id = $1)::text AS health,"
    " (SELECT static_stamp FROM microgrid_stamps WHERE microgrid_id = $1) AS stamp"
    " FROM microgrids m WHERE m.microgrid_id = $1"
)
_TELEMETRY_SQL = (
    f"SELECT {_agg('telemetry_readings', 'node_id')} AS readings, {_agg('connector_demands', 'node_id')} AS demands,"
    " (SELECT telemetry_stamp FROM microgrid_stamps WHERE microgrid_id = $1) AS stamp"
)


async def load_static_part(conn: asyncpg.Connection, microgrid_id: UUID) -> StaticPart:
    row = await conn.fetchrow(_STATIC_SQL, microgrid_id)
    if row is None:
        return StaticPart(None, None, [], [], [], [], {}, {}, {})
    topology = TopologySnapshot(
        microgrid_id=row["microgrid_id"],
        depot_id=row["depot_id"],
        version=row["version"],
        nodes=_NODES.validate_json(row["nodes"]),
        fallback_rules=_FALLBACK_RULES.validate_json(row["fallback_rules"]),
    )
    capacities = {}
    for c in json.loads(row["capacities"]):
        node_id = UUID(c["node_id"])
        capacities[node_id] = CircuitCapacity(
            node_id=node_id,
            circuit_id=UUID(c["circuit_id"]),
            capacity_watts=int(c["capacity_watts"]),
            trigger=ProjectionTrigger(c["trigger"]),
            evaluated_at=datetime.fromisoformat(c["evaluated_at"]).astimezone(UTC),
        )
    return StaticPart(
        stamp=row["stamp"],
        topology=topology,
        node_limits=_NODE_LIMITS.validate_json(row["node_limits"]),
        control_points=_CONTROL_POINTS.validate_json(row["control_points"]),
        capability_status=_STATUSES.validate_json(row["capability_status"]),
        envelopes=_ENVELOPES.validate_json(row["envelopes"]),
        circuits={c.circuit_id: c for c in _CIRCUITS.validate_json(row["circuits"])},
        circuit_capacities=capacities,
        forecast_health={
            UUID(h["control_point_id"]): ForecastSourceHealth(h["health"]) for h in json.loads(row["health"])
        },
    )


async def load_telemetry_part(conn: asyncpg.Connection, microgrid_id: UUID) -> TelemetryPart:
    row = await conn.fetchrow(_TELEMETRY_SQL, microgrid_id)
    assert row is not None
    return TelemetryPart(
        stamp=row["stamp"],
        readings=_READINGS.validate_json(row["readings"]),
        demands=_DEMANDS.validate_json(row["demands"]),
    )


async def load_microgrid_state(conn: asyncpg.Connection, microgrid_id: UUID) -> MicrogridState:
    """Everything balancing knows about one microgrid, read now (two round trips)."""
    return combine(await load_static_part(conn, microgrid_id), await load_telemetry_part(conn, microgrid_id))
