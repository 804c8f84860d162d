"""The topology service, wired: Microgrid, nodes, limits, control points and capability status (docs/topology.md)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from libs.platform.runtime import ServiceDefinition
from services.topology.handlers import HANDLERS
from services.topology.routes import router
from services.topology.settings import TopologySettings


def routers() -> list[APIRouter]:
    return [router]


DEFINITION = ServiceDefinition(
    name="topology",
    migrations=Path(__file__).parent / "migrations",
    append_only_tables=("capability_status_event",),
    handlers=HANDLERS,
    routers=routers,
    settings_type=TopologySettings,
)
