"""Legacy TOU schedule <-> TOU_LIMIT operating envelope, keeping the schedule's meaning. Pure.

A legacy schedule caps the circuit's consumption at `limit_watts` during each period and leaves it
alone between periods. It becomes one TOU_LIMIT CONSUMPTION_CAP envelope on the circuit's node whose
blocks are the periods (max_limit_watts = limit_watts), effective from the first start to the last end;
gaps stay gaps. Read back, each block's limit value (target_watts, else max_limit_watts, as balancing
reads it: ARCHITECTURE.md section 9) becomes the period's limit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from uuid import UUID, uuid5

from contracts.api.compatibility_adapter import LegacyTouPeriod
from contracts.commands import SubmitOperatingEnvelopePayload
from contracts.enums import ConstraintType, EnvelopeStatus, EnvelopeType
from contracts.records import EnvelopeBlockRecord, OperatingEnvelopeRecord
from libs.domain.envelopes import envelope_violations
from libs.domain.from_records import domain_envelope

_CANDIDATE = UUID("00000000-0000-0000-0000-000000000000")


def ordered_periods(periods: Iterable[LegacyTouPeriod]) -> list[LegacyTouPeriod]:
    return sorted(periods, key=lambda p: (p.start, p.end, p.limit_watts))


def schedule_digest(periods: Iterable[LegacyTouPeriod]) -> str:
    canonical = [[p.start.isoformat(), p.end.isoformat(), p.limit_watts] for p in ordered_periods(periods)]
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()[:16]


def tou_source_ref(circuit_id: UUID, revision: int, periods: Iterable[LegacyTouPeriod]) -> str:
    """The envelope's idempotency key: circuit + schedule revision + schedule content.

    The revision keeps a schedule that comes back after a replacement from colliding with the
    withdrawn envelope of the same content.
    """
    return f"{tou_source_ref_prefix(circuit_id)}{revision}:{schedule_digest(periods)}"


def tou_source_ref_prefix(circuit_id: UUID) -> str:
    """What every TOU envelope source_ref of this circuit starts with."""
    return f"legacy-tou:{circuit_id}:r"


def envelope_for_schedule(
    *,
    microgrid_id: UUID,
    node_id: UUID,
    periods: Iterable[LegacyTouPeriod],
    source_ref: str,
    submitted_by: str,
    supersedes: Iterable[str] = (),
) -> SubmitOperatingEnvelopePayload:
    ordered = ordered_periods(periods)
    if not ordered:
        raise ValueError("an envelope needs at least one period")
    return SubmitOperatingEnvelopePayload(
        microgrid_id=microgrid_id,
        node_id=node_id,
        envelope_type=EnvelopeType.TOU_LIMIT,
        constraint_type=ConstraintType.CONSUMPTION_CAP,
        effective_from=ordered[0].start,
        effective_to=max(p.end for p in ordered),
        source_ref=source_ref,
        blocks=[
            EnvelopeBlockRecord(block_from=p.start, block_to=p.end, max_limit_watts=p.limit_watts) for p in ordered
        ],
        submitted_by=submitted_by,
        supersedes_source_refs=list(supersedes),
    )


def replacement_problems(envelope: SubmitOperatingEnvelopePayload, *, now: datetime) -> list[str]:
    """Why the envelope write port would reject this replacement, judged before anything is withdrawn:
    the domain's envelope invariants and a window that has not already elapsed."""
    record = OperatingEnvelopeRecord(
        envelope_id=uuid5(_CANDIDATE, envelope.source_ref),
        microgrid_id=envelope.microgrid_id,
        node_id=envelope.node_id,
        envelope_type=envelope.envelope_type,
        constraint_type=envelope.constraint_type,
        effective_from=envelope.effective_from,
        effective_to=envelope.effective_to,
        source_ref=envelope.source_ref,
        status=EnvelopeStatus.PENDING,
        received_at=now,
        blocks=envelope.blocks,
    )
    problems = list(envelope_violations(domain_envelope(record), str(envelope.microgrid_id), [str(envelope.node_id)]))
    if envelope.effective_to <= now:
        problems.append(f"the schedule ends {envelope.effective_to.isoformat()}, before now ({now.isoformat()})")
    return problems


def periods_of_envelope(envelope: OperatingEnvelopeRecord) -> list[LegacyTouPeriod]:
    """The envelope's blocks as legacy periods; a block without an upper bound is not a TOU limit."""
    periods = []
    for block in envelope.blocks:
        limit = block.target_watts if block.target_watts is not None else block.max_limit_watts
        if limit is not None:
            periods.append(LegacyTouPeriod(start=block.block_from, end=block.block_to, limit_watts=limit))
    return ordered_periods(periods)
