"""The setup step: the depot as the scenario's layout describes it, phase by phase (circuits, resync, tree,
limits, control points, vehicles, telemetry), each timed in the step's notes.
"""

from __future__ import annotations

import time

from simulator.actors import operator, registry
from simulator.actors.operator_steps import control_points, resync, write_limits, write_tree
from simulator.actors.stage import Stage
from simulator.actors.vehicle_steps import plug_in, send_telemetry
from simulator.expectations import StepTrace
from simulator.scenario import PlugInAction, SetupAction


async def setup(stage: Stage, action: SetupAction, trace: StepTrace, correlation: str) -> None:
    phases: list[str] = []
    mark = time.monotonic()

    def done(phase: str) -> None:
        nonlocal mark
        phases.append(f"{phase} {time.monotonic() - mark:.2f}s")
        mark = time.monotonic()

    try:
        if action.circuits:
            for circuit in stage.state.layout.circuits:
                await stage.publish(trace, registry.circuit_updated(stage.state, stage.clock, circuit,
                                                                    correlation_id=correlation))
            await stage.digested(trace)
            done("circuits")
        if action.resync:
            await resync(stage, None, trace, correlation)
            done("resync")
        if action.tree:
            await write_tree(stage, trace, correlation)
            done("tree")
        if action.limits:
            limits = operator.layout_limits(stage.state)
            if limits:
                await write_limits(stage, trace, correlation, limits)
            done("limits")
        if action.control_points:
            await control_points(stage, trace, correlation)
            done("control points")
        if action.plug_in == "all":
            await plug_in(stage, PlugInAction(), trace, correlation)
        if action.telemetry is not None:
            await send_telemetry(stage, action.telemetry, trace, correlation)
            done("telemetry")
    finally:
        trace.notes.append("setup: " + ", ".join(phases))
