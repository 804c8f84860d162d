"""Baseline node limits, the aggregate cap, and the provenance of every effective constraint."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from contracts.enums import ConstraintType, LimitSourceType, LimitStatus


@dataclass(frozen=True, slots=True)
class NodeLimit:
    node_limit_id: str
    microgrid_id: str
    node_id: str
    constraint_type: ConstraintType
    limit_watts: int
    source_type: LimitSourceType
    status: LimitStatus = LimitStatus.ACTIVE
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AggregateCap:
    """The microgrid-wide cap across all grid connections (from the LOAD_BALANCING control point)."""

    control_point_id: str
    limit_watts: int
    constraint_type: ConstraintType = ConstraintType.CONSUMPTION_CAP


# Keys of the LOAD_BALANCING control point's local_config that carry aggregate caps.
AGGREGATE_CAP_CONFIG_KEYS: dict[str, ConstraintType] = {
    "aggregate_cap_watts": ConstraintType.CONSUMPTION_CAP,
    "aggregate_net_cap_watts": ConstraintType.NET_CAP,
    "aggregate_generation_cap_watts": ConstraintType.GENERATION_CAP,
}


def aggregate_caps_from_local_config(
    control_point_id: str, local_config: Mapping[str, Any] | None
) -> tuple[AggregateCap, ...]:
    """Read the aggregate caps a LOAD_BALANCING control point configures (absent keys: no cap)."""
    config = local_config or {}
    caps = []
    for key, constraint_type in AGGREGATE_CAP_CONFIG_KEYS.items():
        value = config.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"local_config.{key} must be a non-negative integer number of watts")
        caps.append(AggregateCap(control_point_id, value, constraint_type))
    return tuple(caps)


class ConstraintSource(StrEnum):
    """Where a candidate limit comes from; also the tie-break order when two candidates are equal."""

    OVERRIDE = "OVERRIDE"
    TOU_LIMIT = "TOU_LIMIT"
    PRIMARY_FORECAST = "PRIMARY_FORECAST"
    FALLBACK_FORECAST = "FALLBACK_FORECAST"
    CIRCUIT_FAIL_SAFE = "CIRCUIT_FAIL_SAFE"
    NODE_FAIL_SAFE = "NODE_FAIL_SAFE"
    CIRCUIT_DEFAULT = "CIRCUIT_DEFAULT"
    NODE_LIMIT = "NODE_LIMIT"
    AGGREGATE_CAP = "AGGREGATE_CAP"


_SOURCE_RANK = {s: i for i, s in enumerate(ConstraintSource)}


@dataclass(frozen=True, slots=True)
class ConstraintCandidate:
    """One limit that applies: ``ref`` is the node_limit_id, envelope_id, circuit_id or control_point_id."""

    source: ConstraintSource
    ref: str
    limit_watts: int

    def sort_key(self) -> tuple[int, int, str]:
        return (self.limit_watts, _SOURCE_RANK[self.source], self.ref)
