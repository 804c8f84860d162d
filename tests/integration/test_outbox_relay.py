"""The outbox relay against the real Kafka and Postgres: an unpublishable row is parked, the rest flows,
a sent row is never re-sent, and the backlog it reports is true (issue 15, defect 1)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from typing import Any

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError

from libs.platform.db import changes_session
from libs.platform.messaging.relay import OutboxRelay
from libs.platform.messaging.unit_of_work import OutboxHandoff, outbox_channel, unit_of_work
from libs.platform.settings import PlatformSettings
from tests.integration.messaging_env import TOPIC, messaging_env, topology_event
from tests.support import TopicReader, eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def env(settings: PlatformSettings):
    async with messaging_env(settings, schema_suffix="relay", client_id="relay-test", dead_letters=False) as env:
        yield env


async def _value(v: Any) -> Any:
    return v


def _event_ids(records: list) -> Counter[str]:
    return Counter(dict(r.headers)["event_id"].decode() for r in records)


async def _relay_all(env, handoff: OutboxHandoff | None, expected: int) -> tuple[OutboxRelay, list]:  # noqa: ANN001
    """Run a relay until `expected` records are on the topic and nothing waits; then one more pass."""
    s, pool, producer = env
    relay = OutboxRelay(pool=pool, producer=producer, settings=s, schema="relay", handoff=handoff)
    await relay.start()
    try:
        async with TopicReader(s, TOPIC) as reader:
            await reader.wait_for(lambda rs: len(rs) >= expected)
            await eventually(lambda: _value(relay.backlog.pending == 0))
            await relay.publish_batch()  # nothing left: another pass re-sends nothing
            await reader.poll()
    finally:
        await relay.stop()
    return relay, reader.records


def _assert_each_once_in_order(records: list, events: list) -> None:
    """Every event once, whole (key, value, headers), in the events' order within each partition."""
    assert _event_ids(records) == {str(e.event_id): 1 for e in events}
    place = {str(e.event_id): i for i, e in enumerate(events)}
    by_partition: dict[int, list[int]] = {}
    for record in records:
        event = events[place[dict(record.headers)["event_id"].decode()]]
        by_partition.setdefault(record.partition, []).append(place[str(event.event_id)])
        assert record.value == event.to_bytes()
        assert record.key == str(event.payload.microgrid_id).encode()
        assert dict(record.headers)["event_type"].decode() == event.event_type
    assert all(seen == sorted(seen) for seen in by_partition.values())  # id order within a partition


# What a row the broker can never take looks like: (value, messages in the row, the parked reason's start).
UNSENDABLE_ROWS = {
    # what a 1 MB `requested_by` made: a schema-valid event larger than the broker takes
    "too-large": (b"x" * 1_100_000, 1, "MessageSizeTooLargeError"),
    # a pack (outbox_pack) whose bytes are not one
    "damaged-pack": (b"not a pack", 3, "ValueError: not an outbox pack"),
}


@pytest.mark.parametrize("kind", UNSENDABLE_ROWS)
async def test_a_row_that_cannot_be_published_is_parked_and_the_rest_flows_on_once(env, kind: str) -> None:
    s, pool, producer = env
    value, messages, reason = UNSENDABLE_ROWS[kind]
    before, after = topology_event(), topology_event()
    async with unit_of_work(pool, s) as uow:
        await uow.publish(before)
        await uow.conn.execute(
            "INSERT INTO outbox (event_id, topic, key, value, headers, messages)"
            " VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
            uuid.uuid4(), s.topic(TOPIC), b"k", value, json.dumps({"event_id": kind}), messages,
        )
        await uow.publish(after)
    relay = OutboxRelay(pool=pool, producer=producer, settings=s, schema="relay")
    await relay.start()
    try:
        async with TopicReader(s, TOPIC) as reader:
            await reader.wait_for(lambda rs: len(rs) >= 2)
            await eventually(lambda: _value(relay.backlog.parked == 1 and relay.backlog.pending == 0))
            await relay.publish_batch()  # another pass re-sends nothing and retries nothing parked
            await reader.poll()
        assert _event_ids(reader.records) == {str(before.event_id): 1, str(after.event_id): 1}
        parked = await pool.fetchrow("SELECT parked_reason, published_at FROM outbox WHERE parked_at IS NOT NULL")
        assert parked["published_at"] is None
        assert parked["parked_reason"].startswith(reason), parked["parked_reason"]
        readiness = relay.readiness()
        assert isinstance(readiness, str) and "1 outbox row(s) parked" in readiness
        assert reason in readiness
        assert relay.parked_total == 1
    finally:
        await relay.stop()


class FlakyProducer:
    """The real producer, except that the batch holding one value fails to be acknowledged (broker gone)
    until released; the relay sends a record batch per partition."""

    def __init__(self, real: Any, failing_value: bytes) -> None:
        self.real, self.failing_value = real, failing_value
        self.released = asyncio.Event()
        self.failures = 0
        self.failed_batch_size = 0

    async def partitions_for(self, topic: str) -> set[int]:
        return await self.real.partitions_for(topic)

    def create_batch(self) -> RecordingBatch:
        return RecordingBatch(self.real.create_batch())

    async def send_batch(self, batch: RecordingBatch, topic: str, *, partition: int) -> asyncio.Future[Any]:
        if self.failing_value in batch.values and not self.released.is_set():
            self.failures += 1
            self.failed_batch_size = len(batch.values)
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(KafkaConnectionError("broker unavailable"))
            return failed
        return await self.real.send_batch(batch.inner, topic, partition=partition)


class RecordingBatch:
    def __init__(self, inner: Any) -> None:
        self.inner, self.values = inner, []

    def append(self, **record: Any) -> Any:
        appended = self.inner.append(**record)
        if appended is not None:
            self.values.append(record["value"])
        return appended


async def _outbox_behind_a_flaky_producer(env, *, count: int, failing: int) -> tuple[list, FlakyProducer, OutboxRelay]:  # noqa: ANN001
    """`count` events committed to the outbox, and a relay (not started) whose producer fails the batch
    holding the `failing`-th one until released."""
    s, pool, producer = env
    events = [topology_event() for _ in range(count)]
    flaky = FlakyProducer(producer, events[failing].to_bytes())
    async with unit_of_work(pool, s) as uow:
        await uow.publish_all(events)
    relay = OutboxRelay(pool=pool, producer=flaky, settings=s, schema="relay")  # type: ignore[arg-type]
    return events, flaky, relay


async def test_rows_sent_before_a_failure_are_never_sent_again_and_the_backlog_stays_true(env) -> None:
    s, _, _ = env
    events, flaky, relay = await _outbox_behind_a_flaky_producer(env, count=5, failing=2)
    await relay.start()
    try:
        async with TopicReader(s, TOPIC) as reader:
            # while the one batch keeps failing, the gauges say so (they used to read 0 after an error)
            await eventually(
                lambda: _value(flaky.failures >= 2 and relay.backlog.pending == flaky.failed_batch_size >= 1)
            )
            await reader.wait_for(lambda rs: len(rs) >= 5 - flaky.failed_batch_size)
            assert relay.backlog.oldest_pending_age_s() > 0
            flaky.released.set()
            await reader.wait_for(lambda rs: len(rs) >= 5)
            await eventually(lambda: _value(relay.backlog.pending == 0))
            await reader.poll()
        assert _event_ids(reader.records) == {str(e.event_id): 1 for e in events}
        assert relay.backlog.parked == 0
        assert relay.readiness() is True
    finally:
        await relay.stop()


async def test_rows_waiting_count_as_undelivered_once_by_the_relay_that_publishes_them(env) -> None:
    """Backpressure adds a service's undelivered outbox rows to its consumer's lag (issue 13): the relay holding
    the schema's lock counts them, a standby replica's relay does not, so replicas' reports add up once."""
    s, pool, producer = env
    _, flaky, holder = await _outbox_behind_a_flaky_producer(env, count=3, failing=0)
    standby = OutboxRelay(pool=pool, producer=producer, settings=s, schema="relay")
    await holder.start()
    try:
        await eventually(lambda: _value(flaky.failures >= 1 and holder.undelivered == holder.backlog.pending >= 1))
        await standby.start()
        await eventually(lambda: _value(standby.backlog.pending >= 1))  # it sees the rows, it does not own them
        assert standby.undelivered == 0
        flaky.released.set()
        await eventually(lambda: _value(holder.undelivered == 0))
    finally:
        await standby.stop()
        await holder.stop()


async def test_rows_handed_over_in_process_go_out_as_rows_read_from_the_table_once_each_in_order(env) -> None:
    """The hand-off (issue 13) spares the relay reading back payloads; the table still decides what goes and in
    which order: rows committed without it (another replica's, a restart's) are read from the table, rows of a
    rolled-back unit never reach it, and each row goes out once with the same key, value and headers."""
    s, pool, producer = env
    handoff = OutboxHandoff()
    events = [topology_event() for _ in range(6)]
    for i, event in enumerate(events):
        async with unit_of_work(pool, s, handoff=handoff if i % 2 == 0 else None) as uow:
            await uow.publish(event)
    with pytest.raises(RuntimeError):
        async with unit_of_work(pool, s, handoff=handoff) as uow:
            await uow.publish(topology_event())
            raise RuntimeError("rolled back")
    # Offered as it commits, a unit whose COMMIT fails (here a deferred constraint) is withdrawn again.
    await pool.execute("CREATE TABLE IF NOT EXISTS commit_guard (x int UNIQUE DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(asyncpg.UniqueViolationError):
        async with unit_of_work(pool, s, handoff=handoff) as uow:
            await uow.publish(topology_event())
            await uow.conn.execute("INSERT INTO commit_guard VALUES (1), (1)")
    assert len(handoff) == 3  # the committed units' rows only
    _, records = await _relay_all(env, handoff, len(events))
    _assert_each_once_in_order(records, events)
    assert len(handoff) == 0


@pytest.mark.parametrize("handed_over", [False, True], ids=["read-from-the-table", "handed-over"])
async def test_a_packed_unit_is_one_row_and_its_messages_go_out_once_each_in_order(env, handed_over: bool) -> None:
    """A unit that emits many events at once (a balancing cycle) writes them as one row (outbox_pack): the
    relay publishes each, whole and in order between the rows around it, and deletes the row."""
    s, pool, producer = env
    handoff = OutboxHandoff() if handed_over else None
    first, last = topology_event(), topology_event()
    pack = [topology_event() for _ in range(5)]
    async with unit_of_work(pool, s, handoff=handoff) as uow:
        await uow.publish(first)
    async with unit_of_work(pool, s, handoff=handoff) as uow:
        await uow.publish_all(pack, packed=True)
    async with unit_of_work(pool, s, handoff=handoff) as uow:
        await uow.publish(last)
    assert [r["messages"] for r in await pool.fetch("SELECT messages FROM outbox ORDER BY id")] == [1, 5, 1]
    events = [first, *pack, last]
    relay, records = await _relay_all(env, handoff, len(events))
    _assert_each_once_in_order(records, events)
    assert relay.published_total == len(events)
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


async def test_a_commit_wakes_the_relay_of_its_own_schema_only(env) -> None:
    """One NOTIFY channel per schema (issue 13): with one for the server, every service's commit woke every
    other service's relay for a claim that found nothing."""
    s, pool, producer = env
    schema = await pool.fetchval("SELECT current_schema()")
    woken: dict[str, int] = {"own": 0, "other": 0}
    listener = await pool.acquire()
    changes_session(listener)  # its LISTENs are undone when it goes back
    try:
        await listener.add_listener(outbox_channel(schema), lambda *_: woken.__setitem__("own", woken["own"] + 1))
        await listener.add_listener(outbox_channel(schema + "_other"), lambda *_: woken.__setitem__("other", 1))
        async with unit_of_work(pool, s) as uow:
            await uow.publish(topology_event())
        await eventually(lambda: _value(woken["own"] == 1))
        assert woken["other"] == 0
    finally:
        await pool.release(listener)


async def test_a_relay_standing_by_asks_for_the_lock_once_a_poll_and_takes_over_when_it_is_free(env) -> None:
    """Replicas of a service each run a relay; the one holding the schema's lock publishes. Every commit of
    the schema sends a NOTIFY, and a relay standing by that woke on each asked for the lock once a commit
    (issue 13: a query a cycle for a second replica). It asks once a poll interval, and takes over within
    one when the holder's session ends: every row once."""
    s, pool, producer = env
    s = s.model_copy(update={"outbox_poll_interval_s": 3.0})
    holder = OutboxRelay(pool=pool, producer=producer, settings=s, schema="relay")
    standby = OutboxRelay(pool=pool, producer=producer, settings=s, schema="relay")
    passes = 0
    standby_pass = standby.publish_batch

    async def counted() -> Any:
        nonlocal passes
        passes += 1
        return await standby_pass()

    standby.publish_batch = counted  # type: ignore[method-assign]
    events = [topology_event() for _ in range(31)]
    async with TopicReader(s, TOPIC) as reader:
        await holder.start()
        try:
            async with unit_of_work(pool, s) as uow:
                await uow.publish(events[0])
            await reader.wait_for(lambda rs: len(rs) >= 1)  # the holder has the lock
            await standby.start()
            started = time.monotonic()
            await eventually(lambda: _value(passes >= 1))
            for event in events[1:30]:
                async with unit_of_work(pool, s) as uow:
                    await uow.publish(event)
            await reader.wait_for(lambda rs: len(rs) >= 30)
            # 29 commits woke nobody but the holder: the standby's first pass, then one a 3 s poll.
            assert passes <= 2 + (time.monotonic() - started) // 3.0
            await holder.stop()  # its session ends: the lock is free
            async with unit_of_work(pool, s) as uow:
                await uow.publish(events[30])
            await reader.wait_for(lambda rs: len(rs) >= 31, timeout=30)  # published by the standby
        finally:
            await standby.stop()
            await holder.stop()
    _assert_each_once_in_order(reader.records, events)
