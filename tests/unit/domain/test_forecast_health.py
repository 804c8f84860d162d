"""Forecast-source health (FR-030): HEALTHY, STALE or OFFLINE from capability status and forecast age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.enums import ForecastSourceHealth
from libs.domain.forecast_health import HEALTH_RANK, HealthThresholds, classify_forecast_source, health_check_instants

T0 = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
THRESHOLDS = HealthThresholds(
    stale_after=timedelta(minutes=15),
    offline_after=timedelta(hours=1),
    offline_statuses=frozenset({"OFFLINE", "ERROR"}),
    stale_statuses=frozenset({"STALE"}),
)


@pytest.mark.req("FR-030")
@pytest.mark.parametrize(
    ("age", "status", "in_use", "health"),
    [
        (timedelta(0), None, True, ForecastSourceHealth.HEALTHY),
        (timedelta(minutes=14), "ONLINE", True, ForecastSourceHealth.HEALTHY),
        (timedelta(minutes=15), None, True, ForecastSourceHealth.STALE),
        (timedelta(hours=1), None, True, ForecastSourceHealth.OFFLINE),
        (timedelta(0), "error", True, ForecastSourceHealth.OFFLINE),
        (timedelta(0), "Stale", True, ForecastSourceHealth.STALE),
        (timedelta(minutes=20), "OFFLINE", True, ForecastSourceHealth.OFFLINE),  # the worst finding wins
        (timedelta(0), None, False, ForecastSourceHealth.OFFLINE),  # disabled or inactive control point
    ],
)
def test_forecast_source_health(age: timedelta, status: str | None, in_use: bool, health: ForecastSourceHealth) -> None:
    assert (
        classify_forecast_source(
            now=T0 + age, last_forecast_received_at=T0, latest_status=status, in_use=in_use, thresholds=THRESHOLDS
        )
        is health
    )


def test_health_is_checked_where_the_forecast_age_crosses_a_threshold() -> None:
    assert health_check_instants(T0, THRESHOLDS) == (T0 + timedelta(minutes=15), T0 + timedelta(hours=1))
    same = HealthThresholds(timedelta(hours=1), timedelta(hours=1), frozenset(), frozenset())
    assert health_check_instants(T0, same) == (T0 + timedelta(hours=1),)  # one check when both coincide


def test_worse_health_ranks_higher() -> None:
    assert sorted(ForecastSourceHealth, key=HEALTH_RANK.__getitem__) == [
        ForecastSourceHealth.HEALTHY,
        ForecastSourceHealth.STALE,
        ForecastSourceHealth.OFFLINE,
    ]
