"""TOU_LIMIT envelopes as the envelope service reports them, and the schedule submitted per circuit."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg
from pydantic import TypeAdapter

from contracts.api.compatibility_adapter import LegacyTouPeriod
from contracts.enums import EnvelopeStatus
from contracts.records import OperatingEnvelopeRecord
from libs.platform.advisory_locks import lock_for_transaction

_PERIODS = TypeAdapter(list[LegacyTouPeriod])


async def save_envelope(conn: asyncpg.Connection, envelope: OperatingEnvelopeRecord, now: datetime) -> None:
    await conn.execute(
        "INSERT INTO tou_envelope (envelope_id, microgrid_id, node_id, source_ref, status, record, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7) ON CONFLICT (envelope_id) DO UPDATE SET"
        " microgrid_id = excluded.microgrid_id, node_id = excluded.node_id, source_ref = excluded.source_ref,"
        " status = excluded.status, record = excluded.record, updated_at = excluded.updated_at",
        envelope.envelope_id,
        envelope.microgrid_id,
        envelope.node_id,
        envelope.source_ref,
        envelope.status.value,
        envelope.model_dump_json(),
        now,
    )


async def envelopes_on_node(
    conn: asyncpg.Connection | asyncpg.Pool, microgrid_id: UUID, node_id: UUID, statuses: Iterable[EnvelopeStatus]
) -> list[OperatingEnvelopeRecord]:
    rows = await conn.fetch(
        "SELECT record FROM tou_envelope WHERE microgrid_id = $1 AND node_id = $2 AND status = ANY($3::text[])"
        " ORDER BY envelope_id",
        microgrid_id,
        node_id,
        [s.value for s in statuses],
    )
    records = [OperatingEnvelopeRecord.model_validate_json(r["record"]) for r in rows]
    return sorted(records, key=lambda e: (e.effective_from, e.source_ref, str(e.envelope_id)))


@dataclass(frozen=True)
class TouSubmission:
    circuit_id: UUID
    microgrid_id: UUID
    node_id: UUID
    revision: int
    source_ref: str | None
    periods: list[LegacyTouPeriod]


async def submission(conn: asyncpg.Connection, circuit_id: UUID) -> TouSubmission | None:
    """The circuit's last submitted schedule, locked so concurrent POSTs for one circuit take turns."""
    # An advisory lock also covers the first POST, when there is no row to lock yet.
    await lock_for_transaction(conn, "tou_submission", circuit_id)
    r = await conn.fetchrow(
        "SELECT circuit_id, microgrid_id, node_id, revision, source_ref, periods FROM tou_submission"
        " WHERE circuit_id = $1 FOR UPDATE",
        circuit_id,
    )
    if r is None:
        return None
    return TouSubmission(**dict(r) | {"periods": _PERIODS.validate_json(r["periods"])})


async def save_submission(conn: asyncpg.Connection, s: TouSubmission, now: datetime) -> None:
    await conn.execute(
        "INSERT INTO tou_submission (circuit_id, microgrid_id, node_id, revision, source_ref, periods, submitted_at)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7) ON CONFLICT (circuit_id) DO UPDATE SET"
        " microgrid_id = excluded.microgrid_id, node_id = excluded.node_id, revision = excluded.revision,"
        " source_ref = excluded.source_ref, periods = excluded.periods, submitted_at = excluded.submitted_at",
        s.circuit_id,
        s.microgrid_id,
        s.node_id,
        s.revision,
        s.source_ref,
        json.dumps([p.model_dump(mode="json") for p in s.periods]),
        now,
    )
