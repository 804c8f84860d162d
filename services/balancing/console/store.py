"""The console's tables (migrations/002_operator_console.sql): written by event handlers, read by the picture."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from contracts.api.console import CircuitCapacityView, EnvelopeTransition, TimelinePoint
from contracts.enums import EnvelopeStatus, NodeType, ProjectionTrigger
from contracts.events import EffectiveCircuitCapacityPayload
from contracts.records import CycleResultRecord
from libs.domain.demand import TelemetryReading

Conn = asyncpg.Connection | asyncpg.Pool


# The nodes the timeline draws: grid connections and feeder circuits (a few rows per cycle, not the tree).
TIMELINE_NODE_TYPES = (NodeType.GRID_CONNECTION, NodeType.CIRCUIT)

TimelinePointRow = tuple[str, int, int | None, int, int | None]
"""(node_id, requested_watts, drawn_watts, allocated_watts, effective_limit_watts) of one cycle."""


def timeline_points(cycle: dict[str, Any], telemetry: Iterable[TelemetryReading]) -> list[TimelinePointRow]:
    """A cycle's timeline points, from its record document (cycle_records.cycle_record_document) and the
    telemetry it used; the cycle writes them with itself (adapters/cycles.insert_cycle)."""
    nodes = [n for n in cycle["allocation_summary"]["by_node"] if n["node_type"] in TIMELINE_NODE_TYPES]
    if not nodes:
        return []
    wanted = {n["node_id"] for n in nodes}
    # A reading that measured nothing (or was marked invalid) draws no point: unknown, not 0 W.
    drawn = {r.node_id: r.measured_watts for r in telemetry if r.node_id in wanted and r.valid}
    return [
        (n["node_id"], n["requested_watts"], drawn.get(n["node_id"]), n["allocated_watts"], n["effective_limit_watts"])
        for n in nodes
    ]


async def save_transition(
    conn: asyncpg.Connection,
    *,
    event_id: UUID,
    envelope_id: UUID,
    microgrid_id: UUID,
    transition: str,
    previous_status: EnvelopeStatus | None,
    status: EnvelopeStatus,
    at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO console_envelope_transitions (event_id, envelope_id, microgrid_id, transition, previous_status,"
        " status, at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        event_id,
        envelope_id,
        microgrid_id,
        transition,
        previous_status.value if previous_status else None,
        status.value,
        at,
    )


async def save_circuit_capacity(conn: asyncpg.Connection, capacity: EffectiveCircuitCapacityPayload) -> None:
    """Newest wins; the previous value is the event's, else the value this row held."""
    await conn.execute(
        "INSERT INTO console_circuit_capacity (microgrid_id, node_id, circuit_id, capacity_watts,"
        " previous_capacity_watts, trigger, basis, evaluated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (microgrid_id, node_id) DO UPDATE SET circuit_id = EXCLUDED.circuit_id,"
        "  previous_capacity_watts ="
        "   COALESCE(EXCLUDED.previous_capacity_watts, console_circuit_capacity.capacity_watts),"
        "  capacity_watts = EXCLUDED.capacity_watts, trigger = EXCLUDED.trigger, basis = EXCLUDED.basis,"
        "  evaluated_at = EXCLUDED.evaluated_at"
        " WHERE console_circuit_capacity.evaluated_at <= EXCLUDED.evaluated_at",
        capacity.microgrid_id,
        capacity.node_id,
        capacity.circuit_id,
        capacity.effective_capacity_watts,
        capacity.previous_capacity_watts,
        capacity.projection_trigger.value,
        capacity.basis,
        capacity.evaluated_at,
    )


async def record_preview(conn: Conn, **row: Any) -> None:
    await conn.execute(
        "INSERT INTO console_previews (preview_id, microgrid_id, actor, kind, proposal, inputs_digest, outcome_before,"
        " outcome_after, previewed_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9)",
        row["preview_id"], row["microgrid_id"], row["actor"], row["kind"], row["proposal"], row["inputs_digest"],
        row["outcome_before"], row["outcome_after"], row["previewed_at"],
    )


# ---- reads ---------------------------------------------------------------------------------------


async def recent_cycles(conn: Conn, microgrid_id: UUID, limit: int) -> list[CycleResultRecord]:
    rows = await conn.fetch(
        # Balancing's own cycle audit: the record kept there is the cycle_completed payload.
        "SELECT result AS record FROM cycles WHERE microgrid_id = $1 ORDER BY seq DESC LIMIT $2",
        microgrid_id,
        limit,
    )
    return [CycleResultRecord.model_validate_json(r["record"]) for r in rows]


async def timeline(conn: Conn, microgrid_id: UUID, node_ids: list[UUID], since: datetime
                   ) -> dict[UUID, list[TimelinePoint]]:
    rows = await conn.fetch(
        "SELECT * FROM console_timeline WHERE microgrid_id = $1 AND node_id = ANY($2::uuid[]) AND at >= $3"
        " ORDER BY at, cycle_id",
        microgrid_id,
        node_ids,
        since,
    )
    out: dict[UUID, list[TimelinePoint]] = {n: [] for n in node_ids}
    for r in rows:
        out[r["node_id"]].append(
            TimelinePoint(
                at=r["at"],
                requested_watts=r["requested_watts"],
                drawn_watts=r["drawn_watts"],
                allocated_watts=r["allocated_watts"],
                effective_limit_watts=r["effective_limit_watts"],
            )
        )
    return out


async def transitions(conn: Conn, microgrid_id: UUID) -> dict[UUID, list[EnvelopeTransition]]:
    rows = await conn.fetch(
        "SELECT * FROM console_envelope_transitions WHERE microgrid_id = $1 ORDER BY at, event_id", microgrid_id
    )
    out: dict[UUID, list[EnvelopeTransition]] = {}
    for r in rows:
        out.setdefault(r["envelope_id"], []).append(
            EnvelopeTransition(
                transition=r["transition"],
                previous_status=EnvelopeStatus(r["previous_status"]) if r["previous_status"] else None,
                status=EnvelopeStatus(r["status"]),
                at=r["at"],
            )
        )
    return out


async def circuit_capacities(conn: Conn, microgrid_id: UUID) -> list[CircuitCapacityView]:
    rows = await conn.fetch(
        "SELECT * FROM console_circuit_capacity WHERE microgrid_id = $1 ORDER BY node_id", microgrid_id
    )
    return [
        CircuitCapacityView(
            node_id=r["node_id"],
            circuit_id=r["circuit_id"],
            effective_capacity_watts=r["capacity_watts"],
            previous_capacity_watts=r["previous_capacity_watts"],
            reason=ProjectionTrigger(r["trigger"]),
            basis=r["basis"],
            evaluated_at=r["evaluated_at"],
        )
        for r in rows
    ]


async def preview_count(conn: Conn, microgrid_id: UUID) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM console_previews WHERE microgrid_id = $1", microgrid_id))
