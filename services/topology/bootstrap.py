"""The topology service, wired: Microgrid, nodes, limits, control points and capability status (docs/topology.md)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from libs.platform.clock import SystemClock
from libs.platform.runtime import ServiceContext, ServiceDefinition
from services.topology.handlers import handlers
from services.topology.routes import router
from services.topology.settings import TopologySettings


async def on_start(ctx: ServiceContext) -> None:
    # Tests may put a ManualClock here before requests arrive; the service never reads time elsewhere.
    ctx.extras.setdefault("clock", SystemClock())
    settings = ctx.settings
    if not isinstance(settings, TopologySettings):  # started with the platform settings only (tests)
        settings = TopologySettings(**settings.model_dump())
    ctx.extras["topology_settings"] = settings


def routers() -> list[APIRouter]:
    return [router]


DEFINITION = ServiceDefinition(
    name="topology",
    migrations=Path(__file__).parent / "migrations",
    append_only_tables=("capability_status_event",),
    handlers=handlers,
    routers=routers,
    on_start=on_start,
    settings_factory=TopologySettings,
)
