"""The four services as real processes, once per test session, on a private topic prefix and ports.

They run exactly as `mgrid demo` runs them (simulator.service_processes), against the real stack, so
the scenario library exercises the system a user gets. A unique MGRID_TOPIC_PREFIX (topics, consumer
groups and Postgres schemas) and free ports keep the session apart from any other run or demo.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest

from libs.platform.messaging.topics_admin import provision
from libs.platform.settings import PlatformSettings
from libs.platform.stack_credentials import KAFKA_SIMULATOR, as_kafka_principal
from simulator.report import write_html
from simulator.runner import RunResult
from simulator.service_processes import ServiceProcesses
from simulator.transport import SimulatorSettings
from tools.run_cli import SERVICES

# Faster hops than production defaults, so a cycle's round trip stays well under a second on 2 cores.
SERVICE_ENV = {"MGRID_OUTBOX_POLL_INTERVAL_S": "0.1", "MGRID_CONSUMER_BACKOFF_INITIAL_S": "0.05"}


_CONNECTION_FIELDS = {
    "kafka_bootstrap", "postgres_dsn", "postgres_owner_dsn", "redis_url", "kafka_security_protocol",
    "kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password", "kafka_replication_factor",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def system_settings(stack_endpoints: PlatformSettings, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[SimulatorSettings]:
    prefix = f"sys{uuid.uuid4().hex[:8]}."
    ports = {service: _free_port() for service in SERVICES}
    # `mgrid run` steps each service down from these tooling credentials to its own role and principal.
    env = {
        "MGRID_KAFKA_BOOTSTRAP": stack_endpoints.kafka_bootstrap,
        "MGRID_POSTGRES_DSN": stack_endpoints.postgres_dsn,
        "MGRID_REDIS_URL": stack_endpoints.redis_url,
        "MGRID_TOPIC_PREFIX": prefix,
        **SERVICE_ENV,
    }
    processes = ServiceProcesses(run_dir=tmp_path_factory.mktemp("services"), ports=ports, env=env)
    settings = SimulatorSettings(
        **stack_endpoints.model_dump(include=_CONNECTION_FIELDS),
        topic_prefix=prefix,
        **{f"{service}_url": processes.url(service) for service in SERVICES},
    )
    # Topics and their ACLs, as the admin, before the services start (they may not create topics).
    import asyncio

    asyncio.run(provision(settings))
    # The simulator then plays the depot's outside actors as its own principal, within its ACLs.
    settings = as_kafka_principal(settings, KAFKA_SIMULATOR)
    try:
        processes.start()
        yield settings
    finally:
        processes.stop()
        from tests.support import delete_topics_with_prefix

        asyncio.run(delete_topics_with_prefix(stack_endpoints, prefix))


@pytest.fixture(scope="session")
def system_results() -> Iterator[list[RunResult]]:
    """Every scenario's result, written as one HTML report (reports/, git-ignored) at the end."""
    results: list[RunResult] = []
    yield results
    if results:
        path = write_html(results, name="system-tests")
        print(f"\nsimulator report: {path}")
