"""`mgrid stack up --brokers 3`: a three-node KRaft cluster with authentication, RF 3 and min ISR 2,
and a service that works on it. Runs with every test (three JVMs take a minute and ~1.5 GB);
MGRID_TEST_SKIP_CLUSTER=1 leaves it out of a quick local run.

It runs a second, private stack (its own dir and free ports, `simulator.chaos_stack.OwnStack`), so the
stack the other tests use is untouched.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from libs.platform.messaging.kafka import client_options
from libs.platform.settings import PlatformSettings
from services.topology.bootstrap import DEFINITION as TOPOLOGY
from simulator.chaos_stack import OwnStack
from tests.support_services import running_service

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.environ.get("MGRID_TEST_SKIP_CLUSTER") == "1", reason="MGRID_TEST_SKIP_CLUSTER=1"),
]

@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformSettings]:
    # `mgrid stack up --brokers 3` in a directory of its own, on a block of free ports below the kernel's
    # ephemeral range: fixed ports there (39092...) were once taken as a client connection's source port
    # during a busy run, and a broker could not bind.
    stack = OwnStack(tmp_path_factory.mktemp("cluster-stack"), brokers=3)
    try:
        stack.up()
        yield stack.settings()
    finally:
        stack.down()


async def test_three_brokers_with_replicated_topics(cluster: PlatformSettings) -> None:
    assert len(cluster.kafka_bootstrap.split(",")) == 3 and cluster.kafka_replication_factor == 3
    admin = AIOKafkaAdminClient(**client_options(cluster))
    await admin.start()
    try:
        described = await admin.describe_cluster()
        topics = await admin.describe_topics(["microgrid.node_limit_updated"])
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")])
    finally:
        await admin.close()
    assert sorted(b["node_id"] for b in described["brokers"]) == [1, 2, 3]
    assert {len(p["replicas"]) for p in topics[0]["partitions"]} == {3}
    broker_config = {name: value for name, value, *_ in configs[0].resources[0][4]}
    assert broker_config["min.insync.replicas"] == "2"


async def test_a_service_works_on_the_cluster(cluster: PlatformSettings) -> None:
    own = cluster.model_copy(update={"topic_prefix": "cluster."})
    async with running_service(TOPOLOGY, own) as svc:
        ready = await svc.client.get("/ready")
        assert ready.status_code == 200, ready.text
        assert svc.runtime.settings.kafka_sasl_username == "topology"
