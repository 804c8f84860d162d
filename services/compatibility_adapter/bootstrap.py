"""The compatibility adapter, wired: legacy circuit doors in, microgrid contracts out (port 8104).

Removable by design (spec section 7): stop this service and drop its schema; no other service reads its
tables or depends on its events to do its own job.
"""

from __future__ import annotations

from pathlib import Path

from libs.platform.clock import SystemClock
from libs.platform.runtime import ServiceContext, ServiceDefinition
from services.compatibility_adapter.handlers import handlers
from services.compatibility_adapter.routes import router
from services.compatibility_adapter.settings import CompatibilityAdapterSettings, adapter_settings


async def _on_start(ctx: ServiceContext) -> None:
    # Tests may put a ManualClock here before start-up; services read time only through it.
    ctx.extras.setdefault("clock", SystemClock())
    ctx.extras["settings"] = adapter_settings(ctx.settings)


DEFINITION = ServiceDefinition(
    name="compatibility_adapter",
    migrations=Path(__file__).parent / "migrations",
    append_only_tables=("translation_audit",),
    handlers=handlers,
    routers=lambda: [router],
    on_start=_on_start,
    settings_factory=CompatibilityAdapterSettings,
)
