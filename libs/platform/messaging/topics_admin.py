"""Create the registry's topics (and one dead-letter topic per consumer group) explicitly."""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from contracts.topics import DEAD_LETTER_PARTITIONS, SERVICES, TOPICS, dead_letter_topic
from libs.platform.messaging.kafka import client_options
from libs.platform.settings import PlatformSettings

log = logging.getLogger(__name__)
# A principal without CREATE on the cluster (a service, under ACLs) is refused with these codes.
_NOT_AUTHORIZED = {29, 31}  # TOPIC_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED

CONSUMER_GROUPS = SERVICES  # one consumer group per service


def wanted_topics(settings: PlatformSettings) -> dict[str, int]:
    wanted = {settings.topic(t.name): t.partitions for t in TOPICS}
    for group in CONSUMER_GROUPS:
        wanted[settings.topic(dead_letter_topic(group))] = DEAD_LETTER_PARTITIONS
    return wanted


async def ensure_topics(settings: PlatformSettings, extra: dict[str, int] | None = None) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left as they are.

    Under ACLs only the admin may create topics (the stack and the test fixtures provision them): a
    service sees only the topics it may use, and its refused creations are logged, not raised.
    """
    wanted = wanted_topics(settings) | (extra or {})
    admin = AIOKafkaAdminClient(**client_options(settings), client_id="mgrid-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, num_partitions=p, replication_factor=settings.kafka_replication_factor)
                   for name, p in wanted.items() if name not in existing]
        if not missing:
            return []
        response = await admin.create_topics(missing)
        errors = {topic: code for topic, code, *_ in response.topic_errors if code}
        refused = sorted(t for t, code in errors.items() if code in _NOT_AUTHORIZED)
        if refused:
            log.info("not allowed to create %d topics (the admin provisions them): %s", len(refused), refused[:3])
        created = [t.name for t in missing if t.name not in errors]
        if created:
            await _wait_for_leaders(admin, created)
        return created
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


async def provision(admin_settings: PlatformSettings) -> None:
    """As an admin: the registry's topics for `admin_settings.topic_prefix`, and, on a broker with
    authentication, the ACLs generated from the registry for them (libs/platform/messaging/acls)."""
    from libs.platform.messaging.acls import ensure_acls

    await ensure_topics(admin_settings)
    if admin_settings.kafka_security_protocol != "PLAINTEXT":
        await ensure_acls(admin_settings, admin_settings.topic_prefix)


async def retire(admin_settings: PlatformSettings, prefix: str) -> int:
    """As an admin: delete every topic named `prefix`... and, on a broker with authentication, the ACLs
    on them and on the prefix's groups (a run gives back what `provision` made it). Returns the topics."""
    from libs.platform.messaging.acls import drop_acls

    if not prefix:
        raise ValueError("retire: the unprefixed topics are the deployment's own; give a prefix")
    admin = AIOKafkaAdminClient(**client_options(admin_settings), client_id="mgrid-admin")
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(prefix)]
        for start in range(0, len(doomed), 100):
            await admin.delete_topics(doomed[start:start + 100])
    finally:
        await admin.close()
    if admin_settings.kafka_security_protocol != "PLAINTEXT":
        await drop_acls(admin_settings, prefix)
    return len(doomed)


if __name__ == "__main__":  # docker-compose's kafka-init: `python -m libs.platform.messaging.topics_admin`
    asyncio.run(provision(PlatformSettings()))
