"""`mgrid stack up --brokers 3`: a three-node KRaft cluster with authentication, RF 3 and min ISR 2,
and a service that works on it. Runs with every test (three JVMs take a minute and ~1.5 GB);
MGRID_TEST_SKIP_CLUSTER=1 leaves it out of a quick local run.

It runs a second, private stack (its own dir and ports), so the stack the other tests use is untouched.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from libs.platform.messaging.kafka import client_options
from libs.platform.settings import REPO_ROOT, PlatformSettings
from services.topology.bootstrap import DEFINITION as TOPOLOGY
from tests.support_services import running_service

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.environ.get("MGRID_TEST_SKIP_CLUSTER") == "1", reason="MGRID_TEST_SKIP_CLUSTER=1"),
]

# Ports apart from the default stack (59092-59093) and from a moved one (49092-...).
CLUSTER_ENV = {
    "MGRID_STACK_KAFKA_PORT": os.environ.get("MGRID_TEST_CLUSTER_KAFKA_PORT", "39092"),
    "MGRID_STACK_POSTGRES_PORT": os.environ.get("MGRID_TEST_CLUSTER_POSTGRES_PORT", "35432"),
    "MGRID_STACK_REDIS_PORT": os.environ.get("MGRID_TEST_CLUSTER_REDIS_PORT", "36379"),
}


def _mgrid(stack_dir: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MGRID_")} | CLUSTER_ENV
    env["MGRID_STACK_DIR"] = str(stack_dir)
    result = subprocess.run([sys.executable, "-m", "tools.cli", *args], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformSettings]:
    stack_dir = tmp_path_factory.mktemp("cluster-stack")
    try:
        _mgrid(stack_dir, "stack", "up", "--brokers", "3")
        env = dict(
            line.removeprefix("export ").split("=", 1)
            for line in _mgrid(stack_dir, "stack", "env").splitlines()
        )
        values = {k.removeprefix("MGRID_").lower(): shlex.split(v)[0] for k, v in env.items()}
        yield PlatformSettings(**values)
    finally:
        _mgrid(stack_dir, "stack", "down", "--purge")


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
