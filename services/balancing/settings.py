"""Balancing's own knobs (env MGRID_*), on top of the platform's."""

from __future__ import annotations

from pydantic import Field

from libs.platform.runtime import ServiceContext
from libs.platform.settings import PlatformSettings


class BalancingSettings(PlatformSettings):
    # Measured demand older than this is stale and replaced by the node's fallback rule (FR-004).
    telemetry_freshness_seconds: int = 60
    # How long POST /rebalance waits for its cycle before answering 202 with the request key.
    rebalance_wait_s: float = 10.0
    # How long a request naming a topology version not seen yet waits before TOPOLOGY_VERSION_CONFLICT.
    topology_wait_s: float = 10.0
    # How often waiting requests are checked against their deadline.
    pending_sweep_interval_s: float = 0.5
    # Different microgrids' cycles of one polled batch run in this many lanes at once, each in its own
    # transaction (one microgrid's stay in order in one lane): their database round trips overlap.
    consumer_lanes: int = Field(default=4, ge=1, le=16)
    # Records a poll takes (one transaction per lane): every cycle of a unit waits for the unit's commit
    # before its events go out, and a cycle costs milliseconds where other services' records cost
    # microseconds. 25 instead of the platform's 100 cut the fleet's p99 at the bend by 30-66 %, at the
    # same CPU a cycle (docs/performance.md, nineteenth round).
    consumer_max_batch: int = Field(default=25, ge=1, le=1_000)


# What balancing's handlers, routes and loops get: the context with these settings on it (and, as
# `memory`, this process's MicrogridStateCache).
BalancingContext = ServiceContext[BalancingSettings]
