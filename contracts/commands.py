"""Commands: imperative messages with one handler. The envelope write port's command topic."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import Field

from contracts.base import Contract, Message, UtcDateTime
from contracts.enums import ConstraintType, EnvelopeType
from contracts.records import EnvelopeBlockRecord


class SubmitOperatingEnvelopePayload(Contract):
    """MicrogridOperatingEnvelopeWritePort input: protocol-agnostic, targeted by microgrid_id + node_id."""

    microgrid_id: UUID
    node_id: UUID
    origin_control_point_id: UUID | None = None
    envelope_type: EnvelopeType
    constraint_type: ConstraintType
    effective_from: UtcDateTime
    effective_to: UtcDateTime
    source_ref: str = Field(min_length=1, max_length=300, description="Opaque upstream ref; idempotency key")
    blocks: list[EnvelopeBlockRecord] = Field(min_length=1, max_length=2000)
    submitted_by: str = "adapter"


class SubmitOperatingEnvelope(Message):
    EVENT_TYPE: ClassVar[str] = "microgrid.submit_operating_envelope"
    payload: SubmitOperatingEnvelopePayload


class WithdrawOperatingEnvelopePayload(Contract):
    microgrid_id: UUID
    envelope_id: UUID | None = None
    source_ref: str | None = None
    withdrawn_by: str = "adapter"


class WithdrawOperatingEnvelope(Message):
    EVENT_TYPE: ClassVar[str] = "microgrid.withdraw_operating_envelope"
    payload: WithdrawOperatingEnvelopePayload
