"""The balancing service, wired: read-model and rebalance handlers, routes, the waiting-request sweeper (port 8103)."""

from __future__ import annotations

from pathlib import Path

from libs.platform.runtime import ServiceDefinition
from services.balancing.adapters.state_cache import MicrogridStateCache
from services.balancing.console import handlers as console_handlers
from services.balancing.console import routes as console_routes
from services.balancing.handlers import HANDLERS
from services.balancing.routes import routers
from services.balancing.service import sweep_waiting_requests_forever
from services.balancing.settings import BalancingSettings

NAME = "balancing"

DEFINITION = ServiceDefinition(
    name=NAME,
    migrations=Path(__file__).parent / "migrations",
    # The operator console is a role balancing takes on (docs/console.md).
    append_only_tables=("cycles", "cycle_input_parts"),
    handlers=console_handlers.with_console(HANDLERS),
    routers=lambda: [*routers(), *console_routes.routers()],
    background=lambda ctx: [lambda: sweep_waiting_requests_forever(ctx)],
    settings_type=BalancingSettings,
    # Each process keeps its microgrids' read models in memory between messages (adapters/state_cache.py).
    memory=MicrogridStateCache,
)
