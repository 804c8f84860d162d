"""The operator: depot resync, the tree, node limits, control points, capability status and rebalances.

Everything goes through the topology and balancing services' public routes. Tree edits are authored on
the operator's copy of the tree and posted whole with the version they were authored on, so a stale
copy meets the optimistic-concurrency check exactly as a second operator's browser tab would.
"""

from __future__ import annotations

from uuid import UUID

from contracts.api.balancing import RebalanceRequest
from contracts.api.topology import (
    ControlPointInput,
    DepotStatusEventInput,
    NodeLimitInput,
    NodeLimitsRequest,
    StatusEventInput,
    TopologyNodeInput,
    TopologyReplaceRequest,
)
from contracts.enums import (
    CapabilityState,
    CapabilityType,
    ConstraintType,
    ControlSource,
    LimitSourceType,
    NodeType,
)
from contracts.records import FallbackRuleRecord
from libs.domain.limits import AGGREGATE_CAP_CONFIG_KEYS
from simulator.clock import ScenarioClock
from simulator.depot_state import LOAD_BALANCING_CONTROL_POINT, DepotState
from simulator.scenario import TopologyEdit
from simulator.wire import HttpCall

FORECAST_CONFIG_TYPE = "OSCP_CONFIGURATION"
AGGREGATE_CAP_KEY = next(k for k, t in AGGREGATE_CAP_CONFIG_KEYS.items() if t is ConstraintType.CONSUMPTION_CAP)


def _mg(state: DepotState) -> str:
    if state.microgrid_id is None:
        raise RuntimeError("the depot has no microgrid yet: run a resync (setup) first")
    return f"/api/microgrid/{state.microgrid_id}"


def resync(state: DepotState) -> HttpCall:
    return HttpCall.of("topology", "POST", f"/api/depot/{state.depot_id}/microgrid/resync")


def read_depot(state: DepotState) -> HttpCall:
    return HttpCall.of("topology", "GET", f"/api/depot/{state.depot_id}/microgrid")


def read_topology(state: DepotState) -> HttpCall:
    return HttpCall.of("topology", "GET", f"{_mg(state)}/topology")


def write_topology(state: DepotState, nodes: list[TopologyNodeInput], version: int) -> HttpCall:
    request = TopologyReplaceRequest(version=version, nodes=nodes, fallback_rules=fallback_rules(state))
    return HttpCall.of("topology", "POST", f"{_mg(state)}/topology", request)


def fallback_rules(state: DepotState) -> list[FallbackRuleRecord]:
    return [FallbackRuleRecord(node_id=state.node_id(p.node.name), fallback_demand_watts=p.node.fallback_demand_watts)
            for p in state.layout.nodes() if p.node.fallback_demand_watts is not None]


def node_limits(state: DepotState, limits: list[tuple[str, ConstraintType, int]]) -> HttpCall:
    request = NodeLimitsRequest(limits=[
        NodeLimitInput(node_id=state.node_id(node), constraint_type=constraint_type, limit_watts=watts,
                       source_type=LimitSourceType.MANUAL)
        for node, constraint_type, watts in limits
    ])
    return HttpCall.of("topology", "POST", f"{_mg(state)}/node-limits", request)


def layout_limits(state: DepotState) -> list[tuple[str, ConstraintType, int]]:
    return [(p.node.name, ConstraintType.CONSUMPTION_CAP, p.node.limit_watts)
            for p in state.layout.nodes() if p.node.limit_watts is not None]


def load_balancing_control_point(state: DepotState, aggregate_cap_watts: int | None) -> HttpCall:
    """The microgrid-wide LOAD_BALANCING control point; its local_config carries the aggregate cap."""
    config = {} if aggregate_cap_watts is None else {AGGREGATE_CAP_KEY: aggregate_cap_watts}
    body = ControlPointInput(
        node_id=None, capability_type=CapabilityType.LOAD_BALANCING, state=CapabilityState.ENABLED,
        control_source=ControlSource.LOCAL, description="Depot load balancing (simulator)", local_config=config,
    )
    cp = state.control_point_id(LOAD_BALANCING_CONTROL_POINT)
    return HttpCall.of("topology", "POST", f"{_mg(state)}/control-points/{cp}", body)


def forecast_source_control_point(state: DepotState, name: str, node: str) -> HttpCall:
    """An external (OSCP-like) forecast source: an EXTERNAL control point on the node, config referenced."""
    body = ControlPointInput(
        node_id=state.node_id(node), capability_type=CapabilityType.LOAD_BALANCING, state=CapabilityState.ENABLED,
        control_source=ControlSource.EXTERNAL, description=f"Forecast source {name} (simulator)",
        external_config_type=FORECAST_CONFIG_TYPE, external_config_ref=f"oscp:{name}",
    )
    return HttpCall.of("topology", "POST", f"{_mg(state)}/control-points/{state.control_point_id(name)}", body)


def control_point(state: DepotState, name: str, body: ControlPointInput) -> HttpCall:
    return HttpCall.of("topology", "POST", f"{_mg(state)}/control-points/{state.control_point_id(name)}", body)


def status_event(state: DepotState, clock: ScenarioClock, control_point: str, status: str | bool,
                 source_event_ref: str, *, observed_ago_s: float = 0, detail: dict | None = None,
                 via_depot: bool = False) -> HttpCall:
    observed = clock.at(clock.offset_s - observed_ago_s)
    if via_depot:
        depot_body = DepotStatusEventInput(operational_status=status, observed_at=observed,
                                           source_event_ref=source_event_ref, status_detail=detail,
                                           control_point_id=state.control_point_id(control_point))
        return HttpCall.of("topology", "POST", f"/api/depot/{state.depot_id}/microgrid/capability-status-events",
                           depot_body)
    body = StatusEventInput(operational_status=status, observed_at=observed, source_event_ref=source_event_ref,
                            status_detail=detail)
    cp = state.control_point_id(control_point)
    return HttpCall.of("topology", "POST", f"{_mg(state)}/control-points/{cp}/status-events", body)


def read_control_points(state: DepotState) -> HttpCall:
    return HttpCall.of("topology", "GET", f"{_mg(state)}/control-points")


def read_status_history(state: DepotState, control_point: str) -> HttpCall:
    return HttpCall.of("topology", "GET",
                       f"{_mg(state)}/control-points/{state.control_point_id(control_point)}/status-events")


def rebalance(state: DepotState, request_key: str, node: str | None, correlation_id: str) -> HttpCall:
    body = RebalanceRequest(request_key=request_key, node_id=state.node_id(node) if node else None)
    return HttpCall.of("balancing", "POST", f"{_mg(state)}/rebalance", body,
                       headers={"X-Correlation-ID": correlation_id})


def microgrid_status(state: DepotState) -> HttpCall:
    return HttpCall.of("balancing", "GET", f"{_mg(state)}/status")


# ---- tree edits (pure) ---------------------------------------------------------------------------


def apply_edit(state: DepotState, tree: list[TopologyNodeInput], edit: TopologyEdit) -> list[TopologyNodeInput]:
    """The operator's tree with one edit applied; invalid results are intended (the service must refuse)."""
    by_id = {n.node_id: n for n in tree}
    if edit.reparent is not None:
        node, parent = state.node_id(edit.reparent["node"]), state.node_id(edit.reparent["parent"])
        by_id[node] = by_id[node].model_copy(update={"parent_node_id": parent})
    elif edit.detach is not None:
        # Orphan: the node's parent is a node that is not in the tree (detached from the root).
        node = state.node_id(edit.detach)
        by_id[node] = by_id[node].model_copy(update={"parent_node_id": state.ids.of("node", f"gone:{edit.detach}")})
    elif edit.remove is not None:
        del by_id[state.node_id(edit.remove)]
    elif edit.rename is not None:
        node = state.node_id(edit.rename["node"])
        by_id[node] = by_id[node].model_copy(update={"name": edit.rename["to"]})
    elif edit.add is not None:
        name = str(edit.add["name"])
        node_id = state.ids.of("node", name)
        state.node_ids.setdefault(name, node_id)
        parent_name = edit.add.get("parent")
        by_id[node_id] = TopologyNodeInput(
            node_id=node_id, parent_node_id=state.node_id(str(parent_name)) if parent_name else None, name=name,
            node_type=NodeType(edit.add.get("type", NodeType.VIRTUAL)), display_order=int(edit.add.get("order", 99)),
        )
    return sorted(by_id.values(), key=lambda n: str(n.node_id))


def edit_version(state: DepotState, edit: TopologyEdit) -> int:
    return state.version if edit.version == "current" else max(state.version - 1, 0)


def node_inputs(nodes: list[dict]) -> list[TopologyNodeInput]:
    """The operator's copy from a topology read (the tree flattened, service-only fields dropped)."""
    fields = set(TopologyNodeInput.model_fields)
    flat: list[TopologyNodeInput] = []

    def visit(node: dict) -> None:
        flat.append(TopologyNodeInput.model_validate({k: v for k, v in node.items() if k in fields}))
        for child in node.get("children", []):
            visit(child)

    for top in nodes:
        visit(top)
    return sorted(flat, key=lambda n: str(n.node_id))


def microgrid_of(answer_body: dict) -> tuple[UUID, int]:
    """(microgrid_id, version) from any topology write or read answer."""
    result = answer_body.get("result", answer_body)
    microgrid = result["microgrid"]
    return UUID(microgrid["microgrid_id"]), int(microgrid["version"])
