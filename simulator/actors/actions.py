"""Which actor plays which step: the scenario's action model -> the coroutine that acts it out.

A step carries exactly one action (simulator/scenario.py, `Step`); the runner looks its model's type up
here. A new kind of step is a model in scenario.py, a field on `Step`, and one line below
(tests/unit/simulator/test_actions.py checks that every field has its line).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from simulator.actors import operator_steps, outside_steps, rebalance_steps, setup_step, vehicle_steps
from simulator.actors.stage import Stage
from simulator.expectations import StepTrace
from simulator.scenario import (
    AggregateCapAction,
    CircuitAction,
    ConcurrentEditsAction,
    ControlPointAction,
    DepotDayAction,
    EnvelopeAction,
    ForecastSourceAction,
    NodeLimitAction,
    OperatorViewAction,
    PlugInAction,
    RebalanceAction,
    ResyncAction,
    ScenarioModel,
    SettleAction,
    SetupAction,
    StatusEventAction,
    TelemetryAction,
    TopologyEdit,
    TouLimitsAction,
    UnplugAction,
    WithdrawEnvelopeAction,
)

# (stage, the step's action, its trace, its correlation id)
Action = Callable[[Stage, Any, StepTrace, str], Awaitable[None]]

ACTIONS: dict[type[ScenarioModel], Action] = {
    SetupAction: setup_step.setup,
    CircuitAction: outside_steps.circuit,
    ResyncAction: operator_steps.resync,
    TopologyEdit: operator_steps.edit_topology,
    ConcurrentEditsAction: operator_steps.concurrent_edits,
    NodeLimitAction: operator_steps.node_limit,
    AggregateCapAction: operator_steps.aggregate_cap,
    PlugInAction: vehicle_steps.plug_in,
    UnplugAction: vehicle_steps.unplug,
    TelemetryAction: vehicle_steps.send_telemetry,
    EnvelopeAction: outside_steps.envelope,
    WithdrawEnvelopeAction: outside_steps.withdraw_envelope,
    ForecastSourceAction: operator_steps.forecast_source,
    ControlPointAction: operator_steps.control_point,
    StatusEventAction: operator_steps.status_event,
    RebalanceAction: rebalance_steps.rebalance,
    TouLimitsAction: outside_steps.tou_limits,
    DepotDayAction: rebalance_steps.depot_day,
    OperatorViewAction: operator_steps.operator_view,
    SettleAction: rebalance_steps.settle,
}


async def act(stage: Stage, action: ScenarioModel, trace: StepTrace, correlation: str) -> None:
    await ACTIONS[type(action)](stage, action, trace, correlation)
