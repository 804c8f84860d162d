"""HTTP payloads of the compatibility adapter's circuit routes (Compatibility Matrix).

The legacy shapes are kept as circuit integrators know them (a TOU schedule is a list of periods with a
limit); every answer also names the microgrid_id + node_id the circuit was translated to (D-005).
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import Field, model_validator

from contracts.base import MAX_ENVELOPE_BLOCKS, Contract, UtcDateTime, Watts
from contracts.enums import AliasPath, EnvelopeStatus, ReasonCode
from contracts.records import CycleResultRecord

# ---- POST /api/circuit/{circuit_id}/rebalance_load --------------------------------------------


class CircuitRebalanceResponse(Contract):
    """The cycle result of a legacy rebalance, with the identifiers the circuit was mapped to.

    `status` COMPLETED carries the cycle `result`; PENDING (HTTP 202) means the cycle did not finish
    within the wait bound: repeat the call with the same Idempotency-Key to collect it.
    """

    circuit_id: UUID
    microgrid_id: UUID
    node_id: UUID
    request_key: str
    correlation_id: str
    status: Literal["COMPLETED", "PENDING"]
    timestamp: UtcDateTime
    reason_codes: list[ReasonCode] = Field(
        default_factory=list,
        description="The cycle's reason codes plus LEGACY_ALIAS_TRANSLATION_APPLIED, in precedence order",
    )
    result: CycleResultRecord | None = None


# ---- GET/POST /api/circuit/{circuit_id}/tou_limits --------------------------------------------


class LegacyTouPeriod(Contract):
    """One time-of-use period of a legacy circuit schedule: at most `limit_watts` in [start, end)."""

    start: UtcDateTime
    end: UtcDateTime
    limit_watts: Watts

    @model_validator(mode="after")
    def _start_before_end(self) -> LegacyTouPeriod:
        if self.start >= self.end:
            raise ValueError("period start must be before its end")
        return self


class LegacyTouSchedule(Contract):
    """The legacy TOU limits of one circuit. POST replaces the circuit's schedule; no periods clears it."""

    periods: list[LegacyTouPeriod] = Field(default_factory=list, max_length=MAX_ENVELOPE_BLOCKS)

    @model_validator(mode="after")
    def _periods_do_not_overlap(self) -> LegacyTouSchedule:
        ordered = sorted(self.periods, key=lambda p: (p.start, p.end))
        for earlier, later in zip(ordered, ordered[1:], strict=False):
            if later.start < earlier.end:
                raise ValueError(
                    f"periods overlap: {earlier.start.isoformat()} - {earlier.end.isoformat()}"
                    f" and {later.start.isoformat()} - {later.end.isoformat()}"
                )
        return self


class TouLimitsSubmitted(Contract):
    """Answer to a TOU POST (HTTP 202): the envelope command is on its way to the envelope write port.

    SUBMITTED: a new TOU_LIMIT envelope was submitted (replacing the circuit's previous one, withdrawn);
    UNCHANGED: the same schedule was already submitted (idempotent replay); CLEARED: the previous one
    was withdrawn and nothing replaces it.
    """

    circuit_id: UUID
    microgrid_id: UUID
    node_id: UUID
    status: Literal["SUBMITTED", "UNCHANGED", "CLEARED"]
    source_ref: str | None = Field(description="The envelope's source_ref (its idempotency key)")
    withdrawn_source_ref: str | None = None
    periods: list[LegacyTouPeriod]
    timestamp: UtcDateTime


class TouEnvelopeView(Contract):
    envelope_id: UUID
    source_ref: str
    status: EnvelopeStatus
    periods: list[LegacyTouPeriod]


class TouLimitsView(Contract):
    """The TOU_LIMIT envelopes on the circuit's node, mapped back to the legacy schedule shape.

    `periods` joins the periods of every PENDING or ACTIVE TOU_LIMIT envelope on the node, ordered by
    start; `envelopes` shows where each came from.
    """

    circuit_id: UUID
    microgrid_id: UUID
    node_id: UUID
    periods: list[LegacyTouPeriod]
    envelopes: list[TouEnvelopeView]
    timestamp: UtcDateTime


# ---- GET /api/circuit/{circuit_id}/effective_capacity -----------------------------------------


class CircuitEffectiveCapacityView(Contract):
    """The circuit-facing effective capacity (a derived compatibility output, D-021).

    Without any projection yet it is the legacy default capacity (basis LEGACY_DEFAULT).
    """

    circuit_id: UUID
    microgrid_id: UUID | None = None
    node_id: UUID | None = None
    depot_id: UUID | None = None
    parent_circuit_id: UUID | None = None
    effective_capacity_watts: Watts
    basis: str
    projection_trigger: str | None = None
    binding_envelope_id: UUID | None = None
    evaluated_at: UtcDateTime | None = None
    default_capacity_watts: Watts | None = None
    fail_safe_capacity_watts: Watts | None = None
    timestamp: UtcDateTime


# ---- GET /api/compatibility/translations ------------------------------------------------------


TranslationResult = Literal["APPLIED", "FAILED", "PASSED_THROUGH"]
"""APPLIED: translated to a microgrid target; FAILED: refused with a reason code; PASSED_THROUGH: already
microgrid-keyed (a periodic job naming microgrid_id), forwarded unchanged."""


class TranslationCount(Contract):
    path: AliasPath
    result: TranslationResult
    reason_code: ReasonCode | None = None
    count: int


class TranslationSummary(Contract):
    """Counts of recorded translations by path, result and reason code (from the translation audit)."""

    counts: list[TranslationCount]
    timestamp: UtcDateTime
