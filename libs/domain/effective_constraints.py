"""Effective constraints: per node and constraint type, the most restrictive applicable limit.

Candidates for one node and type: the envelope side (`circuit_capacity.resolve_envelope_side`:
forecast / fallback / gap / fail-safe, then TOU limits and overrides) and every ACTIVE baseline
NodeLimit. The aggregate caps apply to the microgrid as a whole (node_id None). Ties between equal
candidates break by `ConstraintSource` order then ref, so the binding provenance is stable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from contracts.enums import AssetType, ConstraintType, LimitSourceType, LimitStatus, NodeType
from libs.domain.circuit_capacity import (
    CircuitCapacity,
    CircuitCapacityResolution,
    ForecastBasis,
    ForecastSource,
    GapPolicy,
    forecast_health_for,
    resolve_envelope_side,
)
from libs.domain.envelopes import OperatingEnvelope
from libs.domain.limits import AggregateCap, ConstraintCandidate, ConstraintSource, NodeLimit
from libs.domain.memo import MicrogridMemo
from libs.domain.topology import MicrogridNode


@dataclass(frozen=True, slots=True)
class EffectiveConstraint:
    """The most restrictive candidate for one node (None: the aggregate) and constraint type."""

    node_id: str | None
    constraint_type: ConstraintType
    limit_watts: int
    binding: ConstraintCandidate
    candidates: tuple[ConstraintCandidate, ...]
    forecast_basis: ForecastBasis | None = None


@dataclass(frozen=True, slots=True)
class EffectiveConstraintSet:
    by_node: dict[tuple[str, ConstraintType], EffectiveConstraint]
    aggregate: dict[ConstraintType, EffectiveConstraint]
    circuits: tuple[CircuitCapacityResolution, ...]
    # How ``by_node`` was made, for a caller that derives something from it per set of limits: the
    # constraints the node limits alone decide (the same dict while the limits are the same), and the keys
    # decided this call instead (envelopes, forecasts, circuits), whose constraints are ``by_node``'s.
    baseline: Mapping[tuple[str, ConstraintType], EffectiveConstraint] = field(default_factory=dict)
    decided_here: frozenset[tuple[str, ConstraintType]] = frozenset()


def managed_circuit_id(node: MicrogridNode) -> str | None:
    """The feeder circuit a first-level GRID_CONNECTION node maps to, if it is a managed node."""
    if (
        node.parent_node_id is None
        and node.node_type is NodeType.GRID_CONNECTION
        and node.attached_asset_type is AssetType.CIRCUIT
    ):
        return node.attached_asset_id
    return None


def resolve_effective_constraints(
    *,
    microgrid_id: str,
    nodes: dict[str, MicrogridNode],
    node_limits: Iterable[NodeLimit],
    envelopes: Iterable[OperatingEnvelope],
    forecast_sources: Iterable[ForecastSource],
    circuit_capacities: Iterable[CircuitCapacity],
    aggregate_caps: Iterable[AggregateCap],
    now: datetime,
    gap_policy: GapPolicy = GapPolicy.DEFAULT_CAPACITY,
    grid_connections: Iterable[MicrogridNode] | None = None,
) -> EffectiveConstraintSet:
    """``grid_connections``: the first-level nodes, when the caller has them (the only ones a feeder
    circuit can manage); every node is looked at otherwise."""
    limits_by, baseline_only = _baseline(microgrid_id, nodes, node_limits)
    envs_by: dict[tuple[str, ConstraintType], list[OperatingEnvelope]] = {}
    for env in envelopes:
        if env.microgrid_id == microgrid_id and env.node_id in nodes and env.is_live:
            envs_by.setdefault((env.node_id, env.constraint_type), []).append(env)
    sources = {s.control_point_id: s for s in forecast_sources}
    sources_by_node: dict[str, list[ForecastSource]] = {}
    for source in sources.values():
        if source.node_id is not None:
            sources_by_node.setdefault(source.node_id, []).append(source)
    capacities = {c.circuit_id: c for c in circuit_capacities}
    managed: dict[str, CircuitCapacity] = {}
    if capacities:
        for node in nodes.values() if grid_connections is None else grid_connections:
            circuit_id = managed_circuit_id(node)
            if circuit_id is not None and circuit_id in capacities:
                managed[node.node_id] = capacities[circuit_id]

    keys = set(envs_by)
    keys.update((n, ConstraintType.CONSUMPTION_CAP) for n in managed)
    keys.update((n, ConstraintType.CONSUMPTION_CAP) for n in sources_by_node if n in nodes)
    # Keys with only baseline limits were resolved once per set of limits (`_baseline`): taken as they are.
    by_node = {key: c for key, c in baseline_only.items() if key not in keys} if keys else dict(baseline_only)
    circuits: list[CircuitCapacityResolution] = []
    for key in sorted(keys):
        node_id, constraint_type = key
        baseline = limits_by.get(key, [])
        candidates = [
            ConstraintCandidate(ConstraintSource.NODE_LIMIT, x.node_limit_id, x.limit_watts) for x in baseline
        ]
        basis: ForecastBasis | None = None
        envs = envs_by.get(key, [])
        circuit = managed.get(node_id) if constraint_type is ConstraintType.CONSUMPTION_CAP else None
        if not envs and circuit is None and node_id not in sources_by_node:
            # Only baseline limits: the common case, kept cheap.
            if len(candidates) == 1:
                only = candidates[0]
                by_node[key] = EffectiveConstraint(node_id, constraint_type, only.limit_watts, only, (only,))
            elif candidates:
                by_node[key] = _most_restrictive(node_id, constraint_type, candidates, None)  # type: ignore[assignment]
            continue
        health, health_ref = forecast_health_for(node_id, constraint_type, envs, sources, sources_by_node)
        if envs or circuit is not None or health is not None:
            if circuit is not None:
                default: ConstraintCandidate | None = ConstraintCandidate(
                    ConstraintSource.CIRCUIT_DEFAULT, circuit.circuit_id, circuit.default_capacity_watts
                )
                fail_safe = ConstraintCandidate(
                    ConstraintSource.CIRCUIT_FAIL_SAFE, circuit.circuit_id, circuit.fail_safe_capacity_watts
                )
            else:
                default = None
                fail_safe = _node_fail_safe(node_id, baseline, health_ref)
            side = resolve_envelope_side(
                node_envelopes=envs, health=health, default=default, fail_safe=fail_safe, now=now, gap_policy=gap_policy
            )
            basis = side.forecast_basis
            candidates.extend(side.candidates)
            if circuit is not None:
                circuits.append(
                    CircuitCapacityResolution(
                        circuit_id=circuit.circuit_id,
                        node_id=node_id,
                        effective_capacity_watts=side.candidates[0].limit_watts,
                        forecast_basis=side.forecast_basis,
                        forecast_health=side.forecast_health,
                        binding=side.candidates[0],
                        candidates=side.candidates,
                    )
                )
        constraint = _most_restrictive(node_id, constraint_type, candidates, basis)
        if constraint is not None:
            by_node[key] = constraint
    aggregate: dict[ConstraintType, EffectiveConstraint] = {}
    for constraint_type in ConstraintType:
        caps = [
            ConstraintCandidate(ConstraintSource.AGGREGATE_CAP, c.control_point_id, c.limit_watts)
            for c in aggregate_caps
            if c.constraint_type is constraint_type
        ]
        constraint = _most_restrictive(None, constraint_type, caps, None)
        if constraint is not None:
            aggregate[constraint_type] = constraint
    return EffectiveConstraintSet(by_node, aggregate, tuple(circuits), baseline_only, frozenset(keys))


_BaselineKey = tuple[str, ConstraintType]
# Per microgrid, bounded by the nodes kept (memo.py): as many microgrids as their compiled topologies.
_BASELINE: MicrogridMemo[str, tuple[object, object, dict, dict]] = MicrogridMemo()


def _baseline(
    microgrid_id: str, nodes: dict[str, MicrogridNode], node_limits: Iterable[NodeLimit]
) -> tuple[dict[_BaselineKey, list[NodeLimit]], dict[_BaselineKey, EffectiveConstraint]]:
    """The ACTIVE limits by node and type, and the effective constraint of every key they alone decide.

    A memo, not state (as `topology.compiled_topology`): a pure function of its arguments, reused
    while the same microgrid comes with the very same limits tuple and node map (both immutable;
    the node map is the compiled topology's), so a cycle with unchanged limits does not redo them.
    """
    hit = _BASELINE.get(microgrid_id)
    if hit is not None and hit[0] is node_limits and hit[1] is nodes:
        return hit[2], hit[3]
    limits_by: dict[_BaselineKey, list[NodeLimit]] = {}
    for limit in node_limits:
        if limit.status is LimitStatus.ACTIVE and limit.microgrid_id == microgrid_id and limit.node_id in nodes:
            limits_by.setdefault((limit.node_id, limit.constraint_type), []).append(limit)
    decided: dict[_BaselineKey, EffectiveConstraint] = {}
    for key, baseline in limits_by.items():
        node_id, constraint_type = key
        candidates = [
            ConstraintCandidate(ConstraintSource.NODE_LIMIT, x.node_limit_id, x.limit_watts) for x in baseline
        ]
        if len(candidates) == 1:
            only = candidates[0]
            decided[key] = EffectiveConstraint(node_id, constraint_type, only.limit_watts, only, (only,))
        else:
            decided[key] = _most_restrictive(node_id, constraint_type, candidates, None)  # type: ignore[assignment]
    if isinstance(node_limits, tuple):
        _BASELINE.put(microgrid_id, (node_limits, nodes, limits_by, decided), len(nodes))
    return limits_by, decided


def _node_fail_safe(node_id: str, baseline: list[NodeLimit], health_ref: str | None) -> ConstraintCandidate:
    fail_safe = [x for x in baseline if x.source_type is LimitSourceType.FAIL_SAFE]
    if fail_safe:
        best = min(fail_safe, key=lambda x: (x.limit_watts, x.node_limit_id))
        return ConstraintCandidate(ConstraintSource.NODE_FAIL_SAFE, best.node_limit_id, best.limit_watts)
    # Nothing safe is configured: the unhealthy forecast source is the reason for 0 W.
    return ConstraintCandidate(ConstraintSource.NODE_FAIL_SAFE, health_ref or node_id, 0)


def _most_restrictive(
    node_id: str | None,
    constraint_type: ConstraintType,
    candidates: list[ConstraintCandidate],
    basis: ForecastBasis | None,
) -> EffectiveConstraint | None:
    if not candidates:
        return None
    ordered = tuple(sorted(candidates, key=ConstraintCandidate.sort_key))
    return EffectiveConstraint(node_id, constraint_type, ordered[0].limit_watts, ordered[0], ordered, basis)
