"""The relay's in-process hand-off holds committed outbox rows up to a size in bytes, oldest forgotten first:
a pack of a cycle's events is ~280 KB, so a bound in rows would let a broker outage fill the memory."""

from __future__ import annotations

import uuid

from libs.platform.messaging.unit_of_work import OutboxEntry, OutboxHandoff


def _message(size: int) -> tuple[uuid.UUID, str, bytes, bytes, str]:
    return (uuid.uuid4(), "p.topic", b"k", b"x" * size, "{}")


def test_rows_are_forgotten_oldest_first_once_their_values_pass_the_bound() -> None:
    handoff = OutboxHandoff(max_bytes=10_000)
    packs = [OutboxEntry.packed([_message(1_000) for _ in range(3)]) for _ in range(5)]  # 3,000 B each
    handoff.offer(packs)
    assert len(handoff) == 3 and handoff.held_bytes == 9_000
    assert handoff.take(packs[0].row[0]) is None and handoff.take(packs[1].row[0]) is None  # forgotten
    assert handoff.take(packs[2].row[0]) == packs[2].messages
    assert handoff.held_bytes == 6_000


def test_a_row_taken_or_offered_again_is_counted_once() -> None:
    handoff = OutboxHandoff(max_bytes=10_000)
    single = OutboxEntry.single(_message(2_000))
    handoff.offer([single])
    handoff.offer([single])
    assert len(handoff) == 1 and handoff.held_bytes == 2_000
    assert handoff.take(single.row[0]) == [single.row]
    assert len(handoff) == 0 and handoff.held_bytes == 0
    assert handoff.take(single.row[0]) is None


def test_rows_withdrawn_after_a_failed_commit_are_gone_and_no_longer_counted() -> None:
    handoff = OutboxHandoff(max_bytes=10_000)
    kept, failed = OutboxEntry.single(_message(1_000)), OutboxEntry.packed([_message(500) for _ in range(2)])
    handoff.offer([kept])
    handoff.offer([failed])
    handoff.withdraw([failed])
    assert len(handoff) == 1 and handoff.held_bytes == 1_000
    assert handoff.take(failed.row[0]) is None
    assert handoff.take(kept.row[0]) == [kept.row]
