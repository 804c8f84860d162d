"""What the services still owe a run: the outputs its inputs must lead to, read from what was observed.

A run that stops observing while a chain is still under way counts fewer cycles than one that waited,
so two plays with the same seed would differ (NFR-007). The consumed barrier says a service committed
its handling of a record, but what that handling wrote leaves through the service's outbox a moment
later, and a block boundary is evaluated by the envelope service's scheduler, not by any input. So
before a settle, and before the run ends, the runner also waits for these observable facts:

- every envelope block boundary passed on the scenario clock has been evaluated by the scheduler (a
  lifecycle_evaluated event of the envelope at or after it), unless the envelope has ended;
- every effective capacity change has been translated by the adapter into its one rebalance request
  (a rebalance_requested caused by it), as the adapter's rule is;
- every rebalance request has its cycle (a cycle_completed with its request key), and every cycle a
  service answered over HTTP has been published.

Pure: the observed records, the depot and the scenario clock's `now` in, the loose ends out.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from libs.domain.envelope_lifecycle import lifecycle_boundaries
from libs.domain.envelopes import TERMINAL_STATUSES
from libs.domain.from_records import domain_envelope
from simulator.depot_state import DepotState
from simulator.expectations import belongs
from simulator.transport import Observed

RECEIVED = "microgrid.operating_envelope_received"
EVALUATED = "microgrid.operating_envelope_lifecycle_evaluated"
CAPACITY_CHANGED = "compatibility.effective_circuit_capacity_changed"
REBALANCE_REQUESTED = "microgrid.rebalance_requested"
CYCLE_COMPLETED = "microgrid.cycle_completed"


@dataclass(frozen=True)
class LooseEnd:
    what: str  # for the run's notes when one is still open at the deadline

    def __str__(self) -> str:
        return self.what


def loose_ends(observed: list[Observed], state: DepotState, now: datetime,
               answered: Collection[UUID] = ()) -> list[LooseEnd]:
    """What is still owed at `now` (the scenario clock), `answered` being the cycle ids HTTP answers gave."""
    ours = [r for r in observed if r.message is not None and belongs(r, state)]
    return [*_boundaries_due(ours, now), *_untranslated_changes(ours), *_requests_without_cycle(ours),
            *_answered_not_published(ours, answered)]


def _boundaries_due(ours: list[Observed], now: datetime) -> list[LooseEnd]:
    received: dict[UUID, object] = {}
    evaluated: dict[UUID, list[tuple[datetime, object]]] = {}
    for r in ours:
        if r.topic == RECEIVED:
            received.setdefault(r.payload.envelope_id, r.payload)
        elif r.topic == EVALUATED:
            evaluated.setdefault(r.payload.envelope_id, []).append((r.payload.evaluated_at, r.payload.status))
    out = []
    for envelope_id, record in received.items():
        evaluations = evaluated.get(envelope_id, [])
        if any(status in TERMINAL_STATUSES for _, status in evaluations):
            continue  # withdrawn, superseded or expired: its timers are done
        # The write port schedules a timer for every boundary after its receipt (earlier ones are
        # reflected in the status it was received with); the scheduler fires them in order.
        due = [t for t in lifecycle_boundaries(domain_envelope(record)) if record.received_at < t <= now]  # type: ignore[attr-defined]
        if due and not any(at >= due[-1] for at, _ in evaluations):
            out.append(LooseEnd(f"envelope {envelope_id}: the boundary at {due[-1].isoformat()} is not evaluated yet"))
    return out


def _untranslated_changes(ours: list[Observed]) -> list[LooseEnd]:
    causes = {r.message.causation_id for r in ours if r.topic == REBALANCE_REQUESTED}  # type: ignore[union-attr]
    return [LooseEnd(f"capacity change {r.message.event_id}: no rebalance requested for it yet")  # type: ignore[union-attr]
            for r in ours if r.topic == CAPACITY_CHANGED and str(r.message.event_id) not in causes]  # type: ignore[union-attr]


def _requests_without_cycle(ours: list[Observed]) -> list[LooseEnd]:
    done = {r.payload.audit.request_key for r in ours if r.topic == CYCLE_COMPLETED}
    keys = dict.fromkeys(r.payload.request_key for r in ours if r.topic == REBALANCE_REQUESTED)
    return [LooseEnd(f"rebalance request {key}: no cycle yet") for key in keys if key not in done]


def _answered_not_published(ours: list[Observed], answered: Collection[UUID]) -> list[LooseEnd]:
    published = {r.payload.cycle_id for r in ours if r.topic == CYCLE_COMPLETED}
    return [LooseEnd(f"cycle {cycle_id}: answered, not published yet") for cycle_id in answered
            if cycle_id not in published]
