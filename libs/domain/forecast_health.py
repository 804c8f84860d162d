"""Forecast-source health: HEALTHY, STALE or OFFLINE, from the source's capability status and forecast age.

Pure. The worst finding wins:
- the control point is disabled or inactive, or its latest operational status is an offline one
  (OFFLINE, ERROR, ...): OFFLINE;
- its latest operational status is a stale one (STALE, DEGRADED): STALE;
- the newest forecast from the source is older than `offline_after`: OFFLINE; than `stale_after`: STALE.

Age-based changes happen with no message arriving, so each forecast receipt schedules a health check at
the two instants where its age crosses a threshold (`health_check_instants`). The effective circuit
capacity (`circuit_capacity`) takes the health as stored state; envelope-lifecycle re-judges it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts.enums import ForecastSourceHealth

# Worse is higher: the worst finding (or source) decides.
HEALTH_RANK = {ForecastSourceHealth.HEALTHY: 0, ForecastSourceHealth.STALE: 1, ForecastSourceHealth.OFFLINE: 2}


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    stale_after: timedelta
    offline_after: timedelta
    offline_statuses: frozenset[str]
    stale_statuses: frozenset[str]


def classify_forecast_source(
    *,
    now: datetime,
    last_forecast_received_at: datetime,
    latest_status: str | None,
    in_use: bool,
    thresholds: HealthThresholds,
) -> ForecastSourceHealth:
    findings = [ForecastSourceHealth.HEALTHY]
    if not in_use:
        findings.append(ForecastSourceHealth.OFFLINE)
    if latest_status is not None:
        status = latest_status.strip().upper()
        if status in {s.upper() for s in thresholds.offline_statuses}:
            findings.append(ForecastSourceHealth.OFFLINE)
        elif status in {s.upper() for s in thresholds.stale_statuses}:
            findings.append(ForecastSourceHealth.STALE)
    age = now - last_forecast_received_at
    if age >= thresholds.offline_after:
        findings.append(ForecastSourceHealth.OFFLINE)
    elif age >= thresholds.stale_after:
        findings.append(ForecastSourceHealth.STALE)
    return max(findings, key=HEALTH_RANK.__getitem__)


def health_check_instants(received_at: datetime, thresholds: HealthThresholds) -> tuple[datetime, ...]:
    """When a forecast received at `received_at` would make its source stale, then offline, by age."""
    return tuple(sorted({received_at + thresholds.stale_after, received_at + thresholds.offline_after}))
