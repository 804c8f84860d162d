"""The broker authenticates every client and authorizes by the ACLs generated from the topic registry.

What issue 14 found: an anonymous client published a forged `microgrid.node_limit_updated` (1 GW) and
balancing stored it. Here an anonymous client, a wrong password and every principal but the topic's
owner are refused, and only the admin creates or deletes topics.
"""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAuthorizationFailedError

from libs.platform import stack_credentials as sc
from libs.platform.messaging.acls import acl_bindings
from libs.platform.messaging.kafka import client_options
from libs.platform.messaging.topics_admin import provision
from libs.platform.settings import PlatformSettings
from tests.support import eventually

pytestmark = pytest.mark.integration

NODE_LIMIT = "microgrid.node_limit_updated"
FORGED = b'{"forged": "1 GW"}'


@pytest.fixture(scope="module")
async def settings(settings: PlatformSettings) -> PlatformSettings:
    """Topics of their own (forged records must not reach the other tests' consumers), provisioned
    with their ACLs like any prefix."""
    own = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}acl."})
    await provision(own)
    return own


@pytest.fixture(scope="module")
def credentials(settings: PlatformSettings) -> sc.Credentials:
    if settings.kafka_security_protocol == "PLAINTEXT":
        pytest.skip("the broker under test has no authentication (not the local stack)")
    found = sc.load()
    assert found is not None
    return found


def as_principal(settings: PlatformSettings, principal: str, password: str | None = None) -> PlatformSettings:
    return settings.model_copy(update={"kafka_sasl_username": principal, "kafka_sasl_password": password})


async def produce(settings: PlatformSettings, topic: str) -> None:
    producer = AIOKafkaProducer(
        **client_options(settings), acks="all", enable_idempotence=True, request_timeout_ms=10_000
    )
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic(topic), FORGED, key=b"mg")
    finally:
        await producer.stop()


def test_only_the_owner_may_write_node_limits_in_the_generated_acls() -> None:
    writers = {b.principal for b in acl_bindings() if b.name == NODE_LIMIT and b.operation.name == "WRITE"}
    assert writers == {"topology"}
    readers = {b.principal for b in acl_bindings() if b.name == NODE_LIMIT and b.operation.name == "READ"}
    assert readers == {"balancing", "simulator"}


async def test_an_anonymous_client_cannot_connect(settings: PlatformSettings, credentials: sc.Credentials) -> None:
    anonymous = settings.model_copy(update={"kafka_security_protocol": "PLAINTEXT"})
    with pytest.raises(KafkaConnectionError):
        await produce(anonymous, NODE_LIMIT)


async def test_a_wrong_password_cannot_connect(settings: PlatformSettings, credentials: sc.Credentials) -> None:
    with pytest.raises(KafkaConnectionError):
        await produce(as_principal(settings, "topology", "not-the-password"), NODE_LIMIT)


@pytest.mark.parametrize(
    "principal", ["balancing", "envelope_lifecycle", "compatibility_adapter", "legacy", "simulator"]
)
async def test_no_principal_but_the_owner_can_produce_node_limits(
    settings: PlatformSettings, credentials: sc.Credentials, principal: str
) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(as_principal(settings, principal, credentials.kafka[principal]), NODE_LIMIT)


async def test_the_owner_can_produce_node_limits(settings: PlatformSettings, credentials: sc.Credentials) -> None:
    await produce(as_principal(settings, "topology", credentials.kafka["topology"]), NODE_LIMIT)


@pytest.mark.parametrize("principal", [*sc.SERVICES, "simulator", "legacy"])
async def test_only_the_admin_creates_or_deletes_topics(
    settings: PlatformSettings, credentials: sc.Credentials, principal: str
) -> None:
    own = as_principal(settings, principal, credentials.kafka[principal])
    admin = AIOKafkaAdminClient(**client_options(own))
    await admin.start()
    try:
        name = settings.topic(f"intruder.{uuid.uuid4().hex[:6]}")
        created = await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
        assert [code for _, code, *_ in created.topic_errors] in ([29], [31])  # topic/cluster authorization
        deleted = await admin.delete_topics([settings.topic(NODE_LIMIT)])
        assert [code for _, code in deleted.topic_error_codes] == [29]
    except KafkaError as refused:  # some versions raise instead of returning the code
        assert "uthorization" in repr(refused)
    finally:
        await admin.close()
    visible = await _admin_topics(settings)
    assert name not in visible and settings.topic(NODE_LIMIT) in visible


async def _admin_topics(settings: PlatformSettings) -> set[str]:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def _acl_names(settings: PlatformSettings, prefix: str) -> set[str]:
    from libs.platform.messaging.acls import _all_acls  # noqa: PLC2701 - the test reads what the broker holds

    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        return {a.resource_name for a in await _all_acls(admin) if a.resource_name.startswith(prefix)}
    finally:
        await admin.close()


async def _acls_become(settings: PlatformSettings, prefix: str, expected: set[str]) -> None:
    """Polls until the broker lists exactly ``expected`` for ``prefix`` (ACL changes reach the broker's
    metadata cache through the controller's log, a moment after the admin call returns)."""

    async def listed() -> bool:
        return await _acl_names(settings, prefix) == expected

    await eventually(listed, timeout=15)


async def test_a_retired_prefix_gives_back_its_topics_and_acls_and_no_other(
    settings: PlatformSettings, credentials: sc.Credentials
) -> None:
    """A run's ACLs go with its topics: left behind, a shared broker gathers thousands of them."""
    from libs.platform.messaging.topics_admin import retire

    gone = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}gone{uuid.uuid4().hex[:4]}."})
    kept = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}kept{uuid.uuid4().hex[:4]}."})
    await provision(gone)
    await provision(kept)
    await _acls_become(settings, gone.topic_prefix, {b.name for b in acl_bindings(gone.topic_prefix)})
    topics = await _topics_named(settings, gone.topic_prefix)
    assert topics

    assert await retire(settings, gone.topic_prefix) == len(topics)
    # Kafka applies both through its metadata log: the broker answering may list them for a moment.
    await _acls_become(settings, gone.topic_prefix, set())

    async def topics_gone() -> bool:
        return not await _topics_named(settings, gone.topic_prefix)

    await eventually(topics_gone, timeout=15)
    assert await _acl_names(settings, kept.topic_prefix) == {b.name for b in acl_bindings(kept.topic_prefix)}
    await retire(settings, kept.topic_prefix)


async def test_pruning_drops_the_acls_of_prefixes_without_topics_only(
    settings: PlatformSettings, credentials: sc.Credentials
) -> None:
    """A run that ended without giving its ACLs back (killed, or before runs did): `mgrid stack up` prunes."""
    from libs.platform.messaging.acls import ensure_acls, prune_orphaned_acls

    orphan = f"{settings.topic_prefix}orphan{uuid.uuid4().hex[:4]}."
    await ensure_acls(settings, orphan)  # ACLs, no topics
    assert await _acl_names(settings, orphan)
    before = await _acl_names(settings, settings.topic_prefix)

    assert await prune_orphaned_acls(settings) >= len(acl_bindings(orphan))
    await _acls_become(settings, orphan, set())
    # This module's prefix has its topics: its ACLs stay, and so does the deployment's own set.
    assert await _acl_names(settings, settings.topic_prefix) == before - {b.name for b in acl_bindings(orphan)}
    assert {b.name for b in acl_bindings()} <= await _acl_names(settings, "")


async def _topics_named(settings: PlatformSettings, prefix: str) -> set[str]:
    return {t for t in await _admin_topics(settings) if t.startswith(prefix)}
