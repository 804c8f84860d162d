"""Operating envelopes: time-bounded, protocol-agnostic constraints on one node subtree.

"Active at now" (the rule used by balancing and by the effective circuit capacity): an envelope
counts when its lifecycle status is not terminal (PENDING or ACTIVE; never WITHDRAWN, REJECTED or
EXPIRED), ``effective_from <= now < effective_to``, and one of its blocks covers ``now``
(``block_from <= now < block_to``) with a limit value. Status moves only by scheduled evaluation
(FR-032, see `envelope_lifecycle`); the read-time guard re-checks the blocks at ``now`` so a late
timer can neither keep a finished block binding nor ignore one that has started. A PENDING
envelope whose block has begun therefore already binds: it was validated on receipt and only its
start timer is outstanding.

A block's limit value is ``target_watts`` when present, else ``max_limit_watts``;
``min_limit_watts`` is reported, not enforced (ARCHITECTURE.md section 9).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from contracts.enums import ConstraintType, EnvelopeStatus, EnvelopeType

# An envelope counts while PENDING or ACTIVE (live); a terminal status never changes again.
LIVE_STATUSES: tuple[EnvelopeStatus, ...] = (EnvelopeStatus.PENDING, EnvelopeStatus.ACTIVE)
TERMINAL_STATUSES: tuple[EnvelopeStatus, ...] = tuple(s for s in EnvelopeStatus if s not in LIVE_STATUSES)


@dataclass(frozen=True, slots=True)
class EnvelopeBlock:
    block_from: datetime
    block_to: datetime
    min_limit_watts: int | None = None
    max_limit_watts: int | None = None
    target_watts: int | None = None

    @property
    def limit_watts(self) -> int | None:
        return self.target_watts if self.target_watts is not None else self.max_limit_watts

    def covers(self, at: datetime) -> bool:
        return self.block_from <= at < self.block_to


@dataclass(frozen=True, slots=True)
class OperatingEnvelope:
    envelope_id: str
    microgrid_id: str
    node_id: str
    envelope_type: EnvelopeType
    constraint_type: ConstraintType
    effective_from: datetime
    effective_to: datetime
    status: EnvelopeStatus
    blocks: tuple[EnvelopeBlock, ...] = ()
    origin_control_point_id: str | None = None
    source_ref: str = ""
    received_at: datetime | None = None

    @property
    def is_live(self) -> bool:
        """Not withdrawn, rejected or expired."""
        return self.status not in TERMINAL_STATUSES

    def limit_at(self, at: datetime) -> int | None:
        """The most restrictive limit of the blocks covering ``at``; None when the envelope does not bind."""
        if not self.is_live or not (self.effective_from <= at < self.effective_to):
            return None
        best: int | None = None
        for block in self.blocks:
            value = block.limit_watts
            if value is not None and block.covers(at) and (best is None or value < best):
                best = value
        return best


@dataclass(frozen=True, slots=True)
class ActiveEnvelopeLimit:
    envelope_id: str
    envelope_type: EnvelopeType
    limit_watts: int


def active_limits(
    envelopes: Iterable[OperatingEnvelope], envelope_type: EnvelopeType, at: datetime
) -> list[ActiveEnvelopeLimit]:
    """Binding limits of one envelope type at ``at``, lowest first, ties by envelope id."""
    out = []
    for env in envelopes:
        if env.envelope_type is envelope_type:
            value = env.limit_at(at)
            if value is not None:
                out.append(ActiveEnvelopeLimit(env.envelope_id, envelope_type, value))
    out.sort(key=lambda a: (a.limit_watts, a.envelope_id))
    return out


def envelope_violations(envelope: OperatingEnvelope, microgrid_id: str, node_ids: Iterable[str]) -> tuple[str, ...]:
    """Why an inbound envelope is invalid for this microgrid; empty when it may be accepted."""
    problems: list[str] = []
    if envelope.microgrid_id != microgrid_id:
        problems.append(f"envelope targets microgrid {envelope.microgrid_id}, not {microgrid_id}")
    if envelope.node_id not in set(node_ids):
        problems.append(f"node {envelope.node_id} is not a node of microgrid {microgrid_id}")
    if envelope.effective_from.tzinfo is None or envelope.effective_to.tzinfo is None:
        problems.append("effective_from and effective_to must be timezone-aware UTC")
    elif envelope.effective_from >= envelope.effective_to:
        problems.append("effective_from must be before effective_to")
    if not envelope.blocks:
        problems.append("an envelope needs at least one block")
    ordered = sorted(envelope.blocks, key=lambda b: (b.block_from, b.block_to))
    for i, block in enumerate(ordered):
        where = f"block {block.block_from.isoformat()}"
        if block.block_from.tzinfo is None or block.block_to.tzinfo is None:
            problems.append(f"{where}: times must be timezone-aware UTC")
            continue
        if block.block_from >= block.block_to:
            problems.append(f"{where}: block_from must be before block_to")
        if block.block_from < envelope.effective_from or block.block_to > envelope.effective_to:
            problems.append(f"{where}: block lies outside the envelope window")
        if i and block.block_from < ordered[i - 1].block_to:
            problems.append(f"{where}: overlaps the previous block")
        if block.min_limit_watts is None and block.max_limit_watts is None and block.target_watts is None:
            problems.append(f"{where}: no bound given")
        bounds = [b for b in (block.min_limit_watts, block.max_limit_watts, block.target_watts) if b is not None]
        if any(b < 0 for b in bounds):
            problems.append(f"{where}: bounds must not be negative")
        lo, hi, target = block.min_limit_watts, block.max_limit_watts, block.target_watts
        if lo is not None and hi is not None and lo > hi:
            problems.append(f"{where}: min_limit_watts above max_limit_watts")
        if target is not None and ((lo is not None and target < lo) or (hi is not None and target > hi)):
            problems.append(f"{where}: target_watts outside [min, max]")
    return tuple(problems)
