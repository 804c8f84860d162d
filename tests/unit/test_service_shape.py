"""Every service has the one shape (docs/service-shape.md): the same files, handlers keyed by message type."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from contracts.base import Message
from tools.run_cli import SERVICES

ROOT = Path(__file__).resolve().parents[2]
SHAPE = ("bootstrap.py", "handlers.py", "routes.py", "service.py", "views.py", "settings.py", "adapters", "migrations")


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_same_files(service: str) -> None:
    missing = [name for name in SHAPE if not (ROOT / "services" / service / name).exists()]
    assert missing == []


@pytest.mark.parametrize("service", SERVICES)
def test_handlers_are_declared_by_message_type(service: str) -> None:
    declared = importlib.import_module(f"services.{service}.handlers").HANDLERS
    wired = importlib.import_module(f"services.{service}.bootstrap").DEFINITION.handlers
    assert declared and all(isinstance(m, type) and issubclass(m, Message) for m in declared)
    assert set(declared) <= set(wired)  # balancing's console adds its own bookkeeping and one event type
