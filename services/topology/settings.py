"""The topology service's own knobs (env prefix MGRID_)."""

from __future__ import annotations

from libs.platform.settings import PlatformSettings


class TopologySettings(PlatformSettings):
    status_history_max_page: int = 1_000
    status_history_default_page: int = 100
