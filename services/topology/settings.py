"""The topology service's own knobs (env prefix MGRID_)."""

from __future__ import annotations

from libs.platform.runtime import ServiceContext
from libs.platform.settings import PlatformSettings


class TopologySettings(PlatformSettings):
    status_history_max_page: int = 1_000
    status_history_default_page: int = 100
    # How far ahead of the service's clock a status `observed_at` may be: beyond it, 422 (issue 14:
    # a status dated 2099 would pin the latest status for good).
    status_max_clock_skew_s: float = 300.0


# What topology's handlers and routes get: the context with these settings on it.
TopologyContext = ServiceContext[TopologySettings]
