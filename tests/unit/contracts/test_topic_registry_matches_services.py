"""The topic registry says who consumes what (AsyncAPI, the simulator's settle barrier); it must be
exactly what each service's consumer subscribes to."""

from __future__ import annotations

import importlib

import pytest

from contracts.topics import TOPICS
from libs.platform.clock import SystemClock
from libs.platform.runtime import ServiceContext
from tools.run_cli import SERVICES


@pytest.mark.parametrize("service", SERVICES)
def test_registry_consumers_are_the_services_handlers(service: str) -> None:
    definition = importlib.import_module(f"services.{service}.bootstrap").DEFINITION
    ctx = ServiceContext(
        name=service, settings=definition.settings_factory(), pool=None, redis=None,  # type: ignore[arg-type]
        extras={"clock": SystemClock()},
    )
    handled = set(definition.handlers(ctx))
    registered = {t.name for t in TOPICS if service in t.consumers}
    assert handled == registered
