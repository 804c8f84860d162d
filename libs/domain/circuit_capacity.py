"""The envelope side of a node's constraint, and the effective feeder-circuit capacity (FR-028..FR-031).

One resolution serves every node (ARCHITECTURE.md section 9):

1. Forecast side, where the node has a forecast source at all. Healthy source: the lowest active
   primary FORECAST block; no active block is a gap, filled by the gap policy (default: the
   default capacity). Stale or offline source: the lowest active FALLBACK block, else the
   fail-safe capacity (FR-030).
2. Active TOU_LIMIT and OVERRIDE envelopes can only tighten; the most restrictive value wins.

For a managed GRID_CONNECTION node the default and fail-safe capacities are its feeder circuit's,
and the result is the effective circuit capacity (`resolve_effective_circuit_capacity`, wrapped
by services as ``get_effective_circuit_capacity(circuit_id, occurred_at)``). Elsewhere the default
is "no extra limit" (the baseline NodeLimit governs) and the fail-safe is the node's FAIL_SAFE
NodeLimit, or 0 W when it has none: with the forecast gone and nothing safe known, nothing may be
drawn (NFR-004).

A node has a forecast source when a live FORECAST envelope targets it, or (for CONSUMPTION_CAP) a
`ForecastSource` names it. The source health is the worst of those sources'; a source whose
health is unknown counts as OFFLINE, and a forecast with no origin control point has no source to
go stale and counts as HEALTHY.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from contracts.enums import ConstraintType, EnvelopeType, ForecastSourceHealth
from libs.domain.envelopes import OperatingEnvelope, active_limits
from libs.domain.forecast_health import HEALTH_RANK
from libs.domain.limits import ConstraintCandidate, ConstraintSource


class GapPolicy(StrEnum):
    """What fills a gap in a healthy primary forecast (FR-031)."""

    DEFAULT_CAPACITY = "DEFAULT_CAPACITY"
    FAIL_SAFE_CAPACITY = "FAIL_SAFE_CAPACITY"


class ForecastBasis(StrEnum):
    NO_FORECAST_SOURCE = "NO_FORECAST_SOURCE"
    PRIMARY_FORECAST = "PRIMARY_FORECAST"
    GAP_POLICY = "GAP_POLICY"
    FALLBACK_FORECAST = "FALLBACK_FORECAST"
    FAIL_SAFE = "FAIL_SAFE"


@dataclass(frozen=True, slots=True)
class ForecastSource:
    """A forecast-originating control point and its health (capability status + forecast age)."""

    control_point_id: str
    health: ForecastSourceHealth
    node_id: str | None = None


@dataclass(frozen=True, slots=True)
class CircuitCapacity:
    """A legacy feeder circuit's configured capacities (from the legacy circuit registry)."""

    circuit_id: str
    default_capacity_watts: int
    fail_safe_capacity_watts: int


@dataclass(frozen=True, slots=True)
class EnvelopeSideResolution:
    forecast_basis: ForecastBasis
    forecast_health: ForecastSourceHealth | None
    candidates: tuple[ConstraintCandidate, ...]


# The constraint sources that are envelopes (their candidate's ref is the envelope id).
ENVELOPE_SOURCES = frozenset(
    {
        ConstraintSource.PRIMARY_FORECAST,
        ConstraintSource.FALLBACK_FORECAST,
        ConstraintSource.TOU_LIMIT,
        ConstraintSource.OVERRIDE,
    }
)


@dataclass(frozen=True, slots=True)
class CircuitCapacityResolution:
    circuit_id: str
    node_id: str
    effective_capacity_watts: int
    forecast_basis: ForecastBasis
    forecast_health: ForecastSourceHealth | None
    binding: ConstraintCandidate
    candidates: tuple[ConstraintCandidate, ...]

    @property
    def basis(self) -> str:
        """Why the value is what it is: the tightening envelope type, else how the forecast side was resolved."""
        if self.binding.source in (ConstraintSource.TOU_LIMIT, ConstraintSource.OVERRIDE):
            return self.binding.source.value
        if self.forecast_basis is ForecastBasis.NO_FORECAST_SOURCE:
            return ConstraintSource.CIRCUIT_DEFAULT.value
        return self.forecast_basis.value

    @property
    def binding_envelope_id(self) -> str | None:
        """The envelope that sets the value; None when the circuit's own default or fail-safe does."""
        return self.binding.ref if self.binding.source in ENVELOPE_SOURCES else None

    @property
    def explanation(self) -> str:
        health = self.forecast_health.value if self.forecast_health else "none"
        return (
            f"circuit {self.circuit_id}: {self.effective_capacity_watts} W from {self.binding.source.value} "
            f"{self.binding.ref} (forecast source {health}, forecast side {self.forecast_basis.value})"
        )


def forecast_health_for(
    node_id: str,
    constraint_type: ConstraintType,
    node_envelopes: Iterable[OperatingEnvelope],
    sources: Mapping[str, ForecastSource],
    sources_by_node: Mapping[str, list[ForecastSource]] | None = None,
) -> tuple[ForecastSourceHealth | None, str | None]:
    """The worst health of the node's forecast sources and the control point that has it (None: no source)."""
    seen: dict[str, ForecastSourceHealth] = {}
    for env in node_envelopes:
        if env.envelope_type is EnvelopeType.FORECAST and env.is_live and env.constraint_type is constraint_type:
            cp = env.origin_control_point_id
            if cp is None:
                seen.setdefault(f"envelope:{env.envelope_id}", ForecastSourceHealth.HEALTHY)
            else:
                source = sources.get(cp)
                seen[cp] = source.health if source else ForecastSourceHealth.OFFLINE
    if constraint_type is ConstraintType.CONSUMPTION_CAP:
        bound = (
            sources_by_node.get(node_id, [])
            if sources_by_node is not None
            else [s for s in sources.values() if s.node_id == node_id]
        )
        for source in bound:
            seen[source.control_point_id] = source.health
    if not seen:
        return None, None
    ref, health = max(seen.items(), key=lambda kv: (HEALTH_RANK[kv[1]], kv[0]))
    return health, ref


def resolve_envelope_side(
    *,
    node_envelopes: Iterable[OperatingEnvelope],
    health: ForecastSourceHealth | None,
    default: ConstraintCandidate | None,
    fail_safe: ConstraintCandidate,
    now: datetime,
    gap_policy: GapPolicy = GapPolicy.DEFAULT_CAPACITY,
) -> EnvelopeSideResolution:
    """Forecast side then TOU/override candidates for one node and constraint type.

    ``node_envelopes`` are that node's envelopes of that constraint type.
    """
    envs = list(node_envelopes)
    candidates: list[ConstraintCandidate] = []
    if health is None:
        basis = ForecastBasis.NO_FORECAST_SOURCE
        if default is not None:
            candidates.append(default)
    elif health is ForecastSourceHealth.HEALTHY:
        primary = active_limits(envs, EnvelopeType.FORECAST, now)
        if primary:
            basis = ForecastBasis.PRIMARY_FORECAST
            candidates.append(
                ConstraintCandidate(ConstraintSource.PRIMARY_FORECAST, primary[0].envelope_id, primary[0].limit_watts)
            )
        else:
            basis = ForecastBasis.GAP_POLICY
            gap_value = fail_safe if gap_policy is GapPolicy.FAIL_SAFE_CAPACITY else default
            if gap_value is not None:
                candidates.append(gap_value)
    else:
        fallback = active_limits(envs, EnvelopeType.FALLBACK, now)
        if fallback:
            basis = ForecastBasis.FALLBACK_FORECAST
            candidates.append(
                ConstraintCandidate(
                    ConstraintSource.FALLBACK_FORECAST, fallback[0].envelope_id, fallback[0].limit_watts
                )
            )
        else:
            basis = ForecastBasis.FAIL_SAFE
            candidates.append(fail_safe)
    for envelope_type, source in (
        (EnvelopeType.TOU_LIMIT, ConstraintSource.TOU_LIMIT),
        (EnvelopeType.OVERRIDE, ConstraintSource.OVERRIDE),
    ):
        candidates.extend(
            ConstraintCandidate(source, a.envelope_id, a.limit_watts) for a in active_limits(envs, envelope_type, now)
        )
    return EnvelopeSideResolution(basis, health, tuple(sorted(candidates, key=ConstraintCandidate.sort_key)))


def resolve_effective_circuit_capacity(
    *,
    circuit_id: str,
    node_id: str,
    envelopes: Iterable[OperatingEnvelope],
    forecast_sources: Iterable[ForecastSource],
    default_capacity_watts: int,
    fail_safe_capacity_watts: int,
    now: datetime,
    gap_policy: GapPolicy = GapPolicy.DEFAULT_CAPACITY,
) -> CircuitCapacityResolution:
    """The effective capacity of the feeder circuit mapped to managed GRID_CONNECTION ``node_id`` at ``now``.

    Pure: the envelope state, forecast-source health and the circuit's default and fail-safe
    capacities are all passed in. ``envelopes`` may hold any envelopes; only this node's live
    CONSUMPTION_CAP ones count.
    """
    node_envs = [e for e in envelopes if e.node_id == node_id and e.constraint_type is ConstraintType.CONSUMPTION_CAP]
    sources = {s.control_point_id: s for s in forecast_sources}
    health, _ = forecast_health_for(node_id, ConstraintType.CONSUMPTION_CAP, node_envs, sources)
    side = resolve_envelope_side(
        node_envelopes=node_envs,
        health=health,
        default=ConstraintCandidate(ConstraintSource.CIRCUIT_DEFAULT, circuit_id, default_capacity_watts),
        fail_safe=ConstraintCandidate(ConstraintSource.CIRCUIT_FAIL_SAFE, circuit_id, fail_safe_capacity_watts),
        now=now,
        gap_policy=gap_policy,
    )
    binding = side.candidates[0]
    return CircuitCapacityResolution(
        circuit_id=circuit_id,
        node_id=node_id,
        effective_capacity_watts=binding.limit_watts,
        forecast_basis=side.forecast_basis,
        forecast_health=side.forecast_health,
        binding=binding,
        candidates=side.candidates,
    )
