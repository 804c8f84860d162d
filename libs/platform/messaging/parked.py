"""Messages parked until what they wait for arrives (read-your-writes across services), or their deadline.

A consumer cannot wait in its handler for a later message on the same consumer (a topology update it
needs comes through the same loop), so it parks the message in a table of its own schema, bounded by a
deadline. The handler of the awaited message takes the ones now satisfied, in its transaction; a sweeper
takes those whose deadline has passed and judges them against what is known. Balancing parks rebalance
requests waiting for a topology version, envelope-lifecycle parks commands waiting for their node.

Each service keeps its own table: `event_id uuid PRIMARY KEY`, `microgrid_id uuid`, `message jsonb`,
`deadline timestamptz`, plus the columns its wait condition reads. Table and column names are code
constants, never input.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import asyncpg

from contracts.base import Message
from libs.platform.messaging.unit_of_work import UnitOfWork

M = TypeVar("M", bound=Message)


@dataclass(frozen=True, slots=True)
class ParkedMessages(Generic[M]):
    """One service's parked messages of one type, in `table`."""

    table: str
    message_type: type[M]

    async def park(self, conn: asyncpg.Connection, message: M, deadline: datetime, **columns: Any) -> None:
        """Park `message` until `deadline`, with the columns its wait condition reads; a repeat does nothing."""
        row = {
            "event_id": message.event_id,
            "microgrid_id": message.payload.microgrid_id,
            **columns,
            "message": message.model_dump_json(),
            "deadline": deadline,
        }
        marks = (f"${i}::jsonb" if name == "message" else f"${i}" for i, name in enumerate(row, 1))
        await conn.execute(
            f"INSERT INTO {self.table} ({', '.join(row)}) VALUES ({', '.join(marks)})"
            " ON CONFLICT (event_id) DO NOTHING",
            *row.values(),
        )

    async def take(self, conn: asyncpg.Connection, condition: str, *args: Any, using: str = "") -> list[M]:
        """Remove and return the parked messages (`p`) meeting `condition`, oldest deadline first.

        `using` names further tables the condition reads (`USING` of the DELETE).
        """
        rows = await conn.fetch(
            f"DELETE FROM {self.table} p {f'USING {using}' if using else ''} WHERE {condition}"
            " RETURNING p.message, p.deadline, p.event_id",
            *args,
        )
        return self._messages(sorted(rows, key=lambda r: (r["deadline"], str(r["event_id"]))))

    async def take_expired(self, conn: asyncpg.Connection, now: datetime, limit: int) -> list[M]:
        """Remove and return messages whose wait is over (skipping rows another replica is handling)."""
        rows = await conn.fetch(
            f"DELETE FROM {self.table} WHERE event_id IN ("
            f" SELECT event_id FROM {self.table} WHERE deadline <= $1 ORDER BY deadline, event_id"
            " LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING message",
            now,
            limit,
        )
        return self._messages(rows)

    def _messages(self, rows: Sequence[asyncpg.Record]) -> list[M]:
        return [self.message_type.model_validate_json(r["message"]) for r in rows]


async def judge_expired(
    take_expired: Callable[[asyncpg.Connection, datetime, int], Awaitable[list[M]]],
    *,
    unit_of_work: Callable[[], AbstractAsyncContextManager[UnitOfWork]],
    now: Callable[[], datetime],
    judge: Callable[[UnitOfWork, M], Awaitable[None]],
) -> int:
    """The sweeper's pass: each message whose wait is over is taken and judged in a transaction of its own
    (one that fails leaves the others parked for the next pass); how many were judged."""
    judged = 0
    while True:
        async with unit_of_work() as uow:
            expired = await take_expired(uow.conn, now(), 1)
            if not expired:
                return judged
            await judge(uow, expired[0])
        judged += 1


async def sweep_forever(sweep: Callable[[], Awaitable[int]], interval_s: float) -> None:
    """Run a sweeper's pass every `interval_s` seconds, for as long as the service runs."""
    while True:
        await sweep()
        await asyncio.sleep(interval_s)
