"""Commands: imperative messages with one handler. The envelope write port's command topic."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import Field

from contracts.base import MAX_ENVELOPE_BLOCKS, Contract, Message, Name, Ref, UtcDateTime
from contracts.enums import ConstraintType, EnvelopeType
from contracts.records import EnvelopeBlockRecord

MAX_SUPERSEDED = 20


class SubmitOperatingEnvelopePayload(Contract):
    """MicrogridOperatingEnvelopeWritePort input: protocol-agnostic, targeted by microgrid_id + node_id."""

    microgrid_id: UUID
    node_id: UUID
    origin_control_point_id: UUID | None = None
    envelope_type: EnvelopeType
    constraint_type: ConstraintType
    effective_from: UtcDateTime
    effective_to: UtcDateTime
    source_ref: Ref = Field(description="Opaque upstream ref; idempotency key")
    blocks: list[EnvelopeBlockRecord] = Field(min_length=1, max_length=MAX_ENVELOPE_BLOCKS)
    submitted_by: Name = "adapter"
    supersedes_source_refs: list[Ref] = Field(
        default_factory=list,
        max_length=MAX_SUPERSEDED,
        description="Envelopes (by source_ref) this one replaces: withdrawn in the same transaction, and only "
        "if this one is accepted, so a rejected replacement leaves them in force",
    )


class SubmitOperatingEnvelope(Message):
    EVENT_TYPE: ClassVar[str] = "microgrid.submit_operating_envelope"
    payload: SubmitOperatingEnvelopePayload


class WithdrawOperatingEnvelopePayload(Contract):
    microgrid_id: UUID
    envelope_id: UUID | None = None
    source_ref: Ref | None = None
    withdrawn_by: Name = "adapter"


class WithdrawOperatingEnvelope(Message):
    EVENT_TYPE: ClassVar[str] = "microgrid.withdraw_operating_envelope"
    payload: WithdrawOperatingEnvelopePayload
