"""The compatibility adapter's own knobs (env MGRID_COMPAT_*), on top of the platform settings."""

from __future__ import annotations

from pydantic import Field, model_validator

from libs.platform.runtime import ServiceContext
from libs.platform.settings import PlatformSettings


class CompatibilityAdapterSettings(PlatformSettings):
    # How long POST /api/circuit/{id}/rebalance_load waits for its cycle before answering 202 PENDING.
    compat_rebalance_wait_s: float = 10.0
    # The result's commit wakes the wait (Redis signal); this is the re-read interval if a signal is lost.
    compat_rebalance_poll_interval_s: float = 0.5
    # How long the process that took a POST .../rebalance_load reads cycle results for it (answered or
    # 202 PENDING): a result found is kept for a repeat of the request; a repeat after this looks for it
    # from the request's recorded time (cycle_result_reader.py).
    compat_result_watch_s: float = Field(default=60.0, gt=0, le=3600)
    # Read-your-writes: how long a legacy HTTP call naming a circuit not mapped here yet waits for the
    # topology that maps it before it is refused (0: refuse at once).
    compat_topology_wait_s: float = 5.0
    # Backpressure: while balancing is this many records behind (summed over its processes), the
    # adapter stops taking legacy triggers and scheduler jobs off Kafka, and takes them again once it is
    # at the low mark: the backlog waits in Kafka, in order, and the CPU goes to the cycles instead of
    # to translating triggers faster than they can be balanced. 0: never hold back.
    compat_backpressure_high: int = Field(default=200, ge=0)
    compat_backpressure_low: int = Field(default=50, ge=0)

    @model_validator(mode="after")
    def _low_under_high(self) -> CompatibilityAdapterSettings:
        if self.compat_backpressure_high and self.compat_backpressure_low >= self.compat_backpressure_high:
            raise ValueError("compat_backpressure_low must be under compat_backpressure_high")
        return self


# What the adapter's handlers and routes get: the context with these settings on it.
CompatibilityAdapterContext = ServiceContext[CompatibilityAdapterSettings]
