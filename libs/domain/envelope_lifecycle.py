"""Scheduled envelope lifecycle evaluation (FR-032, NFR-011).

Status moves PENDING -> ACTIVE -> EXPIRED only when the scheduler evaluates an envelope at one of
its boundaries (window start, each block start and end, window end). WITHDRAWN and REJECTED are set
by commands, never by evaluation, and no terminal status ever changes. The evaluation is a pure
function of the envelope and the scheduled timestamp, so replays agree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from contracts.enums import EnvelopeStatus
from libs.domain.envelopes import TERMINAL_STATUSES, OperatingEnvelope


@dataclass(frozen=True, slots=True)
class LifecycleEvaluation:
    envelope_id: str
    previous_status: EnvelopeStatus
    status: EnvelopeStatus
    evaluated_at: datetime
    limit_watts: int | None  # the block limit binding at evaluated_at, if any

    @property
    def changed(self) -> bool:
        return self.status is not self.previous_status


def evaluate_lifecycle(envelope: OperatingEnvelope, evaluated_at: datetime) -> LifecycleEvaluation:
    status = envelope.status
    if status not in TERMINAL_STATUSES:
        if evaluated_at >= envelope.effective_to:
            status = EnvelopeStatus.EXPIRED
        elif evaluated_at >= envelope.effective_from:
            status = EnvelopeStatus.ACTIVE
        else:
            status = EnvelopeStatus.PENDING
    limit = None if status in TERMINAL_STATUSES else envelope.limit_at(evaluated_at)
    return LifecycleEvaluation(envelope.envelope_id, envelope.status, status, evaluated_at, limit)


def acceptance_status(envelope: OperatingEnvelope, received_at: datetime) -> EnvelopeStatus:
    """The status a valid envelope is stored with at receipt: its evaluation at that instant, as if
    PENDING until then (ACTIVE once its window has started). The write port refuses an envelope whose
    window is already over, so this is never EXPIRED for one it accepts."""
    return evaluate_lifecycle(replace(envelope, status=EnvelopeStatus.PENDING), received_at).status


def lifecycle_boundaries(envelope: OperatingEnvelope) -> tuple[datetime, ...]:
    """Every instant at which the envelope's status or binding block can change, ascending."""
    instants = {envelope.effective_from, envelope.effective_to}
    for block in envelope.blocks:
        instants.add(block.block_from)
        instants.add(block.block_to)
    return tuple(sorted(t for t in instants if envelope.effective_from <= t <= envelope.effective_to))
