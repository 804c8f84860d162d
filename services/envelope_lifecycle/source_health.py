"""Forecast-source health as stored state: evaluated on a forecast receipt, a capability status or
control-point change, and at scheduled HEALTH_CHECK timers (age thresholds); never at read time.

A change of health is a lifecycle trigger: each live forecast of the source (or, with none live, its
latest one) gets a HEALTH_CHANGE lifecycle entry carrying the new health, which is how balancing learns
it; the caller recomputes the projection of the nodes returned. The source stays bound to the node its
control point targets after its forecasts end, so its health still decides fallback and fail-safe there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from contracts.base import Message
from contracts.enums import ForecastSourceHealth
from libs.domain.forecast_health import classify_forecast_source, health_check_instants
from libs.platform.messaging.unit_of_work import UnitOfWork
from services.envelope_lifecycle.adapters import capabilities, envelopes, forecast_sources, timers
from services.envelope_lifecycle.lifecycle import Transition, record_transition
from services.envelope_lifecycle.settings import EnvelopeLifecycleSettings


@dataclass(frozen=True, slots=True)
class HealthChange:
    microgrid_id: UUID
    control_point_id: UUID
    previous: ForecastSourceHealth
    health: ForecastSourceHealth


async def record_forecast_receipt(
    uow: UnitOfWork,
    *,
    settings: EnvelopeLifecycleSettings,
    microgrid_id: UUID,
    control_point_id: UUID,
    received_at: datetime,
) -> HealthChange | None:
    """A forecast arrived from the source: it is fresh again; schedule the age checks of this forecast."""
    stored = await forecast_sources.get(uow.conn, microgrid_id, control_point_id)
    health = await _classify(uow, settings, control_point_id, received_at, received_at)
    await forecast_sources.save(
        uow.conn,
        microgrid_id=microgrid_id,
        control_point_id=control_point_id,
        health=health,
        last_forecast_received_at=received_at,
        health_changed_at=received_at if stored is None or stored.health is not health else stored.health_changed_at,
    )
    for instant in health_check_instants(received_at, settings.health_thresholds()):
        await timers.schedule_health_check(uow.conn, microgrid_id, control_point_id, instant)
    if stored is None or stored.health is health:
        return None
    return HealthChange(microgrid_id, control_point_id, stored.health, health)


async def reevaluate_source(
    uow: UnitOfWork,
    *,
    settings: EnvelopeLifecycleSettings,
    microgrid_id: UUID,
    control_point_id: UUID,
    at: datetime,
) -> HealthChange | None:
    """Re-judge a known source at `at`; store and return the change, if any."""
    stored = await forecast_sources.get(uow.conn, microgrid_id, control_point_id)
    if stored is None:
        return None  # never sent a forecast: not a forecast source (yet)
    health = await _classify(uow, settings, control_point_id, stored.last_forecast_received_at, at)
    if health is stored.health:
        return None
    await forecast_sources.save(
        uow.conn,
        microgrid_id=microgrid_id,
        control_point_id=control_point_id,
        health=health,
        last_forecast_received_at=stored.last_forecast_received_at,
        health_changed_at=at,
    )
    return HealthChange(microgrid_id, control_point_id, stored.health, health)


async def announce_health_change(
    uow: UnitOfWork,
    change: HealthChange,
    *,
    at: datetime,
    timer_id: int | None = None,
    causation: Message | None = None,
) -> set[UUID]:
    """HEALTH_CHANGE entries for the source's forecasts; returns the nodes whose projection may move."""
    affected: set[UUID] = set()
    state = await capabilities.control_point_state(uow.conn, change.control_point_id)
    if state is not None and state.node_id is not None:
        affected.add(state.node_id)
    for env in await envelopes.forecasts_to_announce(uow.conn, change.microgrid_id, change.control_point_id):
        affected.add(env.node_id)
        await record_transition(
            uow,
            env,
            transition=Transition.HEALTH_CHANGE,
            status=env.status,
            at=at,
            timer_id=timer_id,
            forecast_source_health=change.health,
            detail={"previous_forecast_source_health": change.previous.value},
            causation=causation,
        )
    return affected


async def _classify(
    uow: UnitOfWork,
    settings: EnvelopeLifecycleSettings,
    control_point_id: UUID,
    last_forecast_received_at: datetime,
    at: datetime,
) -> ForecastSourceHealth:
    state = await capabilities.control_point_state(uow.conn, control_point_id)
    return classify_forecast_source(
        now=at,
        last_forecast_received_at=last_forecast_received_at,
        latest_status=state.latest_status if state else None,
        in_use=state.in_use if state else True,
        thresholds=settings.health_thresholds(),
    )
