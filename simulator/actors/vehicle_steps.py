"""The vehicles' steps: plugging in and out (the chargers' sessions) and the telemetry they report."""

from __future__ import annotations

from simulator.actors import telemetry
from simulator.actors.stage import Stage
from simulator.expectations import StepTrace
from simulator.scenario import PlugInAction, TelemetryAction, UnplugAction

DEFAULT_SESSION_ENERGY_WH = 60000


async def plug_in(stage: Stage, action: PlugInAction, trace: StepTrace, correlation: str) -> None:
    names = action.connectors or [p.node.name for p in stage.state.layout.connectors()]
    for name in names:
        node = stage.state.layout.node(name).node
        stage.sessions += 1
        requested = action.requested_watts if action.requested_watts is not None else (node.max_watts or 22000)
        stage.chargers.plug_in(name, requested_watts=requested,
                               min_watts=action.min_watts if action.min_watts is not None else node.min_watts,
                               energy_wh=action.energy_wh or DEFAULT_SESSION_ENERGY_WH,
                               ref=stage.ids.key("session", f"{name}:{stage.sessions}"))


async def unplug(stage: Stage, action: UnplugAction, trace: StepTrace, correlation: str) -> None:
    for name in action.connectors or list(stage.chargers.sessions):
        stage.chargers.unplug(name)


async def send_telemetry(stage: Stage, action: TelemetryAction, trace: StepTrace, correlation: str) -> None:
    start = stage.clock.offset_s
    for i in range(action.ticks):
        if i:
            offset = await stage.pacer.reach(start + i * action.tick_s)
            stage.chargers.advance((offset - stage.clock.offset_s) / 3600)
            stage.clock.advance_to(offset)
        await stage.publish(trace, telemetry.tick(stage.state, stage.chargers, stage.clock, stage.rng, action,
                                                  correlation_id=correlation))
    await stage.digested(trace)
