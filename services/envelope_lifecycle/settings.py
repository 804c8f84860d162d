"""The envelope-lifecycle service's own knobs (env MGRID_*), on top of the platform's."""

from __future__ import annotations

from datetime import timedelta

from libs.domain.circuit_capacity import GapPolicy
from libs.domain.forecast_health import HealthThresholds
from libs.platform.runtime import ServiceContext
from libs.platform.settings import PlatformSettings


class EnvelopeLifecycleSettings(PlatformSettings):
    # The scheduler loop: how often it evaluates due timers (SystemClock time), and whether it runs at
    # all (tests switch it off and call `evaluate_due_timers(ctx, now)` with explicit instants).
    lifecycle_scheduler_enabled: bool = True
    lifecycle_scheduler_interval_s: float = 0.5
    # A timer whose evaluation keeps failing is given up (marked FAILED, logged) after this many tries,
    # so one poisoned row cannot hold back every later timer of its microgrid forever.
    lifecycle_timer_max_attempts: int = 5
    # Due instants of one microgrid evaluated per transaction (each still at its own timestamp, in order).
    lifecycle_instants_per_transaction: int = 20
    # Forecast-source health from the age of the latest forecast envelope received from the source.
    forecast_stale_after_s: float = 900.0
    forecast_offline_after_s: float = 3600.0
    # Capability operational statuses (case-insensitive) that make a forecast source OFFLINE or STALE.
    forecast_offline_statuses: frozenset[str] = frozenset({"OFFLINE", "ERROR", "FAULT", "UNAVAILABLE"})
    forecast_stale_statuses: frozenset[str] = frozenset({"STALE", "DEGRADED"})
    # Read-your-writes: how long a write naming a node not known here yet waits for its topology before
    # it is judged (0: judge at once), and how often parked commands are checked for their deadline.
    envelope_topology_wait_s: float = 5.0
    envelope_topology_sweep_interval_s: float = 0.5
    # FR-031: what fills a gap in a healthy primary forecast (the spec's default: circuit default capacity).
    forecast_gap_policy: GapPolicy = GapPolicy.DEFAULT_CAPACITY

    def health_thresholds(self) -> HealthThresholds:
        return HealthThresholds(
            stale_after=timedelta(seconds=self.forecast_stale_after_s),
            offline_after=timedelta(seconds=self.forecast_offline_after_s),
            offline_statuses=self.forecast_offline_statuses,
            stale_statuses=self.forecast_stale_statuses,
        )


# What the service's handlers, routes and loops get: the context with these settings on it.
EnvelopeLifecycleContext = ServiceContext[EnvelopeLifecycleSettings]
