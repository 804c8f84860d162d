"""One balancing cycle in one transaction: gather, guard, decide, record, publish.

The caller holds the microgrid's advisory lock (one cycle at a time per microgrid, across
replicas). Everything below commits together: the cycle with its inputs and canonical output,
its breaches, the rebalance guard's reconciliations, and the outgoing events (outbox), in the
order of the spec's Event Timeline: demand resolved, breaches, cycle completed.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from uuid import uuid4

from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from contracts.base import EncodedMessage, encode_json
from contracts.enums import CycleOutcome
from contracts.events import (
    ConstraintBreachDetected,
    CycleCompleted,
    DemandResolved,
    EffectiveCircuitCapacityReconciled,
    RebalanceRequested,
)
from libs.domain import CycleResult, encode_cycle_output, run_balancing_cycle
from libs.domain.codec import canonical_inputs_fields, join_canonical_fields
from libs.domain.cycle import StepObserver
from libs.platform.messaging.unit_of_work import UnitOfWork
from libs.platform.observability import get_metrics, span
from libs.platform.observability.tracing import span_attributes
from libs.platform.result_waiter import result_channel
from services.balancing.adapters import cycles, read_models
from services.balancing.adapters.cycles import StoredInputs
from services.balancing.adapters.state_cache import CyclePreflight, MicrogridStateCache, preflight
from services.balancing.console import store as console_store
from services.balancing.console.handlers import console_channel
from services.balancing.cycle_inputs import CycleSettings, cycle_inputs_from
from services.balancing.cycle_records import (
    EncodedCycle,
    cycle_record_document,
    demand_resolved_document,
    encode_cycle,
)
from services.balancing.rebalance_guard import reconcile_circuit_capacities

PRODUCER = "balancing"
# Result channel an HTTP waiter listens on (libs.platform.result_waiter), keyed by request key.
CYCLE_RESULT = "balancing.cycle"


def output_digest(output: bytes) -> str:
    return hashlib.sha256(output).hexdigest()


async def execute_cycle(
    uow: UnitOfWork,
    message: RebalanceRequested,
    *,
    now: Callable[[], datetime],
    settings: CycleSettings,
    cache: MicrogridStateCache | None = None,
    stamps: CyclePreflight | None = None,
) -> EncodedCycle:
    """Run and record one cycle; the caller holds the microgrid's lock and has checked the request key.

    `stamps` (read under that lock) lets `cache` serve the read models from memory when unchanged.
    """
    request = message.payload
    conn = uow.conn
    started_at = now()
    if stamps is None:
        stamps = await preflight(conn, request.microgrid_id, request.request_key)
    cache = cache or MicrogridStateCache(max_microgrids=1)
    cached = cache_entry = await cache.state(conn, request.microgrid_id, stamps)
    state = cached.records
    rotation = 0 if stamps.last_rotation is None else stamps.last_rotation + 1
    inputs = cycle_inputs_from(
        cached.static.inputs,
        cached.telemetry.inputs,
        request=request,
        cycle_id=uuid4(),
        now=started_at,
        rotation=rotation,
        settings=settings,
    )

    # get_effective_circuit_capacity before allocation: correct drift, never request another rebalance.
    if state.topology is not None:
        for capacity in reconcile_circuit_capacities(inputs, state.circuit_capacities):
            await read_models.save_circuit_capacity(conn, capacity)
            await uow.publish(
                EffectiveCircuitCapacityReconciled.create(
                    capacity, producer=PRODUCER, occurred_at=started_at, causation=message
                )
            )

    # One canonical serialisation serves the stored inputs and the digest (the cycle's hot path); the text
    # of fields unchanged since the last load (the tree, limits, telemetry) is reused, not re-encoded.
    encoded = cache_entry.encoded
    fields = canonical_inputs_fields(inputs, known={name: e.text for name, e in encoded.items()})
    inputs_json = join_canonical_fields(fields)
    ids = span_attributes(
        microgrid_id=request.microgrid_id, cycle_id=inputs.cycle_id, correlation_id=request.correlation_id
    )
    with span("balancing_cycle", ids) as cycle_span:
        steps = domain_steps(cycle_span, ids)
        result = run_balancing_cycle(inputs, digest=hashlib.sha256(inputs_json).hexdigest(), step=steps)
        if steps is not None:
            cycle_span.set_attributes(span_attributes(outcome=result.outcome, reason_codes=list(result.reason_codes)))
    output = encode_cycle_output(result)
    # Large fields are stored as content-addressed parts: an unchanged tree is written once, not per cycle.
    part_digests = {name: e.digest for name, e in encoded.items()}
    unstored = cache.parts_to_store(set(part_digests.values()))
    stored_inputs = StoredInputs.of(fields, part_digests, unstored)
    uow.on_commit(lambda: cache.mark_stored(unstored))
    document = cycle_record_document(result, inputs=inputs, request=request, started_at=started_at, ended_at=now())
    encoded_cycle = encode_cycle(document, result.missing_inputs)
    storing = asyncio.ensure_future(cycles.insert_cycle(
        conn,
        cycle=encoded_cycle,
        request_key=request.request_key,
        request_event_id=message.event_id,
        inputs=stored_inputs,
        output=output,
        output_digest=output_digest(output),
        missing_inputs=list(result.missing_inputs),
        safe_action_taken=result.safe_action_taken,
        rotation=inputs.rotation,
        timeline=console_store.timeline_points(document, inputs.telemetry),
    ))
    # The events are encoded and recorded for the outbox (no query: the unit writes them at its end) while
    # Postgres stores the cycle (its backend compresses and writes a few hundred KB): ~1-2 ms of a single
    # request's path. Nothing else uses the connection until the insert is settled.
    try:
        await asyncio.sleep(0)  # the insert goes out before the encoding holds the event loop
        outgoing = _outgoing_events(result, encoded_cycle, message, key=str(request.microgrid_id))
        # One outbox row for the cycle's ~114 events (outbox_pack): a row each cost ~3 ms of Postgres CPU a cycle.
        await uow.publish_all(outgoing, packed=True)
    finally:
        await storing
    uow.signal_after_commit(result_channel(uow.settings, CYCLE_RESULT, request.request_key))
    uow.signal_after_commit(console_channel(uow.settings, request.microgrid_id))
    uow.on_commit(lambda: _count(result, document, started_at=started_at, ended_at=document["ended_at"]))
    return encoded_cycle


def domain_steps(cycle_span: Span, ids: dict[str, AttributeValue]) -> StepObserver | None:
    """A span per step of the domain cycle, under `cycle_span`; None when its trace is not kept: nobody
    reads those steps, and their spans (~20-40 us each, docs/performance.md, sixteenth round) are not made."""
    if not cycle_span.is_recording():
        return None
    return lambda name: span(name, ids)


def _outgoing_events(
    result: CycleResult, cycle: EncodedCycle, cause: RebalanceRequested, *, key: str
) -> list[EncodedMessage]:
    """The cycle's events, wrapping the bytes `encode_cycle` made (Message.encode), in the order of the spec's
    Event Timeline: demand resolved, breaches, cycle completed."""
    at = cycle.document["ended_at"]
    outgoing: list[EncodedMessage] = []
    if result.outcome is not CycleOutcome.REJECTED:
        outgoing.append(DemandResolved.encode(
            encode_json(demand_resolved_document(result)), key=key, producer=PRODUCER, occurred_at=at, causation=cause
        ))
    outgoing += ConstraintBreachDetected.encode_many(
        cycle.breach_jsons, key=key, producer=PRODUCER, occurred_at=at, causation=cause
    )
    outgoing.append(
        CycleCompleted.encode(cycle.event_json, key=key, producer=PRODUCER, occurred_at=at, causation=cause)
    )
    return outgoing


def _count(result: CycleResult, document: dict, *, started_at: datetime, ended_at: datetime) -> None:
    metrics = get_metrics()
    metrics.record_cycle(outcome=result.outcome, duration_seconds=(ended_at - started_at).total_seconds())
    # One add per reason code: a curtailed depot has a hundred breaches a cycle, and each add costs. Read
    # from the record's breaches: the result's breach records are never built on this path.
    for reason_code, count in Counter(b["reason_code"] for b in document["breaches"]).items():
        metrics.count_breach(reason_code=reason_code, count=count)
