"""The balancing service, wired: read-model and rebalance handlers, routes, the waiting-request sweeper.

`build_definition(clock)` runs the very same service on another clock (tests, benchmarks);
`DEFINITION` is the production wiring on the SystemClock (`mgrid run balancing`, port 8103).
"""

from __future__ import annotations

from pathlib import Path

from libs.platform.clock import Clock, SystemClock
from libs.platform.runtime import ServiceContext, ServiceDefinition
from services.balancing.console import handlers as console_handlers
from services.balancing.console import routes as console_routes
from services.balancing.handlers import handlers
from services.balancing.routes import routers
from services.balancing.service import sweep_waiting_requests_forever
from services.balancing.settings import BalancingSettings

NAME = "balancing"


def build_definition(clock: Clock | None = None) -> ServiceDefinition:
    async def on_start(ctx: ServiceContext) -> None:
        ctx.extras["clock"] = clock or SystemClock()

    return ServiceDefinition(
        name=NAME,
        migrations=Path(__file__).parent / "migrations",
        # The operator console is a role balancing takes on (docs/console.md).
        append_only_tables=("cycles", "breaches", "cycle_input_parts"),
        handlers=lambda ctx: console_handlers.with_console(handlers(ctx), ctx),
        routers=lambda: [*routers(), *console_routes.routers()],
        background=lambda ctx: [lambda: sweep_waiting_requests_forever(ctx)],
        on_start=on_start,
        settings_factory=BalancingSettings,
    )


DEFINITION = build_definition()
