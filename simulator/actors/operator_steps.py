"""The operator's steps: depot resync, the tree and its edits, node limits, control points, capability
status and the operator's reads, all through the topology service's public routes (operator.py builds
the calls).
"""

from __future__ import annotations

import asyncio
from typing import Any

from contracts.api.topology import ControlPointInput
from simulator.actors import operator
from simulator.actors.stage import Stage
from simulator.depot_state import LOAD_BALANCING_CONTROL_POINT
from simulator.expectations import StepTrace
from simulator.scenario import (
    AggregateCapAction,
    ConcurrentEditsAction,
    ControlPointAction,
    ForecastSourceAction,
    NodeLimitAction,
    StatusEventAction,
    TopologyEdit,
)
from simulator.wire import HttpAnswer


async def resync(stage: Stage, _: object, trace: StepTrace, correlation: str) -> None:
    answer = await stage.call_ok(trace, operator.resync(stage.state), correlation)
    stage.state.microgrid_id, version = operator.microgrid_of(answer.body)
    await _read_tree(stage, trace, correlation)
    if answer.body.get("result", {}).get("changed", True):
        await stage.outputs(trace, "microgrid.topology_updated",
                            lambda p: p.microgrid_id == stage.state.microgrid_id and p.version >= version)


async def _read_tree(stage: Stage, trace: StepTrace, correlation: str) -> None:
    answer = await stage.call_ok(trace, operator.read_topology(stage.state), correlation, record=False)
    _, stage.state.version = operator.microgrid_of(answer.body)
    result = answer.body.get("result", answer.body)
    stage.state.tree = operator.node_inputs(result["nodes"])
    stage.state.learn_managed_nodes(stage.state.tree)


async def write_tree(stage: Stage, trace: StepTrace, correlation: str) -> None:
    managed = [n for n in stage.state.tree if n.parent_node_id is None and n.attached_asset_type is not None]
    nodes = stage.state.authored_tree(managed)
    answer = await stage.call_ok(trace, operator.write_topology(stage.state, nodes, stage.state.version), correlation)
    _, version = operator.microgrid_of(answer.body)
    stage.state.version, stage.state.tree = version, nodes
    await stage.outputs(trace, "microgrid.topology_updated",
                        lambda p: p.microgrid_id == stage.state.microgrid_id and p.version >= version)


async def edit_topology(stage: Stage, action: TopologyEdit, trace: StepTrace, correlation: str) -> None:
    await _read_tree(stage, trace, correlation)
    nodes = operator.apply_edit(stage.state, stage.state.tree, action)
    version = operator.edit_version(stage.state, action)
    answer = await stage.call(trace, operator.write_topology(stage.state, nodes, version), correlation)
    await _after_write(stage, trace, answer, nodes)


async def concurrent_edits(stage: Stage, action: ConcurrentEditsAction, trace: StepTrace, correlation: str) -> None:
    await _read_tree(stage, trace, correlation)
    base = list(stage.state.tree)
    calls = [operator.write_topology(stage.state, operator.apply_edit(stage.state, base, e),
                                     operator.edit_version(stage.state, e)) for e in action.edits]
    answers = await asyncio.gather(*(stage.call(trace, c, correlation) for c in calls))
    for call, answer in zip(calls, answers, strict=True):
        if answer.ok:
            await _after_write(stage, trace, answer, operator.node_inputs(call.body["nodes"]))


async def _after_write(stage: Stage, trace: StepTrace, answer: HttpAnswer, nodes: list[Any]) -> None:
    if not answer.ok:
        return
    _, version = operator.microgrid_of(answer.body)
    stage.state.version, stage.state.tree = version, nodes
    await stage.outputs(trace, "microgrid.topology_updated",
                        lambda p: p.microgrid_id == stage.state.microgrid_id and p.version >= version)


async def write_limits(stage: Stage, trace: StepTrace, correlation: str, limits: list[tuple[str, Any, int]]) -> None:
    answer = await stage.call_ok(trace, operator.node_limits(stage.state, limits), correlation)
    result = answer.body.get("result", answer.body)
    written = {str(limit["node_limit_id"]) for limit in result.get("limits", [])}
    await stage.outputs(trace, "microgrid.node_limit_updated", lambda p: str(p.node_limit_id) in written,
                        count=len(written))
    for node, _, watts in limits:
        stage.limits[node] = watts


async def node_limit(stage: Stage, action: NodeLimitAction, trace: StepTrace, correlation: str) -> None:
    await write_limits(stage, trace, correlation, [(action.node, action.constraint_type, action.watts)])


async def aggregate_cap(stage: Stage, action: AggregateCapAction, trace: StepTrace, correlation: str) -> None:
    stage.aggregate_cap = action.watts
    await stage.call_ok(trace, operator.load_balancing_control_point(stage.state, action.watts), correlation)
    cp = stage.state.control_point_id(LOAD_BALANCING_CONTROL_POINT)
    await stage.outputs(trace, "microgrid.capability_control_point_updated", lambda p: p.control_point_id == cp)


async def control_points(stage: Stage, trace: StepTrace, correlation: str) -> None:
    await stage.call_ok(trace, operator.load_balancing_control_point(stage.state, stage.aggregate_cap), correlation)
    names = [LOAD_BALANCING_CONTROL_POINT]
    for source in stage.state.layout.forecast_sources():
        await stage.call_ok(trace, operator.forecast_source_control_point(stage.state, source.name, source.node),
                            correlation)
        names.append(source.name)
    stage.configured_cps.extend(names)
    wanted = {stage.state.control_point_id(n) for n in names}
    await stage.outputs(trace, "microgrid.capability_control_point_updated",
                        lambda p: p.control_point_id in wanted, count=len(wanted))
    for source in stage.state.layout.forecast_sources():
        await forecast_source(stage, ForecastSourceAction(name=source.name, status="HEALTHY"), trace, correlation)


async def control_point(stage: Stage, action: ControlPointAction, trace: StepTrace, correlation: str) -> None:
    body = ControlPointInput(
        node_id=stage.state.node_id(action.node) if action.node else None, capability_type=action.capability_type,
        state=action.state, control_source=action.control_source, schedule_ref=action.schedule_ref,
        external_config_type=action.external_config_type, external_config_ref=action.external_config_ref,
        local_config=action.local_config, description=f"{action.name} (simulator)",
    )
    answer = await stage.call(trace, operator.control_point(stage.state, action.name, body), correlation)
    if answer.ok:
        stage.configured_cps.append(action.name)
        cp = stage.state.control_point_id(action.name)
        await stage.outputs(trace, "microgrid.capability_control_point_updated", lambda p: p.control_point_id == cp)


async def forecast_source(stage: Stage, action: ForecastSourceAction, trace: StepTrace, correlation: str) -> None:
    ref = stage.ids.key("status", f"{action.name}:{trace.index}:{action.status}")
    await stage.call_ok(trace, operator.status_event(stage.state, stage.clock, action.name, action.status, ref),
                        correlation)
    cp = stage.state.control_point_id(action.name)
    await stage.outputs(trace, "microgrid.capability_status.recorded",
                        lambda p: p.control_point_id == cp and p.source_event_ref == ref)


async def status_event(stage: Stage, action: StatusEventAction, trace: StepTrace, correlation: str) -> None:
    ref = stage.ids.key("status", action.ref)
    answer = await stage.call(trace, operator.status_event(
        stage.state, stage.clock, action.control_point, action.status, ref, observed_ago_s=action.observed_ago_s,
        detail=action.detail, via_depot=action.via == "depot"), correlation)
    replayed = isinstance(answer.body, dict) and (answer.body.get("result") or {}).get("replayed")
    if answer.ok and not replayed:  # a replay appends nothing, so there is nothing to wait for
        await stage.outputs(trace, "microgrid.capability_status.recorded", lambda p: p.source_event_ref == ref)


async def operator_view(stage: Stage, _: object, trace: StepTrace, correlation: str) -> None:
    reads = {"depot": operator.read_depot(stage.state), "status": operator.microgrid_status(stage.state),
             "control_points": operator.read_control_points(stage.state)}
    for name in stage.configured_cps:
        reads[f"history:{name}"] = operator.read_status_history(stage.state, name)
    for key, call in reads.items():
        trace.reads[key] = await stage.call(trace, call, correlation, record=False)
