"""Create the registry's topics (and one dead-letter topic per consumer group) explicitly."""

from __future__ import annotations

import asyncio
import time

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from contracts.topics import DEAD_LETTER_PARTITIONS, TOPICS, dead_letter_topic
from libs.platform.settings import PlatformSettings

CONSUMER_GROUPS = ("topology", "envelope_lifecycle", "balancing", "compatibility_adapter")


def wanted_topics(settings: PlatformSettings) -> dict[str, int]:
    wanted = {settings.topic(t.name): t.partitions for t in TOPICS}
    for group in CONSUMER_GROUPS:
        wanted[settings.topic(dead_letter_topic(group))] = DEAD_LETTER_PARTITIONS
    return wanted


async def ensure_topics(settings: PlatformSettings, extra: dict[str, int] | None = None) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left as they are."""
    wanted = wanted_topics(settings) | (extra or {})
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="mgrid-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, num_partitions=p, replication_factor=1) for name, p in wanted.items()
                   if name not in existing]
        if missing:
            await admin.create_topics(missing)
            await _wait_for_leaders(admin, [t.name for t in missing])
        return [t.name for t in missing]
    finally:
        await admin.close()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 30.0) -> None:
    """New partitions answer NotLeaderForPartition until a leader is elected: wait for every leader."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = await admin.describe_topics(names)
        if all(
            not t.get("error_code") and t["partitions"] and all(p.get("leader", -1) >= 0 for p in t["partitions"])
            for t in described
        ):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics without partition leaders after {timeout_s}s: {names}")
        await asyncio.sleep(0.1)
