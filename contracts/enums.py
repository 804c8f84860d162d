"""The spec's enumerations, in its own words. One definition, used by the domain and every service."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class NodeType(StrEnum):
    GRID_CONNECTION = "GRID_CONNECTION"
    CIRCUIT = "CIRCUIT"
    CHARGE_POINT = "CHARGE_POINT"
    CONNECTOR = "CONNECTOR"
    POWER_SOURCE = "POWER_SOURCE"
    VIRTUAL = "VIRTUAL"


class AssetType(StrEnum):
    CIRCUIT = "CIRCUIT"
    CHARGE_POINT = "CHARGE_POINT"
    CONNECTOR = "CONNECTOR"
    POWER_SOURCE = "POWER_SOURCE"


class NodeStatus(StrEnum):
    ACTIVE = "ACTIVE"
    MAINTENANCE = "MAINTENANCE"
    UNAVAILABLE = "UNAVAILABLE"


class ConstraintType(StrEnum):
    CONSUMPTION_CAP = "CONSUMPTION_CAP"
    GENERATION_CAP = "GENERATION_CAP"
    NET_CAP = "NET_CAP"


class LimitSourceType(StrEnum):
    PHYSICAL_DERIVED = "PHYSICAL_DERIVED"
    MANUAL = "MANUAL"
    FAIL_SAFE = "FAIL_SAFE"
    STATIC_POLICY = "STATIC_POLICY"


class LimitStatus(StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


class CapabilityType(StrEnum):
    LOAD_BALANCING = "LOAD_BALANCING"
    PEAK_SHAVING = "PEAK_SHAVING"
    DER = "DER"
    ENERGY_OPTIMISATION = "ENERGY_OPTIMISATION"


class CapabilityState(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"


class ControlSource(StrEnum):
    LOCAL = "LOCAL"
    EXTERNAL = "EXTERNAL"


class EnvelopeType(StrEnum):
    TOU_LIMIT = "TOU_LIMIT"
    FORECAST = "FORECAST"
    FALLBACK = "FALLBACK"
    OVERRIDE = "OVERRIDE"


class EnvelopeStatus(StrEnum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    EXPIRED = "EXPIRED"
    WITHDRAWN = "WITHDRAWN"
    REJECTED = "REJECTED"


class ForecastSourceHealth(StrEnum):
    HEALTHY = "HEALTHY"
    STALE = "STALE"
    OFFLINE = "OFFLINE"


class ProjectionTrigger(StrEnum):
    ENVELOPE_CHANGE = "ENVELOPE_CHANGE"
    ENVELOPE_LIFECYCLE = "ENVELOPE_LIFECYCLE"
    REBALANCE_GUARD = "REBALANCE_GUARD"


class SourceMode(StrEnum):
    MEASURED = "MEASURED"
    FALLBACK_DERIVED = "FALLBACK_DERIVED"


class CycleOutcome(StrEnum):
    APPLIED = "APPLIED"
    CURTAILED = "CURTAILED"
    REJECTED = "REJECTED"


class RebalanceSource(StrEnum):
    """Which door a rebalance request came in by (ARCHITECTURE.md section 9)."""

    OPERATOR_HTTP = "OPERATOR_HTTP"
    SCHEDULER = "SCHEDULER"
    LEGACY_ALIAS = "LEGACY_ALIAS"
    ENVELOPE_CHANGE = "ENVELOPE_CHANGE"


class AliasPath(StrEnum):
    """The legacy path a circuit alias was applied on (compatibility.circuit_alias_applied.path)."""

    LEGACY_EVENT = "LEGACY_EVENT"
    LEGACY_HTTP = "LEGACY_HTTP"
    SCHEDULER = "SCHEDULER"
    TOU_LIMITS = "TOU_LIMITS"
    CAPACITY_CHANGE = "CAPACITY_CHANGE"


class ReasonCode(StrEnum):
    """Every reason code of the spec: cycle codes (precedence table) and Appendix A codes."""

    TOPOLOGY_INVALID = "TOPOLOGY_INVALID"
    TOPOLOGY_VERSION_CONFLICT = "TOPOLOGY_VERSION_CONFLICT"
    ANCESTOR_CAP_EXCEEDED = "ANCESTOR_CAP_EXCEEDED"
    AGGREGATE_CAP_EXCEEDED = "AGGREGATE_CAP_EXCEEDED"
    NODE_CAP_EXCEEDED = "NODE_CAP_EXCEEDED"
    TELEMETRY_STALE_FALLBACK_USED = "TELEMETRY_STALE_FALLBACK_USED"
    LEGACY_ALIAS_TRANSLATION_APPLIED = "LEGACY_ALIAS_TRANSLATION_APPLIED"
    # Appendix A, compatibility reason codes
    CIRCUIT_ALIAS_NOT_RESOLVABLE = "CIRCUIT_ALIAS_NOT_RESOLVABLE"
    LIMIT_SCOPE_TRANSLATION_FAILED = "LIMIT_SCOPE_TRANSLATION_FAILED"
    LEGACY_POLICY_SCOPE_AMBIGUOUS = "LEGACY_POLICY_SCOPE_AMBIGUOUS"
    # Platform codes for the spec's error shape (503 and validation errors)
    TELEMETRY_INSUFFICIENT = "TELEMETRY_INSUFFICIENT"
    VALIDATION_FAILED = "VALIDATION_FAILED"
    NOT_FOUND = "NOT_FOUND"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    CONFLICT = "CONFLICT"
    ENVELOPE_INVALID = "ENVELOPE_INVALID"


# The spec's "Deterministic Reason-Code Precedence" table, first = highest precedence.
REASON_CODE_PRECEDENCE: tuple[ReasonCode, ...] = (
    ReasonCode.TOPOLOGY_INVALID,
    ReasonCode.TOPOLOGY_VERSION_CONFLICT,
    ReasonCode.ANCESTOR_CAP_EXCEEDED,
    ReasonCode.AGGREGATE_CAP_EXCEEDED,
    ReasonCode.NODE_CAP_EXCEEDED,
    ReasonCode.TELEMETRY_STALE_FALLBACK_USED,
    ReasonCode.LEGACY_ALIAS_TRANSLATION_APPLIED,
)


def order_reason_codes(codes: Iterable[str]) -> list[ReasonCode]:
    """Deduplicate and order by the spec's precedence; codes outside the table follow, alphabetically."""
    unique = {ReasonCode(c) for c in codes}
    rank = {c: i for i, c in enumerate(REASON_CODE_PRECEDENCE)}
    return sorted(unique, key=lambda c: (rank.get(c, len(rank)), c.value))
