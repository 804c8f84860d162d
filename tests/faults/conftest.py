"""The four services as processes for the fault suite, once per session, on a private prefix and ports."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from libs.platform.messaging.topics_admin import provision
from libs.platform.settings import PlatformSettings
from simulator.chaos import private_services
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
