"""Effective demand resolution: measured first, then a deterministic conservative fallback (FR-004).

For each checked scope:

1. ``MEASURED`` when a reading is present, valid and within the freshness threshold
   (``|now - observed_at| <= threshold``; a reading dated further in the future is not trusted).
2. Otherwise ``FALLBACK_DERIVED`` from the node's `FallbackRule`: the larger of the rule's assumed
   demand and the last valid reading raised by the rule's margin. Taking the larger means losing
   freshness never lowers the demand assumed for a node, so it never raises an allocation (NFR-004).
3. No fresh telemetry and no fallback rule: fail safe. The node is assumed to draw the tightest
   consumption or net cap on it or above it (or its last valid reading, if higher), with none of
   that load controllable, so nothing sharing those caps is allocated; the scope is reported in
   ``missing_inputs`` with ``TELEMETRY_INSUFFICIENT``.

Readings only describe consumption (``measured_watts``, gross, of the node's subtree) and, for
POWER_SOURCE nodes, generation (``generation_watts``). Generation that is not fresh counts as zero
against NET_CAP (the safe side); for GENERATION_CAP checks its last valid value is reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from operator import attrgetter
from typing import Any

from contracts.enums import SourceMode


@dataclass(frozen=True, slots=True)
class TelemetryReading:
    node_id: str
    observed_at: datetime
    measured_watts: int = 0
    generation_watts: int = 0
    valid: bool = True


@dataclass(frozen=True, slots=True)
class FallbackRule:
    """How to derive a node's demand when its telemetry is not usable."""

    node_id: str
    assumed_demand_watts: int
    last_known_margin_percent: int = 0


class TelemetryState(StrEnum):
    FRESH = "FRESH"
    STALE = "STALE"
    INVALID = "INVALID"
    MISSING = "MISSING"


class DemandRole(StrEnum):
    """What a resolved value is used for."""

    SCOPE = "SCOPE"  # consumption through a metered node (or an uncontrolled connector)
    CONTROLLED_DRAW = "CONTROLLED_DRAW"  # current draw of an allocated connector, subtracted from meters above it
    GENERATION = "GENERATION"  # local generation offsetting consumption under NET_CAP
    AGGREGATE = "AGGREGATE"  # the whole microgrid


class FallbackBasis(StrEnum):
    FALLBACK_RULE = "FALLBACK_RULE"
    LAST_KNOWN_WITH_MARGIN = "LAST_KNOWN_WITH_MARGIN"
    FAIL_SAFE_TIGHTEST_CAP = "FAIL_SAFE_TIGHTEST_CAP"
    ASSUMED_ZERO = "ASSUMED_ZERO"


@dataclass(frozen=True, slots=True)
class DemandResolution:
    node_id: str | None
    role: DemandRole
    source_mode: SourceMode
    effective_demand_watts: int
    telemetry_state: TelemetryState
    freshness_threshold_seconds: int
    measured_watts: int | None = None
    observed_at: datetime | None = None
    age_seconds: float | None = None
    fallback_basis: FallbackBasis | None = None
    fallback_rule: FallbackRule | None = None
    fail_safe_limit_watts: int | None = None


def telemetry_state(reading: TelemetryReading | None, now: datetime, threshold_seconds: int) -> TelemetryState:
    if reading is None:
        return TelemetryState.MISSING
    if not reading.valid:
        return TelemetryState.INVALID
    age = (now - reading.observed_at).total_seconds()
    return TelemetryState.FRESH if -threshold_seconds <= age <= threshold_seconds else TelemetryState.STALE


def resolve_scope_demand(
    node_id: str,
    reading: TelemetryReading | None,
    rule: FallbackRule | None,
    now: datetime,
    threshold_seconds: int,
    fail_safe_limit_watts: int | None,
) -> DemandResolution:
    """Consumption demand of one metered scope (a node with a reading or a fallback rule)."""
    if reading is None:
        state, measured, observed, age = _MISSING, None, None, None
    else:
        # `telemetry_state`, with the age worked out once (this runs for every metered node).
        measured, observed = reading.measured_watts, reading.observed_at
        age = (now - observed).total_seconds()
        if not reading.valid:
            state = _INVALID
        elif -threshold_seconds <= age <= threshold_seconds:
            return measured_scope(node_id, reading, now, threshold_seconds)
        else:
            state = _STALE
    last_known = max(0, measured) if state is TelemetryState.STALE and measured is not None else 0
    if rule is not None:
        raised = -((-last_known * (100 + rule.last_known_margin_percent)) // 100)  # ceiling: never round down
        if raised > rule.assumed_demand_watts:
            value, basis = raised, FallbackBasis.LAST_KNOWN_WITH_MARGIN
        else:
            value, basis = max(0, rule.assumed_demand_watts), FallbackBasis.FALLBACK_RULE
        return DemandResolution(
            node_id,
            DemandRole.SCOPE,
            SourceMode.FALLBACK_DERIVED,
            value,
            state,
            threshold_seconds,
            measured,
            observed,
            age,
            basis,
            rule,
        )
    value = max(last_known, fail_safe_limit_watts or 0)
    return DemandResolution(
        node_id,
        DemandRole.SCOPE,
        SourceMode.FALLBACK_DERIVED,
        value,
        state,
        threshold_seconds,
        measured,
        observed,
        age,
        FallbackBasis.FAIL_SAFE_TIGHTEST_CAP,
        None,
        fail_safe_limit_watts,
    )


def fresh_scope_demand(reading: TelemetryReading | None, now: datetime, threshold_seconds: int) -> int | None:
    """A scope's demand when its reading is fresh (valid, ``|now - observed_at| <= threshold``): its measured
    watts, at least 0, whatever its fallback rule; None otherwise (`resolve_scope_demand` decides)."""
    if reading is None or not reading.valid:
        return None
    age = (now - reading.observed_at).total_seconds()
    if -threshold_seconds <= age <= threshold_seconds:
        return max(0, reading.measured_watts or 0)
    return None


def measured_scope(node_id: str, reading: TelemetryReading, now: datetime, threshold_seconds: int) -> DemandResolution:
    """The resolution of a scope whose reading is fresh (see `fresh_scope_demand`): MEASURED."""
    return DemandResolution(*measured_scope_fields(node_id, reading, now, threshold_seconds))


def measured_scope_fields(node_id: str, reading: TelemetryReading, now: datetime, threshold_seconds: int) -> tuple:
    """`measured_scope`'s record as its field values, in field order (no record made)."""
    measured, observed = reading.measured_watts, reading.observed_at
    age = (now - observed).total_seconds()
    effective = max(0, measured or 0)
    return node_id, _SCOPE, _MEASURED, effective, _FRESH, threshold_seconds, measured, observed, age, None, None, None


_RESOLUTION_FIELDS = tuple(f.name for f in fields(DemandResolution))
_resolution_values = attrgetter(*_RESOLUTION_FIELDS)
FreshScope = tuple[str, TelemetryReading]  # a scope whose reading is fresh, its record not made yet


def resolution_columns(
    resolutions: Sequence[DemandResolution | FreshScope], now: datetime, threshold_seconds: int
) -> tuple[list[Any], ...]:
    """The resolutions' field values, one list per `DemandResolution` field in field order: a record's own,
    a fresh scope's as `measured_scope` makes it. A writer of the records' JSON or of an event reads these;
    a fleet depot has a hundred or more scopes a cycle, and their records were made and read for both."""
    rows = [
        _resolution_values(r) if type(r) is DemandResolution else measured_scope_fields(*r, now, threshold_seconds)
        for r in resolutions
    ]
    if not rows:
        return tuple([] for _ in _RESOLUTION_FIELDS)
    return tuple(map(list, zip(*rows, strict=True)))


_MISSING, _INVALID, _FRESH, _STALE = (
    TelemetryState.MISSING,
    TelemetryState.INVALID,
    TelemetryState.FRESH,
    TelemetryState.STALE,
)
_SCOPE, _MEASURED = DemandRole.SCOPE, SourceMode.MEASURED


def resolve_reading_value(
    node_id: str,
    role: DemandRole,
    value: int,
    reading: TelemetryReading,
    now: datetime,
    threshold_seconds: int,
) -> DemandResolution:
    """A controlled draw or a generation value: used when fresh, counted as zero otherwise (the safe side)."""
    state = telemetry_state(reading, now, threshold_seconds)
    age = (now - reading.observed_at).total_seconds()
    if state is TelemetryState.FRESH:
        return DemandResolution(
            node_id, role, SourceMode.MEASURED, max(0, value), state, threshold_seconds, value, reading.observed_at, age
        )
    return DemandResolution(
        node_id,
        role,
        SourceMode.FALLBACK_DERIVED,
        0,
        state,
        threshold_seconds,
        value,
        reading.observed_at,
        age,
        FallbackBasis.ASSUMED_ZERO,
    )
