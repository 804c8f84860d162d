"""The compatibility adapter, wired: legacy circuit doors in, microgrid contracts out (port 8104).

Removable by design (spec section 7): stop this service and drop its schema; no other service reads its
tables or depends on its events to do its own job.
"""

from __future__ import annotations

from pathlib import Path

from libs.platform.runtime import ServiceDefinition
from services.compatibility_adapter.handlers import HANDLERS, PASSES_OVER
from services.compatibility_adapter.routes import router
from services.compatibility_adapter.settings import CompatibilityAdapterSettings

DEFINITION = ServiceDefinition(
    name="compatibility_adapter",
    migrations=Path(__file__).parent / "migrations",
    append_only_tables=("translation_audit",),
    handlers=HANDLERS,
    passes_over=PASSES_OVER,
    routers=lambda: [router],
    settings_type=CompatibilityAdapterSettings,
)
