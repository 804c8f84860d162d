"""The topic registry says who consumes what (AsyncAPI, the simulator's settle barrier); it must be
exactly what each service's consumer subscribes to."""

from __future__ import annotations

import importlib

import pytest

from contracts.topics import TOPICS, subscribed_topic
from tools.run_cli import SERVICES


@pytest.mark.parametrize("service", SERVICES)
def test_registry_consumers_are_the_services_handlers(service: str) -> None:
    definition = importlib.import_module(f"services.{service}.bootstrap").DEFINITION
    handled = {subscribed_topic(message).name for message in definition.handlers}  # type: ignore[union-attr]
    registered = {t.name for t in TOPICS if service in t.consumers}
    assert handled == registered


def test_one_topic_per_message_type() -> None:
    """Handlers are keyed by message type, so no model may travel on two topics."""
    assert len({t.message for t in TOPICS}) == len(TOPICS)
