"""The messaging backbone against the real Kafka and Postgres: outbox, inbox, dead letters, commit policy."""

from __future__ import annotations

import asyncio
import uuid
import zlib

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from contracts.base import Message
from contracts.events import TopologyUpdated
from libs.platform.messaging.consumer import EventConsumer, PermanentHandlerError
from libs.platform.messaging.dead_letter import DeadLetterPublisher
from libs.platform.messaging.kafka import client_options, create_producer
from libs.platform.messaging.relay import OutboxRelay
from libs.platform.messaging.unit_of_work import UnitOfWork, unit_of_work
from libs.platform.settings import PlatformSettings
from tests.integration.messaging_env import TOPIC, consumer_for, record_effect, start_consuming, topology_event
from tests.support import TopicReader, eventually

pytestmark = pytest.mark.integration


async def test_event_written_through_outbox_arrives_once_with_trace_context(backbone_env) -> None:
    s, pool, producer = backbone_env
    relay = OutboxRelay(pool=pool, producer=producer, settings=s, schema="backbone")
    await relay.start()
    try:
        event = topology_event()
        async with unit_of_work(pool, s) as uow:
            await uow.publish(event)
        async with TopicReader(s, TOPIC) as reader:
            records = await reader.wait_for(lambda rs: len(rs) >= 1)
            await relay.publish_batch()  # nothing left: a second pass must not re-send
            await reader.poll()
        assert len(reader.records) == 1
        got = TopologyUpdated.model_validate_json(records[0].value)
        assert got == event
        assert records[0].key == str(event.payload.microgrid_id).encode()
        assert "traceparent" in dict(records[0].headers)
        assert await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
    finally:
        await relay.stop()


async def test_by_default_a_published_row_leaves_the_outbox(backbone_env) -> None:
    """Without a retention (the default) an acknowledged row is deleted at once: Kafka is the record of
    what was published, and a fleet's cycles would otherwise keep hundreds of KB a cycle in Postgres."""
    s, pool, producer = backbone_env
    s = s.model_copy(update={"outbox_retention_s": 0.0})
    assert PlatformSettings.model_fields["outbox_retention_s"].default == 0.0
    relay = OutboxRelay(pool=pool, producer=producer, settings=s, schema="backbone")
    await relay.start()
    try:
        event = topology_event()
        async with unit_of_work(pool, s) as uow:
            await uow.publish(event)
        async with TopicReader(s, TOPIC) as reader:
            await reader.wait_for(lambda rs: any(dict(r.headers)["event_id"] == str(event.event_id).encode()
                                                 for r in rs))
        await eventually(lambda: _no_rows(pool))
    finally:
        await relay.stop()


async def _no_rows(pool) -> bool:  # noqa: ANN001
    return await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_rolled_back_transaction_publishes_nothing(backbone_env) -> None:
    s, pool, _ = backbone_env
    with pytest.raises(RuntimeError):
        async with unit_of_work(pool, s) as uow:
            await uow.publish(topology_event())
            raise RuntimeError("state change failed")
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_same_event_delivered_twice_has_one_effect(backbone_env) -> None:
    s, pool, producer = backbone_env
    event = topology_event()
    for _ in range(2):
        await producer.send_and_wait(s.topic(TOPIC), event.to_bytes(), key=b"k")
    consumer = consumer_for(s, pool, producer)
    broker = await start_consuming(s, consumer)
    try:
        await eventually(lambda: _async(consumer.stats.processed + consumer.stats.duplicates == 2))
        assert await pool.fetchval("SELECT count(*) FROM effects") == 1
        assert consumer.stats.duplicates == 1
    finally:
        await broker.stop()


async def test_a_message_its_service_passes_over_takes_no_transaction_and_leaves_no_inbox_row(backbone_env) -> None:
    """A predicate in `passes_over` says a message would change nothing (the adapter and the fleet's
    cycles it did not ask for): no unit of work, no inbox row; the others are applied as ever."""
    s, pool, producer = backbone_env
    passed, applied = topology_event(version=1), topology_event(version=2)
    for event in (passed, applied):
        await producer.send_and_wait(s.topic(TOPIC), event.to_bytes(), key=b"k")
    consumer = consumer_for(s, pool, producer, passes_over=lambda m: m.payload.version == 1)
    broker = await start_consuming(s, consumer)
    try:
        await eventually(lambda: _async(consumer.stats.processed == 1 and consumer.stats.passed_over == 1))
        assert await pool.fetchval("SELECT event_id FROM effects") == applied.event_id
        inbox = await pool.fetch("SELECT event_id FROM inbox")
        assert [r["event_id"] for r in inbox] == [str(applied.event_id)]
        await eventually(lambda: _committed_is(s, consumer, 2))  # passed over, and its offset committed
    finally:
        await broker.stop()


async def test_passed_over_batches_are_committed_late_but_always(backbone_env) -> None:
    """A batch of passed-over records changes nothing; its offsets are committed all the same: when the
    consumer goes idle, with the next handled batch, and when it stops."""
    s, pool, producer = backbone_env
    consumer = consumer_for(s, pool, producer, passes_over=lambda m: m.payload.version == 1)
    broker = await start_consuming(s, consumer)
    try:
        for _ in range(3):
            await producer.send_and_wait(s.topic(TOPIC), topology_event(version=1).to_bytes(), key=b"k")
        await eventually(lambda: _committed_is(s, consumer, 3))  # idle: committed
        await producer.send_and_wait(s.topic(TOPIC), topology_event(version=1).to_bytes(), key=b"k")
        await producer.send_and_wait(s.topic(TOPIC), topology_event(version=2).to_bytes(), key=b"k")
        await eventually(lambda: _committed_is(s, consumer, 5))
        assert consumer.stats.processed == 1 and consumer.stats.passed_over == 4
        await producer.send_and_wait(s.topic(TOPIC), topology_event(version=1).to_bytes(), key=b"k")
        await eventually(lambda: _async(consumer.stats.passed_over == 5))
    finally:
        await broker.stop()
    assert await _group_committed(s, consumer.group) == 6  # a clean stop leaves nothing to read again


def _counting(owner: object, method: str) -> list[int]:
    """Calls of `owner.method` from now on, counted (the real method still runs)."""
    calls: list[int] = []
    real = getattr(owner, method)

    async def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        return await real(*args, **kwargs)

    setattr(owner, method, counted)
    return calls


async def _steady_stream(
    s: PlatformSettings, producer: AIOKafkaProducer, count: int, every_s: float, until: asyncio.Event | None = None
) -> int:
    """Up to `count` events, one every `every_s` seconds (no idle poll in between), to each of the topic's three
    partitions in turn (keys could all hash to one), until `until` is set; returns how many were sent."""
    sent = 0
    while sent < count and not (until is not None and until.is_set()):
        await producer.send_and_wait(s.topic(TOPIC), topology_event().to_bytes(), key=b"k", partition=sent % 3)
        sent += 1
        await asyncio.sleep(every_s)
    return sent


async def test_handled_batches_share_an_offset_commit_and_every_offset_is_committed(backbone_env) -> None:
    """Under steady traffic the handled batches' offsets wait (consumer_commit_interval_s) and go in one
    request to the group coordinator, not one per batch (issue 13: the broker's cost follows requests);
    none is left out: the consumer commits them all when it goes idle, and before it leaves the group."""
    s, pool, producer = backbone_env
    s = s.model_copy(update={"consumer_commit_interval_s": 1.0})
    consumer = consumer_for(s, pool, producer)
    broker = await start_consuming(s, consumer)
    commits = _counting(consumer._consumer, "commit")  # noqa: SLF001 - the offset-commit requests
    batches = _counting(consumer, "process_batch")  # the polled batches
    try:
        await _steady_stream(s, producer, count=30, every_s=0.05)
        await eventually(lambda: _async(consumer.stats.processed == 30))
        assert len(batches) >= 10  # records came a few at a time...
        assert len(commits) <= 6  # ...and were committed about once a second, not once a batch
        await eventually(lambda: _committed_sum_is(s, consumer, 30))  # idle: every offset committed
    finally:
        await broker.stop()
    assert await pool.fetchval("SELECT count(*) FROM effects") == 30


async def test_under_load_the_records_arriving_during_the_linger_share_a_batch(backbone_env) -> None:
    """Records coming faster than the consumer's batches end wait `consumer_linger_ms` and are handled
    together: one unit of work, one outbox write, one fetch for several (issue 13). None is lost or doubled."""
    s, pool, producer = backbone_env
    s = s.model_copy(update={"consumer_linger_ms": 200})
    consumer = consumer_for(s, pool, producer)
    broker = await start_consuming(s, consumer)
    batches = _counting(consumer, "process_batch")
    try:
        await _steady_stream(s, producer, count=60, every_s=0.01)  # ~100 a second for ~0.6 s
        await eventually(lambda: _async(consumer.stats.processed == 60))
        assert len(batches) <= 15, f"{len(batches)} batches for 60 records: the linger gathered none"
    finally:
        await broker.stop()
    assert await pool.fetchval("SELECT count(DISTINCT event_id) FROM effects") == 60


async def test_behind_a_backlog_full_batches_follow_each_other_without_the_linger(backbone_env) -> None:
    """A batch that filled up (`consumer_max_batch`) means more records are already waiting: the next poll
    comes at once. Lingering after it would only add its time to every record behind it (issue 13)."""
    s, pool, producer = backbone_env
    s = s.model_copy(update={"consumer_linger_ms": 2_000, "consumer_max_batch": 5})
    for n in range(60):  # the backlog is in Kafka before the consumer starts
        await producer.send(s.topic(TOPIC), topology_event().to_bytes(), key=b"k", partition=n % 3)
    await producer.flush()
    consumer = consumer_for(s, pool, producer)
    batches = _counting(consumer, "process_batch")
    broker = await start_consuming(s, consumer)
    try:
        # 12 batches or more; lingering 2 s after them (before the change: every second one) took 10 s or more.
        await eventually(lambda: _async(consumer.stats.processed == 60), timeout=6)
        assert len(batches) >= 12
    finally:
        await broker.stop()
    assert await pool.fetchval("SELECT count(DISTINCT event_id) FROM effects") == 60


async def test_at_low_load_a_record_is_handled_at_once_whatever_the_linger(backbone_env) -> None:
    """A record after a quiet spell is polled at once: the linger (here 5 s) waits only under load, so a
    single request's latency at low load is unchanged."""
    s, pool, producer = backbone_env
    s = s.model_copy(update={"consumer_linger_ms": 5_000})
    consumer = consumer_for(s, pool, producer)
    broker = await start_consuming(s, consumer)
    try:
        for sent in range(1, 4):
            await producer.send_and_wait(s.topic(TOPIC), topology_event().to_bytes(), key=b"k")
            await eventually(lambda n=sent: _async(consumer.stats.processed == n), timeout=3)
            await asyncio.sleep(0.3)  # the quiet spell between requests is the test's subject, not a wait for a message
    finally:
        await broker.stop()


async def test_partitions_handed_to_another_member_are_committed_first(backbone_env) -> None:
    """A member that joins mid-stream takes partitions whose handled records the first member committed
    on revocation, though its commit interval had not passed: the newcomer reads none of them again."""
    s, pool, producer = backbone_env
    s = s.model_copy(update={"consumer_commit_interval_s": 10.0})
    first = consumer_for(s, pool, producer)
    await start_consuming(s, first)
    second = None
    enough = asyncio.Event()
    try:
        stream = asyncio.create_task(_steady_stream(s, producer, count=2_000, every_s=0.05, until=enough))
        await eventually(lambda: _async(first.stats.processed >= 20))
        second = consumer_for(s, pool, producer)
        await start_consuming(s, second)
        joined = second
        await eventually(lambda: _async(joined.stats.processed >= 10), timeout=60)  # it took partitions mid-stream
        enough.set()
        sent = await stream
        await eventually(lambda: _async(first.stats.processed + joined.stats.processed == sent))
        assert first.stats.duplicates == second.stats.duplicates == 0  # nothing handled was read again
    finally:
        enough.set()
        if second is not None:
            await second.stop()
        await first.stop()
    assert await pool.fetchval("SELECT count(*) FROM effects") == sent


async def _committed_sum_is(s: PlatformSettings, consumer: EventConsumer, total: int) -> bool:
    from aiokafka import TopicPartition

    inner = consumer._consumer  # noqa: SLF001
    assert inner is not None
    offsets = [await inner.committed(TopicPartition(s.topic(TOPIC), p)) for p in range(3)]
    return sum(o or 0 for o in offsets) == total


async def _group_committed(s: PlatformSettings, group: str) -> int | None:
    """What the group has committed, asked by a client of its own (the consumer has left)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**client_options(s))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    done = [meta.offset for tp, meta in offsets.items() if tp.topic == s.topic(TOPIC) and meta.offset >= 0]
    return max(done) if done else None


async def _committed_is(s: PlatformSettings, consumer: EventConsumer, offset: int) -> bool:
    return await _committed(s, consumer) == offset


async def test_lanes_overlap_different_keys_and_keep_one_keys_records_in_order(backbone_env) -> None:
    """consumer_lanes > 1: a batch is split by record key; lanes run at once, each key's records in order."""
    s, pool, producer = backbone_env
    s = s.model_copy(update={"consumer_lanes": 4})
    microgrids: list[uuid.UUID] = []
    lanes: set[int] = set()
    while len(microgrids) < 3:  # three keys in three different lanes
        mg = uuid.uuid4()
        if (lane := zlib.crc32(str(mg).encode()) % 4) not in lanes:
            lanes.add(lane)
            microgrids.append(mg)
    sent = []
    for version in range(1, 5):
        for mg in microgrids:
            event = topology_event(version=version)
            event = event.model_copy(update={"payload": event.payload.model_copy(update={"microgrid_id": mg})})
            await producer.send_and_wait(s.topic(TOPIC), event.to_bytes(), key=str(mg).encode())
            sent.append(event)
    async with TopicReader(s, TOPIC) as reader:
        records = await reader.wait_for(lambda rs: len(rs) == len(sent))
    seen: list[tuple[uuid.UUID, int]] = []
    in_flight = peak = 0

    async def slow_effect(message: Message, uow: UnitOfWork) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await uow.conn.execute("SELECT pg_sleep(0.05)")
        await record_effect(message, uow)
        seen.append((message.payload.microgrid_id, message.payload.version))
        in_flight -= 1

    consumer = EventConsumer(group="backbone", handlers={TopologyUpdated: slow_effect}, pool=pool, settings=s,
                             dead_letters=DeadLetterPublisher(producer, s))
    await consumer.process_batch(records)
    assert peak > 1  # the lanes overlapped
    assert await pool.fetchval("SELECT count(*) FROM effects") == len(sent)
    for mg in microgrids:
        assert [v for m, v in seen if m == mg] == [1, 2, 3, 4]
    await consumer.process_batch(records)  # redelivered: every record is a duplicate in its lane
    assert await pool.fetchval("SELECT count(*) FROM effects") == len(sent)
    assert consumer.stats.duplicates == len(sent)


async def test_a_units_events_reach_the_outbox_in_the_order_given(backbone_env) -> None:
    s, pool, _ = backbone_env
    events = [topology_event(version=v) for v in range(1, 8)]
    async with unit_of_work(pool, s) as uow:
        await uow.publish_all(events[:3])
        await uow.publish(events[3])
        await uow.publish_all(events[4:])
    rows = await pool.fetch("SELECT event_id, headers FROM outbox ORDER BY id")
    assert [r["event_id"] for r in rows] == [e.event_id for e in events]
    assert all('"event_type"' in r["headers"] for r in rows)


async def test_consumer_killed_after_transaction_before_commit_has_no_second_effect(backbone_env) -> None:
    s, pool, producer = backbone_env
    event = topology_event()
    await producer.send_and_wait(s.topic(TOPIC), event.to_bytes(), key=b"k")
    # First life: the handler's transaction commits, then the process dies before committing the offset.
    first = consumer_for(s, pool, producer)
    async with TopicReader(s, TOPIC) as reader:
        [record] = await reader.wait_for(lambda rs: len(rs) == 1)
    await first.process(record)
    assert await pool.fetchval("SELECT count(*) FROM effects") == 1
    # Second life: same group, no committed offset, so the record is redelivered.
    second = consumer_for(s, pool, producer)
    broker = await start_consuming(s, second)
    try:
        await eventually(lambda: _async(second.stats.duplicates == 1))
        assert await pool.fetchval("SELECT count(*) FROM effects") == 1
        assert second.stats.processed == 0
    finally:
        await broker.stop()


async def test_malformed_message_is_dead_lettered_and_the_next_one_is_processed(backbone_env) -> None:
    s, pool, producer = backbone_env
    good = topology_event()
    await producer.send_and_wait(s.topic(TOPIC), b"{not json", key=b"k")
    await producer.send_and_wait(s.topic(TOPIC), b'{"event_type": "microgrid.topology_updated"}', key=b"k")
    await producer.send_and_wait(s.topic(TOPIC), good.to_bytes(), key=b"k")
    consumer = consumer_for(s, pool, producer)
    broker = await start_consuming(s, consumer)
    try:
        await eventually(lambda: _async(consumer.stats.processed == 1))
        assert await pool.fetchval("SELECT event_id FROM effects") == good.event_id
        async with TopicReader(s, "dlq.backbone") as dlq:
            letters = await dlq.wait_for(lambda rs: len(rs) >= 2)
        headers = dict(letters[0].headers)
        assert headers["dlq.reason"] == b"INVALID_MESSAGE"
        assert headers["dlq.original_topic"] == s.topic(TOPIC).encode()
        assert headers["dlq.original_offset"] == b"0"
        assert letters[0].value == b"{not json"
    finally:
        await broker.stop()


async def test_handler_failing_with_an_unknown_error_retries_then_dead_letters_without_stalling(backbone_env) -> None:
    s, pool, producer = backbone_env
    s = s.model_copy(update={"consumer_max_attempts": 3, "consumer_backoff_initial_s": 0.01})
    poison, good = topology_event(), topology_event()
    calls: list[uuid.UUID] = []

    async def buggy(message: Message, uow: UnitOfWork) -> None:
        calls.append(message.event_id)
        if message.event_id == poison.event_id:
            raise RuntimeError("a bug in the handler")
        await record_effect(message, uow)

    consumer = consumer_for(s, pool, producer, buggy)
    for e in (poison, good):
        await producer.send_and_wait(s.topic(TOPIC), e.to_bytes(), key=b"k")
    broker = await start_consuming(s, consumer)
    try:
        await eventually(lambda: _async(consumer.stats.processed == 1 and consumer.stats.dead_lettered == 1))
        # one try inside the batch, then three alone
        assert calls.count(poison.event_id) in (3, 4)
        # the failed attempts left nothing behind: no inbox row, so a replay from the DLQ can still apply
        assert await pool.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", str(poison.event_id)) == 0
        async with TopicReader(s, "dlq.backbone") as dlq:
            [letter] = await dlq.wait_for(lambda rs: len(rs) >= 1)
        assert dict(letter.headers)["dlq.reason"] == b"HANDLER_FAILED"
    finally:
        await broker.stop()


async def test_dependency_outage_longer_than_the_retry_budget_dead_letters_nothing(backbone_env) -> None:
    """Issue 15 defect 3: an outage is not the message's fault; wait it out however long, then apply."""
    s, pool, producer = backbone_env
    s = s.model_copy(update={"consumer_max_attempts": 3, "consumer_backoff_initial_s": 0.05,
                             "consumer_backoff_max_s": 0.2})
    event = topology_event()
    outage_until = asyncio.get_running_loop().time() + 3.0  # far past 3 attempts at 0.05-0.2 s

    async def database_away(message: Message, uow: UnitOfWork) -> None:
        if asyncio.get_running_loop().time() < outage_until:
            raise ConnectionRefusedError("connection refused")
        await record_effect(message, uow)

    consumer = consumer_for(s, pool, producer, database_away)
    await producer.send_and_wait(s.topic(TOPIC), event.to_bytes(), key=b"k")
    broker = await start_consuming(s, consumer)
    try:
        await eventually(lambda: _async(consumer.stats.waiting_for_dependency is not None))
        await eventually(lambda: _async(consumer.stats.processed == 1), timeout=15)
        assert consumer.stats.dead_lettered == 0
        assert consumer.stats.waiting_for_dependency is None
        assert await pool.fetchval("SELECT count(*) FROM effects") == 1
    finally:
        await broker.stop()


async def test_a_record_whose_commit_landed_during_the_outage_resumes_consumption(backbone_env) -> None:
    """Found by the fault suite (Postgres crashed): the connection dropped as the commit landed, so the
    retry after the outage found the record a duplicate; consumption must resume all the same, not stay
    paused for good (it wedged every partition of the group)."""
    s, pool, producer = backbone_env
    s = s.model_copy(update={"consumer_backoff_initial_s": 0.05, "consumer_backoff_max_s": 0.2})
    first, second = topology_event(), topology_event()
    dropped: list[uuid.UUID] = []

    async def commit_lands_then_connection_drops(message: Message, uow: UnitOfWork) -> None:
        await record_effect(message, uow)
        if message.event_id == first.event_id and not dropped:
            dropped.append(message.event_id)
            await uow.conn.execute("COMMIT")  # the attempt's commit reaches the server (inbox row and effect)...
            raise ConnectionResetError("connection was closed in the middle of operation")  # ...its answer not

    consumer = consumer_for(s, pool, producer, commit_lands_then_connection_drops)
    await producer.send_and_wait(s.topic(TOPIC), first.to_bytes(), key=b"k")
    broker = await start_consuming(s, consumer)
    try:
        await eventually(lambda: _async(consumer.stats.duplicates == 1))
        await producer.send_and_wait(s.topic(TOPIC), second.to_bytes(), key=b"k")
        await eventually(lambda: _async(consumer.stats.processed == 1), timeout=15)
        assert consumer.stats.waiting_for_dependency is None
        assert await pool.fetchval("SELECT count(*) FROM effects") == 2
    finally:
        await broker.stop()


async def test_data_error_is_dead_lettered_at_once(backbone_env) -> None:
    """A value Postgres refuses (NUL in text) fails the same way every time: no retries, no stall."""
    s, pool, producer = backbone_env
    calls: list[uuid.UUID] = []

    async def stores_text(message: Message, uow: UnitOfWork) -> None:
        calls.append(message.event_id)
        await uow.conn.execute("CREATE TABLE IF NOT EXISTS names (name text)")  # the test schema is ours
        await uow.conn.execute("INSERT INTO names VALUES ($1)", "bad\x00name")

    consumer = consumer_for(s, pool, producer, stores_text)
    event = topology_event()
    await producer.send_and_wait(s.topic(TOPIC), event.to_bytes(), key=b"k")
    broker = await start_consuming(s, consumer)
    try:
        await eventually(lambda: _async(consumer.stats.dead_lettered == 1))
        assert calls == [event.event_id]
        async with TopicReader(s, "dlq.backbone") as dlq:
            [letter] = await dlq.wait_for(lambda rs: len(rs) >= 1)
        assert dict(letter.headers)["dlq.reason"] == b"DATA_REJECTED"
    finally:
        await broker.stop()


async def test_a_batch_with_one_bad_record_applies_the_rest_and_dead_letters_only_it(backbone_env) -> None:
    s, pool, producer = backbone_env
    events = [topology_event() for _ in range(5)]
    bad = events[2]

    async def refuses_one(message: Message, uow: UnitOfWork) -> None:
        if message.event_id == bad.event_id:
            raise PermanentHandlerError("UNKNOWN_MICROGRID", "never seen")
        await record_effect(message, uow)

    for e in [*events, events[0]]:  # and one redelivered id in the same batch
        await producer.send_and_wait(s.topic(TOPIC), e.to_bytes(), key=b"k")
    consumer = consumer_for(s, pool, producer, refuses_one)
    broker = await start_consuming(s, consumer)
    try:
        await eventually(lambda: _async(consumer.stats.processed == 4 and consumer.stats.dead_lettered == 1))
        assert await pool.fetchval("SELECT count(*) FROM effects") == 4
        assert consumer.stats.duplicates == 1
        await eventually(lambda: _async_pending(consumer, lambda n: n == 0), timeout=10)
    finally:
        await broker.stop()


async def test_a_batch_commits_in_one_transaction_and_one_offset_commit(backbone_env) -> None:
    s, pool, producer = backbone_env
    for _ in range(20):
        await producer.send_and_wait(s.topic(TOPIC), topology_event().to_bytes(), key=b"k")
    consumer = consumer_for(s, pool, producer)
    broker = await start_consuming(s, consumer)
    try:
        await eventually(lambda: _async(consumer.stats.processed == 20))
        assert consumer.stats.batches < 20, "records that arrived together were handled together"
        await eventually(lambda: _async_pending(consumer, lambda n: n == 0), timeout=10)
    finally:
        await broker.stop()


async def test_dead_letter_too_big_for_the_broker_is_written_with_an_excerpt(backbone_env) -> None:
    """Issue 15 defect 2: the record is neither skipped nor stuck; its dead letter keeps the payload out."""
    s, pool, _ = backbone_env
    # Try the whole letter first (as a letter just under the limit would be), so the broker's refusal is met.
    s = s.model_copy(update={"dead_letter_max_bytes": 10_000_000})
    big = AIOKafkaProducer(**client_options(s), max_request_size=1_048_576, acks="all")
    await big.start()
    try:
        # Just fits the broker's 1 MiB as a record; with the dead-letter headers added it no longer does.
        await big.send_and_wait(s.topic(TOPIC), b"{" + b"x" * 1_046_000, key=b"k",
                                headers=[("padding", b"p" * 2_200)])
        good = topology_event()
        await big.send_and_wait(s.topic(TOPIC), good.to_bytes(), key=b"k")
    finally:
        await big.stop()
    producer = create_producer(s, "backbone-dlq")
    await producer.start()
    consumer = consumer_for(s, pool, producer)
    broker = await start_consuming(s, consumer)
    try:
        await eventually(lambda: _async(consumer.stats.processed == 1 and consumer.stats.dead_lettered == 1))
        async with TopicReader(s, "dlq.backbone") as dlq:
            [letter] = await dlq.wait_for(lambda rs: len(rs) >= 1)
        headers = dict(letter.headers)
        assert headers["dlq.reason"] == b"INVALID_MESSAGE"
        assert headers["dlq.excerpt"] == b"true"
        assert headers["dlq.original_offset"] == b"0"
        assert int(headers["dlq.original_size"]) == 1_046_001
        assert len(letter.value) <= s.dead_letter_excerpt_bytes
        await eventually(lambda: _async_pending(consumer, lambda n: n == 0), timeout=10)
    finally:
        await broker.stop()
        await producer.stop()


class _BrokerAwayFor:
    """The real dead-letter publisher behind a fault: the broker refuses the first `failures` writes."""

    def __init__(self, inner: DeadLetterPublisher, failures: int) -> None:
        self._inner = inner
        self.failures_left = failures

    async def publish(self, letter) -> None:
        if self.failures_left > 0:
            self.failures_left -= 1
            raise KafkaConnectionError("broker down")
        await self._inner.publish(letter)


async def test_consumer_never_commits_past_a_record_whose_dead_letter_cannot_be_written(backbone_env) -> None:
    """Issue 15 defect 2, broker down during a dead letter: hold the offset, retry, then move on."""
    s, pool, producer = backbone_env
    s = s.model_copy(update={"consumer_backoff_initial_s": 0.2, "consumer_backoff_max_s": 0.4})
    publisher = _BrokerAwayFor(DeadLetterPublisher(producer, s), failures=8)
    await producer.send_and_wait(s.topic(TOPIC), b"{not json", key=b"k")
    consumer = EventConsumer(group="backbone", handlers={TopologyUpdated: record_effect}, pool=pool, settings=s,
                             dead_letters=publisher)  # type: ignore[arg-type]
    broker = await start_consuming(s, consumer)
    try:
        await eventually(lambda: _async(publisher.failures_left < 6))
        assert await _committed(s, consumer) is None, "nothing committed while the dead letter is unwritten"
        assert consumer.stats.waiting_for_dependency is not None
        await eventually(lambda: _async(consumer.stats.dead_lettered == 1), timeout=15)
        await eventually(lambda: _async_pending(consumer, lambda n: n == 0), timeout=10)
    finally:
        await broker.stop()


async def _committed(s: PlatformSettings, consumer: EventConsumer) -> int | None:
    from aiokafka import TopicPartition

    inner = consumer._consumer  # noqa: SLF001 - what the group has committed, asked of the broker
    assert inner is not None
    offsets = [await inner.committed(TopicPartition(s.topic(TOPIC), p)) for p in range(3)]
    done = [o for o in offsets if o]
    return max(done) if done else None


async def _async(value):
    return value


async def test_pending_records_shows_a_stuck_handler_and_clears_when_it_moves_on(backbone_env) -> None:
    """What readiness reads: records past the committed offset, asked of the broker, not a cached watermark."""
    s, pool, producer = backbone_env
    release = asyncio.Event()

    async def slow(message: Message, uow: UnitOfWork) -> None:
        await release.wait()
        await record_effect(message, uow)

    consumer = EventConsumer(
        group="backbone", handlers={TopologyUpdated: slow}, pool=pool, settings=s,
        dead_letters=DeadLetterPublisher(producer, s),
    )
    for _ in range(2):
        await producer.send_and_wait(s.topic(TOPIC), topology_event().to_bytes(), key=b"k")
    broker = await start_consuming(s, consumer)
    try:
        await eventually(lambda: _async_pending(consumer, lambda n: n == 2))
        assert consumer.stats.processed == 0, "the handler is still holding the first record"
        release.set()
        await eventually(lambda: _async(consumer.stats.processed == 2))
        await eventually(lambda: _async_pending(consumer, lambda n: n == 0), timeout=10)
    finally:
        release.set()
        await broker.stop()


async def _async_pending(consumer: EventConsumer, ok) -> bool:
    return ok(await consumer.pending_records())
