"""SQL for capability status: the append-only event history and the latest-status projection.

The projection is written by one statement, `apply_to_projection`, for live ingest and for the
rebuild alike: it keeps, per control point, the event latest by (observed_at, ingested_at, seq).
That order does not depend on arrival order, so replaying the history in any order gives the same
projection as live ingest did (D-017, NFR-009).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from contracts.records import CapabilityStatusEventRecord

_EVENT_COLUMNS = (
    "status_event_id, microgrid_id, control_point_id, node_id, capability_type, operational_status,"
    " reported_by, observed_at, ingested_at, source_event_ref, status_detail"
)


def _json_or_none(value: str | None) -> Any:
    return json.loads(value) if value is not None else None


def _event(row: asyncpg.Record) -> CapabilityStatusEventRecord:
    data = {k: row[k] for k in CapabilityStatusEventRecord.model_fields}
    data["status_detail"] = _json_or_none(data["status_detail"])
    return CapabilityStatusEventRecord(**data)


async def append_event(conn: asyncpg.Connection, event: CapabilityStatusEventRecord) -> int | None:
    """Append; returns the event's seq, or None if its source_event_ref is already recorded."""
    seq = await conn.fetchval(
        f"INSERT INTO capability_status_event ({_EVENT_COLUMNS})"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        " ON CONFLICT (microgrid_id, source_event_ref) WHERE source_event_ref IS NOT NULL DO NOTHING"
        " RETURNING seq",
        event.status_event_id,
        event.microgrid_id,
        event.control_point_id,
        event.node_id,
        event.capability_type.value,
        event.operational_status,
        event.reported_by.value,
        event.observed_at,
        event.ingested_at,
        event.source_event_ref,
        json.dumps(event.status_detail) if event.status_detail is not None else None,
    )
    return int(seq) if seq is not None else None


async def event_by_source_ref(
    conn: asyncpg.Connection, microgrid_id: UUID, source_event_ref: str
) -> CapabilityStatusEventRecord | None:
    row = await conn.fetchrow(
        f"SELECT {_EVENT_COLUMNS} FROM capability_status_event WHERE microgrid_id = $1 AND source_event_ref = $2",
        microgrid_id,
        source_event_ref,
    )
    return _event(row) if row else None


async def history(
    conn: asyncpg.Connection,
    control_point_id: UUID,
    *,
    observed_from: datetime | None,
    observed_to: datetime | None,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[tuple[CapabilityStatusEventRecord, int]]:
    """Events of one control point in (observed_at, seq) order, observed_from <= t < observed_to."""
    rows = await conn.fetch(
        f"SELECT seq, {_EVENT_COLUMNS} FROM capability_status_event WHERE control_point_id = $1"
        " AND ($2::timestamptz IS NULL OR observed_at >= $2) AND ($3::timestamptz IS NULL OR observed_at < $3)"
        " AND ($4::timestamptz IS NULL OR (observed_at, seq) > ($4, $5::bigint))"
        " ORDER BY observed_at, seq LIMIT $6",
        control_point_id,
        observed_from,
        observed_to,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [(_event(r), int(r["seq"])) for r in rows]


# ---- latest-status projection ------------------------------------------------------------------

_APPLY = """
INSERT INTO capability_status_projection AS p (
    control_point_id, microgrid_id, node_id, capability_type, latest_operational_status, reported_by,
    last_observed_at, last_ingested_at, status_detail, status_event_id, seq)
SELECT control_point_id, microgrid_id, node_id, capability_type, operational_status, reported_by,
       observed_at, ingested_at, status_detail, status_event_id, seq
FROM capability_status_event WHERE seq = $1
ON CONFLICT (control_point_id) DO UPDATE SET
    microgrid_id = EXCLUDED.microgrid_id, node_id = EXCLUDED.node_id, capability_type = EXCLUDED.capability_type,
    latest_operational_status = EXCLUDED.latest_operational_status, reported_by = EXCLUDED.reported_by,
    last_observed_at = EXCLUDED.last_observed_at, last_ingested_at = EXCLUDED.last_ingested_at,
    status_detail = EXCLUDED.status_detail, status_event_id = EXCLUDED.status_event_id, seq = EXCLUDED.seq
WHERE (p.last_observed_at, p.last_ingested_at, p.seq) < (EXCLUDED.last_observed_at, EXCLUDED.last_ingested_at,
                                                          EXCLUDED.seq)
"""


async def apply_to_projection(conn: asyncpg.Connection, seqs: Sequence[int]) -> None:
    """Fold the events with these seqs into the projection (the one projection rule, live and rebuild)."""
    await conn.executemany(_APPLY, [(s,) for s in seqs])


async def projection_rows(
    conn: asyncpg.Connection, microgrid_id: UUID, control_point_ids: Sequence[UUID] | None = None
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT control_point_id, microgrid_id, node_id, capability_type, latest_operational_status, reported_by,"
        " last_observed_at, last_ingested_at, status_detail, status_event_id, seq"
        " FROM capability_status_projection WHERE microgrid_id = $1"
        " AND ($2::uuid[] IS NULL OR control_point_id = ANY($2::uuid[])) ORDER BY control_point_id",
        microgrid_id,
        list(control_point_ids) if control_point_ids is not None else None,
    )
    return [{**dict(r), "status_detail": _json_or_none(r["status_detail"])} for r in rows]


async def rebuild_projection(conn: asyncpg.Connection, microgrid_id: UUID | None = None) -> int:
    """Drop the projection (of one microgrid, or all) and fold the whole history again; returns rows built."""
    await conn.execute(
        "DELETE FROM capability_status_projection WHERE $1::uuid IS NULL OR microgrid_id = $1", microgrid_id
    )
    seqs = await conn.fetch(
        "SELECT seq FROM capability_status_event WHERE $1::uuid IS NULL OR microgrid_id = $1 ORDER BY seq",
        microgrid_id,
    )
    await apply_to_projection(conn, [int(r["seq"]) for r in seqs])
    count = await conn.fetchval(
        "SELECT count(*) FROM capability_status_projection WHERE $1::uuid IS NULL OR microgrid_id = $1",
        microgrid_id,
    )
    return int(count)
