"""Hypothesis strategies: random depots (trees, limits, envelopes, telemetry, demand) and allocation problems."""

from __future__ import annotations

from hypothesis import strategies as st

from contracts.enums import ConstraintType, EnvelopeType, ForecastSourceHealth, NodeStatus, NodeType
from libs.domain.allocation import AllocationRequest
from libs.domain.circuit_capacity import CircuitCapacity, ForecastSource
from libs.domain.cycle_inputs import CycleInputs
from libs.domain.limits import AggregateCap
from tests.unit.domain.scenario import MICROGRID, NOW, demand, envelope, grid_connection, limit, node, reading, rule

THRESHOLD = 60
# What may be drawn under each parent type (the tree rules of `libs.domain.topology`), connectors often.
CHILD_TYPES = {
    NodeType.GRID_CONNECTION: [
        NodeType.CIRCUIT,
        NodeType.CHARGE_POINT,
        NodeType.CHARGE_POINT,
        NodeType.POWER_SOURCE,
        NodeType.VIRTUAL,
    ],
    NodeType.CIRCUIT: [
        NodeType.CIRCUIT,
        NodeType.CHARGE_POINT,
        NodeType.CHARGE_POINT,
        NodeType.POWER_SOURCE,
        NodeType.VIRTUAL,
    ],
    NodeType.CHARGE_POINT: [
        NodeType.CONNECTOR,
        NodeType.CONNECTOR,
        NodeType.CONNECTOR,
        NodeType.POWER_SOURCE,
        NodeType.VIRTUAL,
    ],
    NodeType.POWER_SOURCE: [NodeType.POWER_SOURCE, NodeType.VIRTUAL],
    NodeType.VIRTUAL: [NodeType.POWER_SOURCE, NodeType.VIRTUAL],
}


@st.composite
def depots(draw, max_nodes: int = 16, minimums: bool = True, priorities: bool = True) -> CycleInputs:  # noqa: ANN001
    gcs = draw(st.integers(1, 2))
    nodes = [grid_connection(f"gc{i}", f"feeder-{i}") for i in range(gcs)]
    parents = {n.node_id: n.node_type for n in nodes}
    for i in range(draw(st.integers(1, max_nodes))):
        parent = draw(st.sampled_from(list(parents)))
        node_type = draw(st.sampled_from(CHILD_TYPES[parents[parent]]))
        status = draw(st.sampled_from([NodeStatus.ACTIVE] * 6 + [NodeStatus.MAINTENANCE]))
        node_id = f"n{i:02d}"
        nodes.append(node(node_id, parent, node_type, status=status))
        if node_type is not NodeType.CONNECTOR:
            parents[node_id] = node_type
    watts = st.integers(0, 60_000)
    limits = []
    envelopes = []
    for n in nodes:
        if draw(st.integers(0, 2)) == 0:
            limits.append(limit(n.node_id, draw(watts)))
        if draw(st.integers(0, 6)) == 0:
            limits.append(limit(n.node_id, draw(watts), ConstraintType.NET_CAP))
        if draw(st.integers(0, 5)) == 0:
            kind = draw(st.sampled_from([EnvelopeType.TOU_LIMIT, EnvelopeType.OVERRIDE, EnvelopeType.FORECAST]))
            start = draw(st.integers(-20, 10))
            envelopes.append(
                envelope(f"env-{n.node_id}", n.node_id, kind, (start, start + 15, draw(watts)), origin="cp-fc")
            )
    health = draw(st.sampled_from(list(ForecastSourceHealth)))
    readings, rules, demands = [], [], []
    for n in nodes:
        if draw(st.integers(0, 2)):
            readings.append(
                reading(
                    n.node_id,
                    draw(st.integers(0, 30_000)),
                    age_s=draw(st.sampled_from([0, 10, 59, 61, 600])),
                    generation=draw(st.integers(0, 20_000)) if n.node_type is NodeType.POWER_SOURCE else 0,
                    valid=draw(st.integers(0, 8)) > 0,
                )
            )
        if draw(st.integers(0, 2)) == 0:
            rules.append(rule(n.node_id, draw(st.integers(0, 20_000)), draw(st.sampled_from([0, 10]))))
        if n.node_type is NodeType.CONNECTOR:
            requested = draw(st.integers(0, 32_000))
            minimum = draw(st.sampled_from([0, 0, 1_400, 4_200, 11_000])) if minimums else 0
            priority = draw(st.integers(0, 1)) if priorities else 0
            demands.append(demand(n.node_id, requested, minimum, priority=priority, weight=draw(st.integers(1, 3))))
    aggregate = (AggregateCap("cp-lb", draw(watts)),) if draw(st.booleans()) else ()
    scope = draw(st.sampled_from([None, None, None, *[n.node_id for n in nodes]]))
    return CycleInputs(
        cycle_id="cycle-p",
        microgrid=MICROGRID,
        nodes=tuple(nodes),
        now=NOW,
        scope_node_id=scope,
        node_limits=tuple(limits),
        envelopes=tuple(envelopes),
        forecast_sources=(ForecastSource("cp-fc", health),),
        circuit_capacities=tuple(
            CircuitCapacity(f"feeder-{i}", draw(watts), draw(watts)) for i in range(gcs) if draw(st.booleans())
        ),
        aggregate_caps=aggregate,
        telemetry=tuple(readings),
        connector_demands=tuple(demands),
        fallback_rules=tuple(rules),
        freshness_threshold_seconds=THRESHOLD,
        rotation=draw(st.integers(0, 5)),
    )


@st.composite
def allocation_problems(draw, max_nodes: int = 10, max_requests: int = 6, minimums: bool = False):  # noqa: ANN001
    """A random tree in preorder with caps, and requests on its nodes (single priority class)."""
    n = draw(st.integers(1, max_nodes))
    parent = [-1]
    for i in range(1, n):
        parent.append(draw(st.integers(0, i - 1)))
    # Renumber into preorder so every subtree is a contiguous range.
    children: dict[int, list[int]] = {}
    for i in range(1, n):
        children.setdefault(parent[i], []).append(i)
    order, stack = [], [0]
    while stack:
        i = stack.pop()
        order.append(i)
        stack.extend(reversed(children.get(i, [])))
    pos = {old: new for new, old in enumerate(order)}
    pre_parent = [-1] + [pos[parent[old]] for old in order[1:]]
    end = list(range(1, n + 1))
    for i in range(n - 1, 0, -1):
        end[pre_parent[i]] = max(end[pre_parent[i]], end[i])
    headroom = [draw(st.one_of(st.none(), st.integers(0, 50_000))) for _ in range(n)]
    requests = [
        AllocationRequest(
            node=draw(st.integers(0, n - 1)),
            requested_watts=draw(st.integers(0, 30_000)),
            min_watts=draw(st.sampled_from([0, 0, 2_000, 6_000])) if minimums else 0,
            weight=draw(st.integers(1, 4)),
            rank=r,
        )
        for r in range(draw(st.integers(1, max_requests)))
    ]
    return pre_parent, end, headroom, requests


def amplifying_problem(
    charge_points: int,
    *,
    point_cap: int = 5,
    connectors: int = 3,
    asking: int = 10,
    big: int = 1_000,
    spare: int = 100,
):  # noqa: ANN201
    """The shape that amplified the old rounding drift: a grid connection capped at ``spare`` W above
    what its charge points may draw, charge points whose cap does not divide among their connectors,
    and one big connector beside them that takes whatever the charge points leave."""
    parent, headroom, requests = [-1], [spare + point_cap * charge_points], []
    for _ in range(charge_points):
        cp = len(parent)
        parent.append(0)
        headroom.append(point_cap)
        for _ in range(connectors):
            requests.append(AllocationRequest(node=len(parent), requested_watts=asking, rank=len(requests)))
            parent.append(cp)
            headroom.append(None)
    requests.append(AllocationRequest(node=len(parent), requested_watts=big, rank=len(requests)))
    parent.append(0)
    headroom.append(None)
    end = list(range(1, len(parent) + 1))
    for i in range(len(parent) - 1, 0, -1):
        end[parent[i]] = max(end[parent[i]], end[i])
    return parent, end, headroom, requests


@st.composite
def amplifying_problems(draw, charge_points: int):  # noqa: ANN001
    """`amplifying_problem` with drawn caps and requests, at a fixed number of charge points."""
    connectors = draw(st.integers(2, 4))
    point_cap = draw(st.integers(connectors + 1, 40_000))
    return amplifying_problem(
        charge_points,
        point_cap=point_cap,
        connectors=connectors,
        asking=draw(st.integers(point_cap // connectors + 1, 50_000)),
        big=draw(st.integers(1, 200_000)),
        spare=draw(st.integers(0, 100_000)),
    )
