"""Durable lifecycle timers: one row per envelope boundary, expiry or forecast health check.

A row is never deleted: `done_at` + `outcome` (FIRED, CANCELLED, FAILED) record what became of it, so
"fired once" can be checked after the fact and a restart finds every timer still owed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

import asyncpg


class TimerKind(StrEnum):
    BLOCK_BOUNDARY = "BLOCK_BOUNDARY"  # effective_from and every block start/end inside the window
    EXPIRY = "EXPIRY"  # effective_to
    HEALTH_CHECK = "HEALTH_CHECK"  # a forecast source may have gone stale or offline by age


# Order of timers due at the same instant: health first, so boundaries evaluate with the health at that
# instant; then envelope timers by envelope id. Never by insertion order (NFR-011).
_KIND_RANK = "CASE kind WHEN 'HEALTH_CHECK' THEN 0 WHEN 'BLOCK_BOUNDARY' THEN 1 ELSE 2 END"


@dataclass(frozen=True, slots=True)
class Timer:
    timer_id: int
    microgrid_id: UUID
    kind: TimerKind
    fire_at: datetime
    envelope_id: UUID | None
    control_point_id: UUID | None
    attempts: int


async def schedule_envelope_timers(
    conn: asyncpg.Connection, microgrid_id: UUID, envelope_id: UUID, timers: Iterable[tuple[TimerKind, datetime]]
) -> None:
    await conn.executemany(
        "INSERT INTO lifecycle_timer (microgrid_id, kind, fire_at, envelope_id) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT DO NOTHING",
        [(microgrid_id, kind.value, fire_at, envelope_id) for kind, fire_at in timers],
    )


async def schedule_health_check(
    conn: asyncpg.Connection, microgrid_id: UUID, control_point_id: UUID, fire_at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO lifecycle_timer (microgrid_id, kind, fire_at, control_point_id) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT DO NOTHING",
        microgrid_id,
        TimerKind.HEALTH_CHECK.value,
        fire_at,
        control_point_id,
    )


async def cancel_envelope_timers(conn: asyncpg.Connection, envelope_id: UUID, at: datetime) -> int:
    status = await conn.execute(
        "UPDATE lifecycle_timer SET done_at = $2, outcome = 'CANCELLED' WHERE envelope_id = $1 AND done_at IS NULL",
        envelope_id,
        at,
    )
    return int(status.split()[-1])


async def microgrids_with_due_timers(conn: asyncpg.Connection | asyncpg.Pool, now: datetime) -> list[UUID]:
    rows = await conn.fetch(
        "SELECT DISTINCT microgrid_id FROM lifecycle_timer WHERE done_at IS NULL AND fire_at <= $1"
        " ORDER BY microgrid_id",
        now,
    )
    return [r["microgrid_id"] for r in rows]


async def claim_next_due_instant(conn: asyncpg.Connection, microgrid_id: UUID, now: datetime) -> list[Timer]:
    """Claim (row-lock, skipping rows another transaction holds) every timer of the earliest due instant."""
    rows = await conn.fetch(
        "SELECT * FROM lifecycle_timer WHERE timer_id IN ("
        "  SELECT timer_id FROM lifecycle_timer WHERE microgrid_id = $1 AND done_at IS NULL AND fire_at = ("
        "    SELECT min(fire_at) FROM lifecycle_timer WHERE microgrid_id = $1 AND done_at IS NULL AND fire_at <= $2)"
        "  FOR UPDATE SKIP LOCKED)"
        f" ORDER BY {_KIND_RANK}, envelope_id, control_point_id",
        microgrid_id,
        now,
    )
    return [
        Timer(
            timer_id=r["timer_id"],
            microgrid_id=r["microgrid_id"],
            kind=TimerKind(r["kind"]),
            fire_at=r["fire_at"],
            envelope_id=r["envelope_id"],
            control_point_id=r["control_point_id"],
            attempts=r["attempts"],
        )
        for r in rows
    ]


async def mark_fired(conn: asyncpg.Connection, timer_ids: list[int], at: datetime) -> None:
    await conn.execute(
        "UPDATE lifecycle_timer SET done_at = $2, outcome = 'FIRED' WHERE timer_id = ANY($1)", timer_ids, at
    )


async def record_failure(
    conn: asyncpg.Connection, timer_ids: list[int], error: str, *, max_attempts: int, at: datetime
) -> int:
    """Count a failed evaluation; timers out of attempts are marked FAILED. Returns how many gave up."""
    rows = await conn.fetch(
        "UPDATE lifecycle_timer SET attempts = attempts + 1, last_error = $2,"
        " done_at = CASE WHEN attempts + 1 >= $3 THEN $4::timestamptz END,"
        " outcome = CASE WHEN attempts + 1 >= $3 THEN 'FAILED' END"
        " WHERE timer_id = ANY($1) AND done_at IS NULL RETURNING outcome",
        timer_ids,
        error[:2000],
        max_attempts,
        at,
    )
    return sum(1 for r in rows if r["outcome"] == "FAILED")
