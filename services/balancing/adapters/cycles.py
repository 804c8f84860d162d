"""Stored cycles (result, inputs, canonical output) and their breaches."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from contracts.records import CycleResultRecord
from services.balancing.console.store import TimelinePointRow
from services.balancing.cycle_records import EncodedCycle


@dataclass(frozen=True)
class StoredCycle:
    result: CycleResultRecord
    request_key: str
    inputs: dict[str, Any] | None  # None when read without them (views: only replay needs the tree)
    output: bytes
    inputs_digest: str
    output_digest: str
    missing_inputs: list[str]
    safe_action_taken: str | None


async def insert_cycle(
    conn: asyncpg.Connection,
    *,
    cycle: EncodedCycle,
    request_key: str,
    request_event_id: UUID,
    inputs: StoredInputs,
    output: bytes,
    output_digest: str,
    missing_inputs: list[str],
    safe_action_taken: str | None,
    rotation: int,
    timeline: list[TimelinePointRow],
) -> None:
    """The cycle (its record lists every breach: the `breaches` view reads them from there), its new input
    parts and its console timeline points in one statement. The record goes in as the bytes encode_cycle made."""
    d = cycle.document
    await conn.execute(
        "WITH parts AS ("
        " INSERT INTO cycle_input_parts (digest, body)"
        " SELECT * FROM unnest($18::text[], $19::text[]) ON CONFLICT (digest) DO NOTHING),"
        " timeline AS ("
        " INSERT INTO console_timeline (microgrid_id, node_id, cycle_id, at, requested_watts, drawn_watts,"
        " allocated_watts, effective_limit_watts)"
        " SELECT $2, t.node_id, $1, $9, t.requested, t.drawn, t.allocated, t.effective_limit"
        " FROM unnest($20::uuid[], $21::bigint[], $22::bigint[], $23::bigint[], $24::bigint[])"
        " AS t(node_id, requested, drawn, allocated, effective_limit) ON CONFLICT DO NOTHING)"
        " INSERT INTO cycles (cycle_id, microgrid_id, node_id, request_key, request_event_id, topology_version,"
        " outcome, started_at, ended_at, result, inputs, output, inputs_digest, output_digest, missing_inputs,"
        " safe_action_taken, rotation, engine_version)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::json, $11::jsonb, $12, $13, $14, $15::jsonb, $16, $17, $25)",
        UUID(d["cycle_id"]),
        UUID(d["microgrid_id"]),
        UUID(d["node_id"]) if d["node_id"] else None,
        request_key,
        request_event_id,
        d["topology_version"],
        cycle.outcome.value,
        d["started_at"],
        d["ended_at"],
        cycle.record_json.decode(),
        inputs.document,
        output,
        d["audit"]["inputs_digest"],
        output_digest,
        json.dumps(missing_inputs),
        safe_action_taken,
        rotation,
        [digest for digest, _ in inputs.new_parts],
        [body for _, body in inputs.new_parts],
        *([list(column) for column in zip(*timeline, strict=True)] if timeline else [[]] * 5),
        d["audit"]["policy_versions"]["engine_version"],
    )


# ---- stored inputs: the small fields inline, the large ones as content-addressed parts -------------------

PARTS_KEY = "$parts"


@dataclass(frozen=True)
class StoredInputs:
    """A cycle's inputs as stored: `document` (jsonb) names its large fields by digest; `new_parts` are the
    (digest, canonical text) pairs not yet in cycle_input_parts. An unchanged tree is stored once, not per cycle."""

    document: str
    new_parts: list[tuple[str, str]]

    @staticmethod
    def of(fields: dict[str, str], parts: dict[str, str], unstored: set[str]) -> StoredInputs:
        """`fields`: every field's canonical text; `parts`: field -> digest for the fields stored as parts."""
        document: dict[str, Any] = {name: json.loads(text) for name, text in fields.items() if name not in parts}
        document[PARTS_KEY] = parts
        new = sorted({(digest, fields[name]) for name, digest in parts.items() if digest in unstored})
        return StoredInputs(json.dumps(document), new)


async def _expanded_inputs(conn: asyncpg.Connection | asyncpg.Pool, document: dict[str, Any]) -> dict[str, Any]:
    """The inputs as `cycle_inputs_to_dict` gives them (a cycle stored before parts existed is whole already)."""
    parts: dict[str, str] = document.pop(PARTS_KEY, None) or {}
    if parts:
        rows = await conn.fetch(
            "SELECT digest, body FROM cycle_input_parts WHERE digest = ANY($1::text[])", list(set(parts.values()))
        )
        bodies = {r["digest"]: r["body"] for r in rows}
        for name, digest in parts.items():
            document[name] = json.loads(bodies[digest])
    return document


# A stored cycle's columns, but its inputs: a view never shows them, and expanding them reads and parses
# the whole tree (its parts), hundreds of KB.
_WITHOUT_INPUTS = (
    "cycle_id, result, request_key, output, inputs_digest, output_digest, missing_inputs, safe_action_taken"
)


async def _stored(conn: asyncpg.Connection | asyncpg.Pool, row: asyncpg.Record | None) -> StoredCycle | None:
    if row is None:
        return None
    return StoredCycle(
        result=CycleResultRecord.model_validate_json(row["result"]),
        request_key=row["request_key"],
        inputs=await _expanded_inputs(conn, json.loads(row["inputs"])) if row.get("inputs") is not None else None,
        output=bytes(row["output"]),
        inputs_digest=row["inputs_digest"],
        output_digest=row["output_digest"],
        missing_inputs=json.loads(row["missing_inputs"]),
        safe_action_taken=row["safe_action_taken"],
    )


async def cycle_by_id(
    conn: asyncpg.Connection | asyncpg.Pool, cycle_id: UUID, *, with_inputs: bool = True
) -> StoredCycle | None:
    columns = "*" if with_inputs else _WITHOUT_INPUTS
    return await _stored(conn, await conn.fetchrow(f"SELECT {columns} FROM cycles WHERE cycle_id = $1", cycle_id))


# Reason codes whose HTTP error quotes the decided output (services/balancing/routes.error_for).
ANSWERED_FROM_OUTPUT = ("TOPOLOGY_INVALID", "TOPOLOGY_VERSION_CONFLICT")
ANSWERED_FROM_OUTPUT_SET = frozenset(ANSWERED_FROM_OUTPUT)


@dataclass(frozen=True)
class CycleAnswer:
    """What answering a request needs of its stored cycle: the record, the missing inputs, and the decided
    output only for the reason codes whose error quotes it (the violations, the expected version). Not the
    inputs: expanding them reads and parses the whole tree, hundreds of KB, for an answer that never shows it."""

    result: CycleResultRecord
    missing_inputs: list[str]
    safe_action_taken: str | None
    output: bytes | None


async def answer_by_request_key(conn: asyncpg.Connection | asyncpg.Pool, request_key: str) -> CycleAnswer | None:
    row = await conn.fetchrow(
        "SELECT result, missing_inputs, safe_action_taken,"
        " CASE WHEN (result->'reason_codes')::jsonb ?| $2::text[] THEN output END AS output"
        " FROM cycles WHERE request_key = $1",
        request_key,
        list(ANSWERED_FROM_OUTPUT),
    )
    if row is None:
        return None
    return CycleAnswer(
        result=CycleResultRecord.model_validate_json(row["result"]),
        missing_inputs=json.loads(row["missing_inputs"]),
        safe_action_taken=row["safe_action_taken"],
        output=bytes(row["output"]) if row["output"] is not None else None,
    )


async def request_key_done(conn: asyncpg.Connection | asyncpg.Pool, request_key: str) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM cycles WHERE request_key = $1)", request_key))


async def cycle_by_request_key(conn: asyncpg.Connection | asyncpg.Pool, request_key: str) -> StoredCycle | None:
    return await _stored(conn, await conn.fetchrow("SELECT * FROM cycles WHERE request_key = $1", request_key))


async def latest_cycle(conn: asyncpg.Connection | asyncpg.Pool, microgrid_id: UUID) -> StoredCycle | None:
    """The microgrid's latest cycle, without its inputs (status and console views)."""
    return await _stored(
        conn,
        await conn.fetchrow(
            f"SELECT {_WITHOUT_INPUTS} FROM cycles WHERE microgrid_id = $1 ORDER BY seq DESC LIMIT 1",
            microgrid_id,
        )
    )


async def next_rotation(conn: asyncpg.Connection, microgrid_id: UUID) -> int:
    """The allocation tie-break rotation for the next cycle: one more than the last cycle's."""
    last = await conn.fetchval(
        "SELECT rotation FROM cycles WHERE microgrid_id = $1 ORDER BY seq DESC LIMIT 1", microgrid_id
    )
    return 0 if last is None else int(last) + 1
