"""HTTP payloads of the envelope-lifecycle service's internal write port and reads (docs/envelopes.md).

The write port is internal (`/internal/...`), not a public microgrid route: protocol adapters and the
compatibility adapter submit through it; operators read envelope state through it and through the
topology service's depot view. Records are the ones in `contracts.records` / `contracts.events`.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import Field

from contracts.base import MAX_ENVELOPE_BLOCKS, Contract, Ref, Text, Text200, UtcDateTime
from contracts.enums import EnvelopeStatus, ForecastSourceHealth, ReasonCode
from contracts.events import EffectiveCircuitCapacityPayload
from contracts.records import EnvelopeBlockRecord, OperatingEnvelopeRecord

TypeName = Text(50, min_length=1)


class OperatingEnvelopeSubmission(Contract):
    """POST /internal/microgrid/{microgrid_id}/operating-envelopes: one protocol-agnostic envelope.

    `envelope_type` and `constraint_type` are free text here on purpose: an unknown type is a rule the
    write port judges (stored as REJECTED, answered 422 ENVELOPE_INVALID), not a malformed request.
    """

    node_id: UUID
    origin_control_point_id: UUID | None = None
    envelope_type: TypeName = Field(description="TOU_LIMIT, FORECAST, FALLBACK, OVERRIDE")
    constraint_type: TypeName = Field(description="CONSUMPTION_CAP, GENERATION_CAP, NET_CAP")
    effective_from: UtcDateTime
    effective_to: UtcDateTime
    source_ref: Ref = Field(description="Opaque upstream ref; idempotency key")
    blocks: list[EnvelopeBlockRecord] = Field(min_length=1, max_length=MAX_ENVELOPE_BLOCKS)
    submitted_by: Text200 | None = Field(
        default=None,
        description="Who the caller says submitted it: stored as `claimed_by`, a label only."
        " The actor (`submitted_by` of the stored envelope) is always the token subject",
    )


class EnvelopeReceipt(Contract):
    """The write port's answer: the envelope as stored, and whether this request was a replay."""

    envelope: OperatingEnvelopeRecord
    replay: bool = Field(description="True when the source_ref was already ingested: nothing new happened")


class OperatingEnvelopeView(OperatingEnvelopeRecord):
    """An envelope as stored, including why it was rejected (types stay text: a rejection may name an
    unknown one)."""

    envelope_type: str  # type: ignore[assignment]
    constraint_type: str  # type: ignore[assignment]
    violated_rule: str | None = None
    rejection_details: dict[str, Any] | None = None
    submitted_by: str = Field(description="The actor: the token subject, or the service that sent the command")
    claimed_by: str | None = Field(
        default=None, description="What the submission body said it was submitted by: a claim, not verified"
    )


class EnvelopeLifecycleEntry(Contract):
    """One entry of an envelope's lifecycle history (D-025: separate from capability status history)."""

    envelope_id: UUID
    transition: str = Field(description="RECEIVED, REJECTED, BLOCK_BOUNDARY, EXPIRY, WITHDRAWAL, HEALTH_CHANGE")
    previous_status: EnvelopeStatus | None = None
    status: EnvelopeStatus
    evaluated_at: UtcDateTime
    timer_id: int | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class EnvelopeHistory(Contract):
    envelope: OperatingEnvelopeView
    entries: list[EnvelopeLifecycleEntry]


class ProjectionFailureView(Contract):
    """A node that should project to a feeder circuit but cannot (D-022), with its reason code."""

    node_id: UUID
    reason_code: ReasonCode
    detail: str
    evaluated_at: UtcDateTime


class EffectiveCircuitCapacityView(Contract):
    """FR-033: the last effective capacity projected to each managed feeder circuit of the microgrid."""

    circuits: list[EffectiveCircuitCapacityPayload]
    failures: list[ProjectionFailureView]


class ForecastSourceView(Contract):
    control_point_id: UUID
    node_id: UUID | None = None
    health: ForecastSourceHealth
    last_forecast_received_at: UtcDateTime
    health_changed_at: UtcDateTime
