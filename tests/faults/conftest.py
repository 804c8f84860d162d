"""The four services as processes for the fault suite, once per session, on a private prefix and ports."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.platform.messaging.topics_admin import provision
from libs.platform.settings import PlatformSettings
from simulator.chaos import private_services
from simulator.chaos_stack import OwnStack
from simulator.service_processes import ServiceProcesses
from simulator.transport import SimulatorSettings

Services = tuple[ServiceProcesses, SimulatorSettings]


def _services(run_dir: Path, endpoints: PlatformSettings) -> Iterator[Services]:
    """The four services on `endpoints`, with their topics and ACLs provisioned (as the admin: services may
    not create them); stopped at the end."""
    processes, settings = private_services(run_dir, endpoints)
    asyncio.run(provision(settings))
    try:
        processes.start()
        yield processes, settings
    finally:
        processes.stop()


def _stack(run_dir: Path, brokers: int) -> Iterator[OwnStack]:
    stack = OwnStack(run_dir, brokers=brokers)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="session")
def chaos_services(stack_endpoints: PlatformSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    yield from _services(tmp_path_factory.mktemp("chaos"), stack_endpoints)


@pytest.fixture(scope="session")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnStack]:
    """Kafka, Postgres and Redis of the suite's own, on free ports: the faults kill and stop these, never
    the shared stack. Stopped and deleted at the end."""
    yield from _stack(tmp_path_factory.mktemp("chaos-stack"), brokers=1)


@pytest.fixture(scope="session")
def own_stack_services(own_stack: OwnStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    yield from _services(tmp_path_factory.mktemp("chaos-own"), own_stack.settings())


# Module-scoped, unlike the others: only the cluster cases use three more brokers, and they should not
# stay up (memory, a CPU's share) through the rest of the session.
@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnStack]:
    """Three Kafka brokers (RF 3, min ISR 2), Postgres and Redis of the suite's own (the cluster cases)."""
    yield from _stack(tmp_path_factory.mktemp("chaos-cluster"), brokers=3)


@pytest.fixture(scope="module")
def own_cluster_services(own_cluster: OwnStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    yield from _services(tmp_path_factory.mktemp("chaos-cluster-services"), own_cluster.settings())
