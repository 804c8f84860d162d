"""The baseline every figure is printed beside: one bare Kafka hop on the same broker, in the same run.

aiokafka producer with acks=all and idempotence (as the services' relays publish), a consumer reading
the same one-partition topic: one produce -> consume at a time (p50), and a burst (messages/s from
the first send to the last record read back).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from libs.platform.messaging.kafka import client_options
from libs.platform.settings import PlatformSettings


@dataclass(frozen=True)
class BareHop:
    one_at_a_time_p50_ms: float
    one_at_a_time_p99_ms: float
    burst_msgs_per_s: float
    burst_messages: int
    message_bytes: int


async def measure(settings: PlatformSettings, topic: str, *, samples: int = 200, burst: int = 20_000,
                  message_bytes: int = 600) -> BareHop:
    admin = AIOKafkaAdminClient(**client_options(settings), client_id="fleet-bench-bare-hop")
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True, linger_ms=0,
                                client_id="fleet-bench-bare-hop")
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=100, client_id="fleet-bench-bare-hop")
    await producer.start()
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        for _ in range(50):  # the topic's leader may take a moment to be known after creation
            await consumer._client.force_metadata_update()  # noqa: SLF001 - as simulator.transport does
            if consumer.partitions_for_topic(topic):
                break
            await asyncio.sleep(0.1)
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        await consumer.position(tp)
        value = b"x" * message_bytes
        await producer.send_and_wait(topic, value, key=b"warm")
        await consumer.getone()

        hops = []
        for i in range(samples):
            t = time.perf_counter()
            await producer.send_and_wait(topic, value, key=str(i).encode())
            await consumer.getone()
            hops.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        sent = [await producer.send(topic, value, key=str(i).encode()) for i in range(burst)]
        seen = 0
        while seen < burst:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=5000)
            seen += sum(len(records) for records in batch.values())
        elapsed = time.perf_counter() - t0
        await asyncio.gather(*sent)
    finally:
        await consumer.stop()
        await producer.stop()
    hops.sort()
    return BareHop(
        one_at_a_time_p50_ms=statistics.median(hops) * 1000,
        one_at_a_time_p99_ms=hops[min(len(hops) - 1, round(0.99 * (len(hops) - 1)))] * 1000,
        burst_msgs_per_s=burst / elapsed,
        burst_messages=burst,
        message_bytes=message_bytes,
    )


async def delete_topic(settings: PlatformSettings, topic: str) -> None:
    admin = AIOKafkaAdminClient(**client_options(settings), client_id="fleet-bench-bare-hop")
    await admin.start()
    try:
        await admin.delete_topics([topic])
    except Exception:  # noqa: BLE001 - best effort clean-up of a benchmark topic
        pass
    finally:
        await admin.close()
