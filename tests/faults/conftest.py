"""The four services as processes for the fault suite, once per session, on a private prefix and ports."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from libs.platform.messaging.topics_admin import provision
from libs.platform.settings import PlatformSettings
from simulator.chaos import private_services
from simulator.chaos_stack import OwnStack
from simulator.service_processes import ServiceProcesses
from simulator.transport import SimulatorSettings


@pytest.fixture(scope="session")
def chaos_services(
    stack_endpoints: PlatformSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServiceProcesses, SimulatorSettings]]:
    processes, settings = private_services(tmp_path_factory.mktemp("chaos"), stack_endpoints)
    asyncio.run(provision(settings))  # topics and their ACLs, as the admin: services may not create them
    try:
        processes.start()
        yield processes, settings
    finally:
        processes.stop()


@pytest.fixture(scope="session")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnStack]:
    """Kafka, Postgres and Redis of the suite's own, on free ports: the faults kill and stop these, never
    the shared stack. Stopped and deleted at the end."""
    stack = OwnStack(tmp_path_factory.mktemp("chaos-stack"))
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="session")
def own_stack_services(
    own_stack: OwnStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServiceProcesses, SimulatorSettings]]:
    processes, settings = private_services(tmp_path_factory.mktemp("chaos-own"), own_stack.settings())
    asyncio.run(provision(settings))
    try:
        processes.start()
        yield processes, settings
    finally:
        processes.stop()


@pytest.fixture(scope="session")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnStack]:
    """Three Kafka brokers (RF 3, min ISR 2), Postgres and Redis of the suite's own (opt-in cases)."""
    stack = OwnStack(tmp_path_factory.mktemp("chaos-cluster"), brokers=3)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="session")
def own_cluster_services(
    own_cluster: OwnStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServiceProcesses, SimulatorSettings]]:
    processes, settings = private_services(tmp_path_factory.mktemp("chaos-cluster-services"), own_cluster.settings())
    asyncio.run(provision(settings))
    try:
        processes.start()
        yield processes, settings
    finally:
        processes.stop()
