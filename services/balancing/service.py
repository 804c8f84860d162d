"""Balancing use cases, shared by the handlers, the routes and the background loop.

Every door (operator HTTP, scheduler, legacy alias, envelope change) reaches a cycle through one
`microgrid.rebalance_requested` and `handle_rebalance_requested`; the HTTP route records that
event through the outbox and waits for the cycle, so the one-cycle-at-a-time rule has no bypass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID, uuid4

import asyncpg

from contracts.enums import RebalanceSource
from contracts.events import RebalanceRequested, RebalanceRequestedPayload
from libs.platform.advisory_locks import lock_for_transaction
from libs.platform.clock import Clock
from libs.platform.messaging.parked import judge_expired, sweep_forever
from libs.platform.messaging.unit_of_work import UnitOfWork
from libs.platform.result_waiter import result_channel, wait_for_result
from services.balancing.adapters import cycles, read_models, rebalance_requests
from services.balancing.adapters.cycles import CycleAnswer
from services.balancing.adapters.state_cache import MicrogridStateCache, preflight
from services.balancing.cycle_execution import CYCLE_RESULT, PRODUCER, execute_cycle
from services.balancing.cycle_inputs import CycleSettings
from services.balancing.cycle_records import EncodedCycle
from services.balancing.settings import BalancingContext, BalancingSettings


class UnknownMicrogrid(LookupError):
    """The rebalance names a microgrid balancing has never seen (and no topology version to wait for)."""


class RequestKeyReused(Exception):
    """The request key was already used for another rebalance target."""


def state_cache_of(ctx: BalancingContext) -> MicrogridStateCache:
    """This replica's in-memory read models (adapters/state_cache.py), shared by its consumer and sweeper."""
    cache: MicrogridStateCache = ctx.memory
    return cache


def cycle_settings(settings: BalancingSettings) -> CycleSettings:
    return CycleSettings(freshness_threshold_seconds=settings.telemetry_freshness_seconds)


async def lock_microgrid(conn: asyncpg.Connection, microgrid_id: UUID) -> None:
    """Transaction-scoped advisory lock: one cycle at a time per microgrid, whichever replica runs it."""
    await lock_for_transaction(conn, "balancing", microgrid_id)


# ---- the consumer's use case -----------------------------------------------------------------------


async def handle_rebalance_requested(
    uow: UnitOfWork,
    message: RebalanceRequested,
    *,
    clock: Clock,
    settings: BalancingSettings,
    cache: MicrogridStateCache | None = None,
) -> EncodedCycle | None:
    """Run the request's one cycle, or park it until its topology version arrives; the cycle if it ran."""
    request = message.payload
    conn = uow.conn
    await lock_microgrid(conn, request.microgrid_id)
    stamps = await preflight(conn, request.microgrid_id, request.request_key)
    if stamps.cycle_done:
        return None  # one cycle per request key, whichever door repeated it
    known = stamps.topology_version
    wanted = request.expected_topology_version or 1
    if known is None or wanted > known:
        # Never balance on a stale tree: wait (off the consumer loop) for the version, or reject later.
        deadline = clock.now() + timedelta(seconds=settings.topology_wait_s)
        await rebalance_requests.defer(conn, message, wanted, deadline)
        return None
    return await execute_cycle(
        uow, message, now=clock.now, settings=cycle_settings(settings), cache=cache, stamps=stamps
    )


async def run_ready_requests(
    uow: UnitOfWork,
    microgrid_id: UUID,
    known_version: int,
    *,
    clock: Clock,
    settings: BalancingSettings,
    cache: MicrogridStateCache | None = None,
) -> int:
    """After a topology update: run the parked requests that version satisfies; how many ran."""
    await lock_microgrid(uow.conn, microgrid_id)
    ran = 0
    for message in await rebalance_requests.take_ready(uow.conn, microgrid_id, known_version):
        if not await cycles.request_key_done(uow.conn, message.payload.request_key):
            await execute_cycle(uow, message, now=clock.now, settings=cycle_settings(settings), cache=cache)
            ran += 1
    return ran


async def expire_waiting_requests(ctx: BalancingContext) -> int:
    """Parked requests whose wait is over run now against what is known: REJECTED, TOPOLOGY_VERSION_CONFLICT."""

    async def judge(uow: UnitOfWork, message: RebalanceRequested) -> None:
        await lock_microgrid(uow.conn, message.payload.microgrid_id)
        if not await cycles.request_key_done(uow.conn, message.payload.request_key):
            await execute_cycle(
                uow, message, now=ctx.clock.now, settings=cycle_settings(ctx.settings), cache=state_cache_of(ctx)
            )

    return await judge_expired(
        rebalance_requests.take_expired, unit_of_work=ctx.unit_of_work, now=ctx.clock.now, judge=judge
    )


async def sweep_waiting_requests_forever(ctx: BalancingContext) -> None:
    await sweep_forever(lambda: expire_waiting_requests(ctx), ctx.settings.pending_sweep_interval_s)


# ---- the HTTP door ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CycleRanHere:
    """The request's cycle, run and committed by the request itself, with nothing in it that calls for an
    error answer: its record's bytes as stored answer the request (no read back, no parse, no re-encoding)."""

    record_json: bytes


async def request_rebalance(
    ctx: BalancingContext,
    *,
    microgrid_id: UUID,
    node_id: UUID | None,
    expected_topology_version: int | None,
    request_key: str | None,
    actor: str,
    correlation_id: str | None,
) -> tuple[str, CycleAnswer | CycleRanHere | None]:
    """Record one rebalance_requested for the key (once) and wait, bounded, for its cycle.

    Returns the request key and the cycle (CycleRanHere when this request ran it and it calls for no error
    answer), or None when the wait ran out (the cycle still comes). Raises UnknownMicrogrid or RequestKeyReused.
    """
    settings = ctx.settings
    clock = ctx.clock
    key = request_key or f"http:{uuid4()}"
    existing = await cycles.answer_by_request_key(ctx.pool, key)
    if existing is not None:
        _same_target(key, existing.result.microgrid_id, existing.result.node_id, microgrid_id, node_id)
        return key, existing
    ran: EncodedCycle | None = None
    async with ctx.unit_of_work() as uow:
        if expected_topology_version is None and await read_models.known_topology_version(
            uow.conn, microgrid_id
        ) is None:
            raise UnknownMicrogrid(f"microgrid {microgrid_id} is not known to balancing")
        message = RebalanceRequested.create(
            RebalanceRequestedPayload(
                microgrid_id=microgrid_id,
                node_id=node_id,
                source=RebalanceSource.OPERATOR_HTTP,
                correlation_id=correlation_id or key,
                request_key=key,
                requested_by=actor,
                expected_topology_version=expected_topology_version,
            ),
            producer=PRODUCER,
            occurred_at=clock.now(),
            correlation_id=correlation_id or key,
        )
        claimed = await rebalance_requests.claim_request_key(
            uow.conn,
            request_key=key,
            microgrid_id=microgrid_id,
            node_id=node_id,
            event_id=message.event_id,
            requested_at=message.occurred_at,
        )
        _same_target(key, claimed.microgrid_id, claimed.node_id, microgrid_id, node_id)
        if claimed.event_id == message.event_id:
            await uow.publish(message)
            # The cycle runs now, in the request's own transaction, instead of a relay and a Kafka round trip
            # later (issue 13, POST /rebalance latency). The rebalance_requested still goes out, as the event
            # dictionary's record of the request; when balancing's consumer reads it, the key is done and
            # nothing runs twice. A request for a topology version not seen yet is parked as before.
            ran = await handle_rebalance_requested(
                uow, message, clock=clock, settings=settings, cache=state_cache_of(ctx)
            )
    # Committed: a cycle this request ran answers from memory, unless its answer is an error quoting it.
    # (routes.error_for answers missing inputs and cycles.ANSWERED_FROM_OUTPUT's reason codes with an error)
    if ran is not None and not ran.missing_inputs and cycles.ANSWERED_FROM_OUTPUT_SET.isdisjoint(
        ran.document["reason_codes"]
    ):
        return key, CycleRanHere(ran.record_json)
    return key, await wait_for_cycle(ctx, key, settings.rebalance_wait_s)


def _same_target(key: str, had_mg: UUID, had_node: UUID | None, mg: UUID, node: UUID | None) -> None:
    if (had_mg, had_node) != (mg, node):
        raise RequestKeyReused(f"request key {key!r} was already used for another rebalance target")


async def wait_for_cycle(ctx: BalancingContext, request_key: str, timeout_s: float) -> CycleAnswer | None:
    """The key's stored cycle, waiting up to `timeout_s`; woken by the consumer's commit signal."""
    return await wait_for_result(
        client=ctx.redis,
        channel=result_channel(ctx.settings, CYCLE_RESULT, request_key),
        fetch=lambda: cycles.answer_by_request_key(ctx.pool, request_key),
        timeout_s=timeout_s,
    )
