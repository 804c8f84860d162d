"""Legacy producers and schedulers: circuit-keyed rebalance events, the circuit HTTP aliases, TOU limits,
and periodic rebalance jobs by circuit or by microgrid.
"""

from __future__ import annotations

from contracts.api.compatibility_adapter import LegacyTouPeriod, LegacyTouSchedule
from contracts.events import (
    LegacyRebalanceRequested,
    LegacyRebalanceRequestedPayload,
    ScheduledRebalancePeriodic,
    ScheduledRebalancePeriodicPayload,
)
from simulator.actors.messages import new_message
from simulator.clock import ScenarioClock
from simulator.depot_state import DepotState
from simulator.scenario import TouLimitsAction
from simulator.wire import HttpCall, Publication

LEGACY_PRODUCER = "simulator.legacy-load-balancer"
SCHEDULER_PRODUCER = "simulator.scheduler"


def rebalance_event(state: DepotState, clock: ScenarioClock, circuit: str, *, correlation_id: str) -> Publication:
    payload = LegacyRebalanceRequestedPayload(circuit_id=state.circuit_id(circuit), requested_by=LEGACY_PRODUCER)
    return Publication(new_message(LegacyRebalanceRequested, payload, producer=LEGACY_PRODUCER, ids=state.ids,
                                   clock=clock, correlation_id=correlation_id))


def rebalance_http(state: DepotState, circuit: str, *, request_key: str, correlation_id: str) -> HttpCall:
    return HttpCall.of("compatibility_adapter", "POST", f"/api/circuit/{state.circuit_id(circuit)}/rebalance_load",
                       headers={"Idempotency-Key": request_key, "X-Correlation-ID": correlation_id})


def tou_limits(state: DepotState, clock: ScenarioClock, action: TouLimitsAction, *, correlation_id: str) -> HttpCall:
    path = f"/api/circuit/{state.circuit_id(action.circuit)}/tou_limits"
    if action.method == "GET":
        return HttpCall.of("compatibility_adapter", "GET", path)
    base = clock.offset_s
    schedule = LegacyTouSchedule(periods=[
        LegacyTouPeriod(start=clock.at(base + p.from_s), end=clock.at(base + p.to_s), limit_watts=p.watts)
        for p in action.periods
    ])
    return HttpCall.of("compatibility_adapter", "POST", path, schedule, headers={"X-Correlation-ID": correlation_id})


def periodic(state: DepotState, clock: ScenarioClock, *, circuit: str | None, schedule_ref: str,
             correlation_id: str) -> Publication:
    """ScheduledEventRebalancePeriodic{circuit_id} (circuit given) or {microgrid_id}."""
    payload = ScheduledRebalancePeriodicPayload(
        circuit_id=state.circuit_id(circuit) if circuit else None,
        microgrid_id=None if circuit else state.microgrid_id,
        schedule_ref=schedule_ref, scheduled_for=clock.now(),
    )
    return Publication(new_message(ScheduledRebalancePeriodic, payload, producer=SCHEDULER_PRODUCER, ids=state.ids,
                                   clock=clock, correlation_id=correlation_id))
