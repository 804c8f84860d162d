"""Operating envelopes with their blocks, and their lifecycle history (D-025: its own stream)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import ValidationError

from contracts.enums import EnvelopeStatus
from contracts.records import EnvelopeBlockRecord, OperatingEnvelopeRecord
from libs.domain.envelopes import LIVE_STATUSES

_LIVE = [s.value for s in LIVE_STATUSES]


@dataclass(frozen=True, slots=True)
class StoredEnvelope:
    """One envelope row as stored, including what only this service keeps (digest, rejection detail)."""

    envelope_id: UUID
    microgrid_id: UUID
    node_id: UUID
    origin_control_point_id: UUID | None
    envelope_type: str
    constraint_type: str
    effective_from: datetime
    effective_to: datetime
    source_ref: str
    status: EnvelopeStatus
    received_at: datetime
    submission_digest: str
    submitted_by: str
    blocks: tuple[EnvelopeBlockRecord, ...] = ()
    claimed_by: str | None = None
    rejection_reason: str | None = None
    violated_rule: str | None = None
    rejection_details: dict[str, Any] = field(default_factory=dict)

    def record(self) -> OperatingEnvelopeRecord | None:
        """The contract record; None only for a REJECTED submission naming an unknown type."""
        try:
            return OperatingEnvelopeRecord.model_validate(
                {
                    "envelope_id": self.envelope_id,
                    "microgrid_id": self.microgrid_id,
                    "origin_control_point_id": self.origin_control_point_id,
                    "node_id": self.node_id,
                    "envelope_type": self.envelope_type,
                    "constraint_type": self.constraint_type,
                    "effective_from": self.effective_from,
                    "effective_to": self.effective_to,
                    "source_ref": self.source_ref,
                    "status": self.status,
                    "received_at": self.received_at,
                    "blocks": list(self.blocks),
                    "rejection_reason": self.rejection_reason,
                }
            )
        except ValidationError:
            return None


async def accept_rejected(conn: asyncpg.Connection, env: StoredEnvelope) -> None:
    """A rejected envelope judged valid on resubmission: same id and blocks, now accepted."""
    await conn.execute(
        "UPDATE operating_envelope SET status = $2, received_at = $3, rejection_reason = NULL,"
        " violated_rule = NULL, rejection_details = NULL WHERE envelope_id = $1 AND status = 'REJECTED'",
        env.envelope_id,
        env.status.value,
        env.received_at,
    )


async def insert_envelope(conn: asyncpg.Connection, env: StoredEnvelope) -> None:
    await conn.execute(
        "INSERT INTO operating_envelope (envelope_id, microgrid_id, node_id, origin_control_point_id,"
        " envelope_type, constraint_type, effective_from, effective_to, source_ref, status, received_at,"
        " rejection_reason, violated_rule, rejection_details, submission_digest, submitted_by, claimed_by)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb, $15, $16, $17)",
        env.envelope_id,
        env.microgrid_id,
        env.node_id,
        env.origin_control_point_id,
        env.envelope_type,
        env.constraint_type,
        env.effective_from,
        env.effective_to,
        env.source_ref,
        env.status.value,
        env.received_at,
        env.rejection_reason,
        env.violated_rule,
        json.dumps(env.rejection_details) if env.violated_rule else None,
        env.submission_digest,
        env.submitted_by,
        env.claimed_by,
    )
    await conn.executemany(
        "INSERT INTO operating_envelope_block (envelope_id, seq, block_from, block_to, min_limit_watts,"
        " max_limit_watts, target_watts) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [
            (env.envelope_id, i, b.block_from, b.block_to, b.min_limit_watts, b.max_limit_watts, b.target_watts)
            for i, b in enumerate(env.blocks)
        ],
    )


async def set_status(conn: asyncpg.Connection, envelope_id: UUID, status: EnvelopeStatus) -> None:
    await conn.execute("UPDATE operating_envelope SET status = $2 WHERE envelope_id = $1", envelope_id, status.value)


async def by_id(conn: asyncpg.Connection, envelope_id: UUID) -> StoredEnvelope | None:
    rows = await conn.fetch("SELECT * FROM operating_envelope WHERE envelope_id = $1", envelope_id)
    found = await _with_blocks(conn, rows)
    return found[0] if found else None


async def by_source_ref(conn: asyncpg.Connection, microgrid_id: UUID, source_ref: str) -> StoredEnvelope | None:
    rows = await conn.fetch(
        "SELECT * FROM operating_envelope WHERE microgrid_id = $1 AND source_ref = $2", microgrid_id, source_ref
    )
    found = await _with_blocks(conn, rows)
    return found[0] if found else None


async def search(
    conn: asyncpg.Connection,
    microgrid_id: UUID,
    *,
    node_id: UUID | None = None,
    statuses: tuple[EnvelopeStatus, ...] | None = None,
    limit: int = 500,
) -> list[StoredEnvelope]:
    """Envelopes of a microgrid (optionally one node, some statuses), newest receipt first."""
    rows = await conn.fetch(
        "SELECT * FROM operating_envelope WHERE microgrid_id = $1"
        " AND ($2::uuid IS NULL OR node_id = $2) AND ($3::text[] IS NULL OR status = ANY($3))"
        " ORDER BY received_at DESC, envelope_id LIMIT $4",
        microgrid_id,
        node_id,
        [s.value for s in statuses] if statuses else None,
        limit,
    )
    return await _with_blocks(conn, rows)


async def live_on_node(conn: asyncpg.Connection, microgrid_id: UUID, node_id: UUID) -> list[StoredEnvelope]:
    """PENDING and ACTIVE envelopes targeting one node, in a stable order."""
    rows = await conn.fetch(
        "SELECT * FROM operating_envelope WHERE microgrid_id = $1 AND node_id = $2"
        " AND status = ANY($3::text[]) ORDER BY envelope_id",
        microgrid_id,
        node_id,
        _LIVE,
    )
    return await _with_blocks(conn, rows)


async def forecasts_to_announce(
    conn: asyncpg.Connection, microgrid_id: UUID, control_point_id: UUID
) -> list[StoredEnvelope]:
    """The source's live forecasts; with none live, its latest accepted one (so a change is still told)."""
    rows = await conn.fetch(
        "SELECT * FROM operating_envelope WHERE microgrid_id = $1 AND origin_control_point_id = $2"
        " AND envelope_type = 'FORECAST' AND status = ANY($3::text[]) ORDER BY envelope_id",
        microgrid_id,
        control_point_id,
        _LIVE,
    )
    if not rows:
        rows = await conn.fetch(
            "SELECT * FROM operating_envelope WHERE microgrid_id = $1 AND origin_control_point_id = $2"
            " AND envelope_type = 'FORECAST' AND status <> 'REJECTED' ORDER BY received_at DESC, envelope_id LIMIT 1",
            microgrid_id,
            control_point_id,
        )
    return await _with_blocks(conn, rows)


async def _with_blocks(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> list[StoredEnvelope]:
    if not rows:
        return []
    block_rows = await conn.fetch(
        "SELECT * FROM operating_envelope_block WHERE envelope_id = ANY($1) ORDER BY envelope_id, seq",
        [r["envelope_id"] for r in rows],
    )
    blocks: dict[UUID, list[EnvelopeBlockRecord]] = {}
    for b in block_rows:
        blocks.setdefault(b["envelope_id"], []).append(
            EnvelopeBlockRecord(
                block_from=b["block_from"],
                block_to=b["block_to"],
                min_limit_watts=b["min_limit_watts"],
                max_limit_watts=b["max_limit_watts"],
                target_watts=b["target_watts"],
            )
        )
    return [
        StoredEnvelope(
            envelope_id=r["envelope_id"],
            microgrid_id=r["microgrid_id"],
            node_id=r["node_id"],
            origin_control_point_id=r["origin_control_point_id"],
            envelope_type=r["envelope_type"],
            constraint_type=r["constraint_type"],
            effective_from=r["effective_from"],
            effective_to=r["effective_to"],
            source_ref=r["source_ref"],
            status=EnvelopeStatus(r["status"]),
            received_at=r["received_at"],
            submission_digest=r["submission_digest"],
            submitted_by=r["submitted_by"],
            claimed_by=r["claimed_by"],
            blocks=tuple(blocks.get(r["envelope_id"], ())),
            rejection_reason=r["rejection_reason"],
            violated_rule=r["violated_rule"],
            rejection_details=json.loads(r["rejection_details"]) if r["rejection_details"] else {},
        )
        for r in rows
    ]


# ---- lifecycle history ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    history_id: int
    envelope_id: UUID
    transition: str
    previous_status: EnvelopeStatus | None
    status: EnvelopeStatus
    evaluated_at: datetime
    timer_id: int | None
    detail: dict[str, Any]


async def append_history(
    conn: asyncpg.Connection,
    env: StoredEnvelope,
    *,
    transition: str,
    previous_status: EnvelopeStatus | None,
    status: EnvelopeStatus,
    evaluated_at: datetime,
    timer_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO envelope_lifecycle_history (envelope_id, microgrid_id, node_id, transition, previous_status,"
        " status, evaluated_at, timer_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)",
        env.envelope_id,
        env.microgrid_id,
        env.node_id,
        transition,
        previous_status.value if previous_status else None,
        status.value,
        evaluated_at,
        timer_id,
        json.dumps(detail or {}),
    )


async def history(conn: asyncpg.Connection, envelope_id: UUID) -> list[HistoryEntry]:
    rows = await conn.fetch(
        "SELECT * FROM envelope_lifecycle_history WHERE envelope_id = $1 ORDER BY history_id", envelope_id
    )
    return [
        HistoryEntry(
            history_id=r["history_id"],
            envelope_id=r["envelope_id"],
            transition=r["transition"],
            previous_status=EnvelopeStatus(r["previous_status"]) if r["previous_status"] else None,
            status=EnvelopeStatus(r["status"]),
            evaluated_at=r["evaluated_at"],
            timer_id=r["timer_id"],
            detail=json.loads(r["detail"]),
        )
        for r in rows
    ]
