"""Asking for cycles: a rebalance by any of its doors (operator, legacy HTTP or event, the scheduler), the
busy depot day (arrivals, telemetry and one cycle per tick), and settling until everything is digested.
"""

from __future__ import annotations

import math
import time

from contracts.api.balancing import CycleResultResponse
from contracts.api.compatibility_adapter import CircuitRebalanceResponse
from simulator.actors import legacy, operator, telemetry
from simulator.actors.stage import Stage
from simulator.expectations import StepTrace, cycles_seen
from simulator.scenario import DepotDayAction, RebalanceAction, TelemetryAction
from simulator.wire import Published

DAY_START_HOUR = 6.0


async def rebalance(stage: Stage, action: RebalanceAction, trace: StepTrace, correlation: str) -> None:
    trace.correlated = True
    key = stage.ids.key("rebalance", str(trace.index))
    trace.request_keys.add(key)
    if action.via == "operator":
        call = operator.rebalance(stage.state, key, action.node, correlation)
        for _ in range(action.repeat):
            answer = await stage.call(trace, call, correlation)
            if answer.status == 200 and stage.transport.live:
                trace.answer_cycles.append(CycleResultResponse.model_validate(answer.body).result)
    elif action.via == "legacy_http":
        assert action.circuit is not None
        call = legacy.rebalance_http(stage.state, action.circuit, request_key=key, correlation_id=correlation)
        for _ in range(action.repeat):
            answer = await stage.call(trace, call, correlation)
            if answer.ok and stage.transport.live:
                response = CircuitRebalanceResponse.model_validate(answer.body)
                trace.request_keys.add(response.request_key)
                if response.result is not None:
                    trace.answer_cycles.append(response.result)
    else:
        if action.via == "legacy_event":
            assert action.circuit is not None
            publication = legacy.rebalance_event(stage.state, stage.clock, action.circuit, correlation_id=correlation)
        else:
            circuit = action.circuit if action.via == "scheduler_circuit" else None
            publication = legacy.periodic(stage.state, stage.clock, circuit=circuit,
                                          schedule_ref=stage.ids.key("schedule", str(trace.index)),
                                          correlation_id=correlation)
        for _ in range(action.repeat):  # a repeat is a replay of the very same message
            await stage.publish(trace, publication)


async def depot_day(stage: Stage, action: DepotDayAction, trace: StepTrace, correlation: str) -> None:
    """The busy day: per tick, energy delivered, arrivals, telemetry, one cycle, chargers follow."""
    connectors = [p.node for p in stage.state.layout.connectors()]
    start, hours = stage.clock.offset_s, action.period_minutes / 60
    trace.correlated = True
    tick_action = TelemetryAction(pattern="dropout", nodes=action.degraded_nodes, others=action.telemetry)
    for tick in range(action.ticks):
        offset = await stage.pacer.reach(start + tick * action.tick_s)
        stage.clock.advance_to(offset)
        stage.day_hour = DAY_START_HOUR + tick * hours
        stage.chargers.advance(hours)
        arrival_chance = action.arrival_rate * _arrival_profile(stage.day_hour % 24)
        for node in connectors:  # one draw per connector per tick, occupied or not: a stable stream
            draw, energy = stage.rng.random(), stage.rng.expovariate(1 / action.mean_energy_wh)
            if node.name not in stage.chargers.sessions and draw < arrival_chance:
                stage.sessions += 1
                stage.chargers.plug_in(node.name, requested_watts=node.max_watts or 22000, min_watts=node.min_watts,
                                       energy_wh=min(max(energy, 5000), 3 * action.mean_energy_wh),
                                       ref=stage.ids.key("session", f"{node.name}:{stage.sessions}"))
        tick_correlation = f"{correlation}-t{tick}"
        trace.correlation_ids.add(tick_correlation)
        published = await stage.publish(trace, telemetry.tick(
            stage.state, stage.chargers, stage.clock, stage.rng, tick_action, correlation_id=tick_correlation,
            generation_factor=_solar_profile(stage.day_hour % 24)))
        await stage.digested(trace, [published] if published else [])
        await _day_cycle(stage, action, trace, tick, tick_correlation)
    stage.day_hour = None


async def _day_cycle(stage: Stage, action: DepotDayAction, trace: StepTrace, tick: int, correlation: str) -> None:
    key = stage.ids.key("day", str(tick))
    trace.request_keys.add(key)
    if action.via == "operator":
        answer = await stage.call(trace, operator.rebalance(stage.state, key, None, correlation), correlation)
        if answer.status == 200 and stage.transport.live:
            trace.answer_cycles.append(CycleResultResponse.model_validate(answer.body).result)
            await _await_cycle(stage, trace, correlation, key)
        return
    circuit = stage.state.layout.managed_grid_connections()[tick % len(stage.state.layout.managed_grid_connections())]
    publication = legacy.periodic(stage.state, stage.clock,
                                  circuit=circuit.circuit if action.via == "scheduler_circuit" else None,
                                  schedule_ref=key, correlation_id=correlation)
    await stage.publish(trace, publication)
    await _await_cycle(stage, trace, correlation, key)


async def _await_cycle(stage: Stage, trace: StepTrace, correlation: str, key: str, timeout_s: float = 20.0) -> None:
    if not stage.transport.live:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for seen in cycles_seen(stage.transport.observed[trace.start_observed:], stage.state):
            audit = seen.result.audit
            if correlation in (seen.correlation_id, audit.correlation_id) or audit.request_key == key:
                stage.process_cycles()
                return
        await stage.transport.poll()
    trace.notes.append(f"no cycle for {correlation} within {timeout_s:.0f} s")


async def settle(stage: Stage, _: object, trace: StepTrace, correlation: str) -> None:
    outputs = [Published(r.topic, r.partition, r.offset) for r in stage.transport.observed if r.message is not None]
    await stage.digested(trace, stage.all_published + outputs)
    await stage.follow_through(trace)


def _arrival_profile(hour: float) -> float:
    """Depot arrivals: a midday top-up bump and the evening return of the fleet."""
    return min(1.0, 0.1 + 0.9 * math.exp(-(((hour - 18) / 2.5) ** 2)) + 0.4 * math.exp(-(((hour - 12) / 1.5) ** 2)))


def _solar_profile(hour: float) -> float:
    return max(0.0, math.sin(math.pi * (hour - 6) / 14)) if 6 <= hour <= 20 else 0.0
