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
from uuid import UUID

from contracts.api.compatibility_adapter import LegacyTouPeriod
from contracts.commands import SubmitOperatingEnvelopePayload
from contracts.enums import ConstraintType, EnvelopeType
from contracts.records import EnvelopeBlockRecord, OperatingEnvelopeRecord


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
    return f"legacy-tou:{circuit_id}:r{revision}:{schedule_digest(periods)}"


def envelope_for_schedule(
    *,
    microgrid_id: UUID,
    node_id: UUID,
    periods: Iterable[LegacyTouPeriod],
    source_ref: str,
    submitted_by: str,
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
    )


def periods_of_envelope(envelope: OperatingEnvelopeRecord) -> list[LegacyTouPeriod]:
    """The envelope's blocks as legacy periods; a block without an upper bound is not a TOU limit."""
    periods = []
    for block in envelope.blocks:
        limit = block.target_watts if block.target_watts is not None else block.max_limit_watts
        if limit is not None:
            periods.append(LegacyTouPeriod(start=block.block_from, end=block.block_to, limit_watts=limit))
    return ordered_periods(periods)
