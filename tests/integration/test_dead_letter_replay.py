"""Dead letters brought back (issue 15, defect 5): listed with their reason and original position,
replayed through the normal idempotent path and audited, counted for /metrics."""

from __future__ import annotations

import pytest

from contracts.base import Message
from libs.platform.messaging.consumer import PermanentHandlerError
from libs.platform.messaging.dead_letter import DeadLetter, DeadLetterPublisher
from libs.platform.messaging.dead_letter_replay import (
    DeadLetterCounts,
    read_letters,
    replay,
    select_letters,
    with_original,
)
from libs.platform.messaging.unit_of_work import UnitOfWork
from tests.integration.messaging_env import TOPIC, consumer_for, record_effect, start_consuming, topology_event
from tests.support import eventually

pytestmark = pytest.mark.integration


async def _value(v: object) -> object:
    return v


async def test_dead_letters_are_listed_replayed_once_through_the_inbox_audited_and_counted(backbone_env) -> None:
    s, pool, producer = backbone_env
    unknown, valid = topology_event(), topology_event()
    broken = {unknown.event_id}

    async def handler(message: Message, uow: UnitOfWork) -> None:
        if message.event_id in broken:
            raise PermanentHandlerError("MICROGRID_UNKNOWN", "not known here yet")
        await record_effect(message, uow)

    consumer = consumer_for(s, pool, producer, handler)
    await producer.send_and_wait(s.topic(TOPIC), b"{not json", key=b"k")
    await producer.send_and_wait(s.topic(TOPIC), unknown.to_bytes(), key=b"k",
                                 headers=[("event_id", str(unknown.event_id).encode())])
    await producer.send_and_wait(s.topic(TOPIC), valid.to_bytes(), key=b"k")
    broker = await start_consuming(s, consumer)
    try:
        await eventually(lambda: _value(consumer.stats.processed == 1 and consumer.stats.dead_lettered == 2))
        async with pool.acquire() as conn:
            letters = await read_letters(s, "backbone", conn)
        assert [x.reason for x in letters] == ["INVALID_MESSAGE", "MICROGRID_UNKNOWN"]
        invalid, letter = letters
        assert letter.original_topic == s.topic(TOPIC)
        assert letter.original_offset == invalid.original_offset + 1  # the same partition, the next record
        assert letter.event_id == str(unknown.event_id)
        assert letter.value == unknown.to_bytes()

        # the cause is fixed; replay what is not invalid (an invalid message would only fail again)
        broken.clear()
        chosen = select_letters(letters, every=True)
        assert chosen == [letter]
        async with pool.acquire() as conn:
            assert await replay(conn, producer, "backbone", chosen, actor="operator-a") == 1
        await eventually(lambda: pool.fetchval("SELECT count(*) = 2 FROM effects"))

        # replaying again is harmless: the inbox has it, nothing happens twice; but it is audited
        async with pool.acquire() as conn:
            letters = await read_letters(s, "backbone", conn)
            assert letters[1].replays == 1
            assert select_letters(letters, every=True) == []  # replayed letters only with again=True
            await replay(conn, producer, "backbone", select_letters(letters, every=True, again=True), actor="b")
        await eventually(lambda: _value(consumer.stats.duplicates == 1))
        assert await pool.fetchval("SELECT count(*) FROM effects WHERE event_id = $1", unknown.event_id) == 1
        audit = await pool.fetch("SELECT replayed_by, original_offset, reason FROM dead_letter_replays ORDER BY id")
        assert [(r["replayed_by"], r["reason"]) for r in audit] == [
            ("operator-a", "MICROGRID_UNKNOWN"), ("b", "MICROGRID_UNKNOWN")
        ]
        assert audit[0]["original_offset"] == letter.original_offset

        counts = DeadLetterCounts(s, "backbone", pool)
        await counts.refresh()
        assert counts.readings() == [
            (2, {"group": "backbone", "state": "total"}), (1, {"group": "backbone", "state": "replayed"})
        ]
    finally:
        await broker.stop()


async def test_a_letter_holding_an_excerpt_is_replayed_with_the_original_from_its_position(backbone_env) -> None:
    s, pool, producer = backbone_env
    event = topology_event()
    sent = await producer.send_and_wait(s.topic(TOPIC), event.to_bytes(), key=b"k",
                                        headers=[("event_id", str(event.event_id).encode())])
    letter = DeadLetter(
        consumer_group=s.topic("backbone"), topic=s.topic(TOPIC), partition=sent.partition, offset=sent.offset,
        key=b"k", value=event.to_bytes(), headers=(("event_id", str(event.event_id).encode()),),
        reason="HANDLER_FAILED", error="too big to keep whole", attempts=1,
    )
    await DeadLetterPublisher(producer, s).publish(letter.excerpt(16))
    [stored] = await read_letters(s, "backbone")
    assert stored.excerpted and stored.value == event.to_bytes()[:16]
    with pytest.raises(ValueError, match="excerpt"):
        async with pool.acquire() as conn:
            await replay(conn, producer, "backbone", [stored], actor="t")
    whole = await with_original(s, stored)
    assert (whole.value, whole.excerpted, whole.event_id) == (event.to_bytes(), False, str(event.event_id))
