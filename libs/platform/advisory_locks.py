"""Postgres advisory-lock keys, built one way.

A key is the first 8 bytes of the SHA-256 of its parts joined by ":", read as a signed 64-bit integer
(what `pg_advisory_*` take). The first part names what the lock serialises ("outbox", "migrate",
"balancing", ...), so two kinds of lock never share a key; the rest name the instance (a schema, a
microgrid id). Ids are random UUIDs, so services and test sessions sharing one database do not
contend by accident.
"""

from __future__ import annotations

import hashlib

import asyncpg


def advisory_lock_key(kind: str, *parts: object) -> int:
    """The advisory-lock key of `kind` for `parts` (stable across processes and releases)."""
    text = ":".join([kind, *(str(p) for p in parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


async def lock_for_transaction(conn: asyncpg.Connection, kind: str, *parts: object) -> None:
    """Wait for, then hold until the transaction ends (commit or rollback: it cannot leak), the lock."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", advisory_lock_key(kind, *parts))


async def try_lock_for_transaction(conn: asyncpg.Connection, kind: str, *parts: object) -> bool:
    """Take the transaction-scoped lock if free; False when another transaction (or replica) holds it."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", advisory_lock_key(kind, *parts)))
