"""The compatibility adapter's own knobs (env MGRID_COMPAT_*), on top of the platform settings."""

from __future__ import annotations

from libs.platform.runtime import ServiceContext
from libs.platform.settings import PlatformSettings


class CompatibilityAdapterSettings(PlatformSettings):
    # How long POST /api/circuit/{id}/rebalance_load waits for its cycle before answering 202 PENDING.
    compat_rebalance_wait_s: float = 10.0
    # The result's commit wakes the wait (Redis signal); this is the re-read interval if a signal is lost.
    compat_rebalance_poll_interval_s: float = 0.5
    # Read-your-writes: how long a legacy HTTP call naming a circuit not mapped here yet waits for the
    # topology that maps it before it is refused (0: refuse at once).
    compat_topology_wait_s: float = 5.0


# What the adapter's handlers and routes get: the context with these settings on it.
CompatibilityAdapterContext = ServiceContext[CompatibilityAdapterSettings]
