"""The translation audit: one row per translation (legacy ref, path, circuit, result, reason, target, at)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from contracts.api.compatibility_adapter import TranslationCount, TranslationResult
from contracts.enums import AliasPath, ReasonCode


@dataclass(frozen=True)
class Translation:
    legacy_ref: str
    path: AliasPath
    result: TranslationResult
    correlation_id: str
    recorded_at: datetime
    circuit_id: UUID | None = None
    reason_code: ReasonCode | None = None
    microgrid_id: UUID | None = None
    node_id: UUID | None = None
    request_key: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


_COLUMNS = (
    "legacy_ref, path, result, correlation_id, recorded_at, circuit_id, reason_code, microgrid_id, node_id,"
    " request_key, details"
)


async def record(conn: asyncpg.Connection, t: Translation) -> bool:
    """Insert the row; False when this legacy ref was already translated (a replay: do nothing more)."""
    inserted = await conn.fetchval(
        f"INSERT INTO translation_audit ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb)"
        " ON CONFLICT DO NOTHING RETURNING 1",
        t.legacy_ref,
        t.path.value,
        t.result,
        t.correlation_id,
        t.recorded_at,
        t.circuit_id,
        t.reason_code.value if t.reason_code else None,
        t.microgrid_id,
        t.node_id,
        t.request_key,
        json.dumps(t.details, default=str),
    )
    return inserted is not None


async def applied(conn: asyncpg.Connection, path: AliasPath, legacy_ref: str) -> Translation | None:
    """The successful translation of this legacy ref, if any."""
    r = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM translation_audit WHERE path = $1 AND legacy_ref = $2 AND result <> 'FAILED'",
        path.value,
        legacy_ref,
    )
    if r is None:
        return None
    row = dict(r)
    return Translation(
        **row
        | {
            "path": AliasPath(row["path"]),
            "reason_code": ReasonCode(row["reason_code"]) if row["reason_code"] else None,
            "details": json.loads(row["details"]),
        }
    )


async def requested(conn: asyncpg.Connection, request_key: str) -> bool:
    """Whether the adapter itself requested the rebalance with this key."""
    found = await conn.fetchval(
        "SELECT 1 FROM translation_audit WHERE request_key = $1 AND result <> 'FAILED' LIMIT 1", request_key
    )
    return found is not None


async def counts(conn: asyncpg.Connection | asyncpg.Pool) -> list[TranslationCount]:
    rows = await conn.fetch(
        "SELECT path, result, reason_code, count(*) AS count FROM translation_audit"
        " GROUP BY path, result, reason_code ORDER BY path, result, reason_code NULLS FIRST"
    )
    return [TranslationCount(**dict(r)) for r in rows]
