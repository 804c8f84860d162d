"""Several outbox messages in one outbox row (a pack): written, claimed and deleted as one row.

A balancing cycle of a curtailed depot publishes ~114 events (demand resolved, a breach event per breach,
cycle completed). As a row each, they cost the cycle's transaction an index entry per row in three
indexes and a tuple each, and the relay a row each to claim and delete: ~4 ms of Postgres CPU a cycle,
1.6 ms as one row (issue 13). A pack keeps every message whole (event id, topic, key, value, headers);
the relay publishes them one by one, in order, and deletes the row once every one was acknowledged.

The layout, per message: a fixed header (event id as 16 bytes, then the lengths of topic, key, value and
headers), then those four byte strings. The leading magic names the layout's version.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from uuid import UUID

# An outbox message as written: event id, topic (prefixed), key, value, headers (JSON text).
OutboxRow = tuple[object, str, bytes, bytes, str]

MAGIC = b"MGP1"
_HEADER = struct.Struct(">16sHIII")


def pack(rows: Sequence[OutboxRow]) -> bytes:
    """The messages as one value, in their order."""
    parts = [MAGIC]
    for event_id, topic, key, value, headers in rows:
        topic_b, headers_b = topic.encode(), headers.encode()
        uuid = event_id if isinstance(event_id, UUID) else UUID(str(event_id))
        parts.append(_HEADER.pack(uuid.bytes, len(topic_b), len(key), len(value), len(headers_b)))
        parts += (topic_b, key, value, headers_b)
    return b"".join(parts)


def unpack(data: bytes) -> list[OutboxRow]:
    """The messages `pack` wrote, in their order (ValueError if `data` is not a pack)."""
    view = memoryview(data)
    if bytes(view[: len(MAGIC)]) != MAGIC:
        raise ValueError("not an outbox pack (unknown magic)")
    rows: list[OutboxRow] = []
    at, end = len(MAGIC), len(view)
    while at < end:
        if at + _HEADER.size > end:
            raise ValueError("truncated outbox pack")
        event_id, topic_n, key_n, value_n, headers_n = _HEADER.unpack_from(view, at)
        at += _HEADER.size
        stop = at + topic_n + key_n + value_n + headers_n
        if stop > end:
            raise ValueError("truncated outbox pack")
        topic = bytes(view[at : at + topic_n]).decode()
        at += topic_n
        key = bytes(view[at : at + key_n])
        at += key_n
        value = bytes(view[at : at + value_n])
        at += value_n
        headers = bytes(view[at : at + headers_n]).decode()
        at = stop
        rows.append((UUID(bytes=event_id), topic, key, value, headers))
    return rows
