"""Read-your-writes across services (issue 15, defect 7): a write naming a node this service has not
seen yet waits, bounded (`envelope_topology_wait_s`), for the topology that brings it, before it is
judged; only then is it rejected, saying that it waited.

Right after a topology write the new node is in the topology service but not yet here (it arrives
with `microgrid.topology_updated`). The HTTP door waits in the request for the node to appear. The
command topic cannot wait in its handler (the topology update comes through the same consumer), so
the command is parked, as balancing parks a rebalance request: the topology handler judges it once
the node is known, and a sweeper judges it at its deadline.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from uuid import UUID

from contracts.commands import SubmitOperatingEnvelope
from libs.platform.messaging.parked import judge_expired, sweep_forever
from libs.platform.messaging.unit_of_work import UnitOfWork
from services.envelope_lifecycle.adapters import parked_submissions, topology
from services.envelope_lifecycle.adapters.locks import lock_microgrid
from services.envelope_lifecycle.service import Ingested, submit_envelope
from services.envelope_lifecycle.settings import EnvelopeLifecycleContext, EnvelopeLifecycleSettings
from services.envelope_lifecycle.submission import EnvelopeSubmission

_POLL_S = 0.05


async def wait_for_node(ctx: EnvelopeLifecycleContext, microgrid_id: UUID, node_id: UUID) -> float | None:
    """Wait up to the setting for the node to be known here; None when it is, else the seconds waited."""
    wait_s = ctx.settings.envelope_topology_wait_s
    started = time.monotonic()
    while await topology.node(ctx.pool, microgrid_id, node_id) is None:
        waited = time.monotonic() - started
        if waited >= wait_s:
            return waited
        await asyncio.sleep(_POLL_S)
    return None


def submission_of(message: SubmitOperatingEnvelope) -> EnvelopeSubmission:
    p = message.payload
    return EnvelopeSubmission(
        microgrid_id=p.microgrid_id,
        node_id=p.node_id,
        origin_control_point_id=p.origin_control_point_id,
        envelope_type=p.envelope_type.value,
        constraint_type=p.constraint_type.value,
        effective_from=p.effective_from,
        effective_to=p.effective_to,
        source_ref=p.source_ref,
        blocks=tuple(p.blocks),
        submitted_by=p.submitted_by,
        supersedes_source_refs=tuple(p.supersedes_source_refs),
    )


async def submit_or_park(
    uow: UnitOfWork, message: SubmitOperatingEnvelope, *, settings: EnvelopeLifecycleSettings, now: datetime
) -> Ingested | None:
    """Judge the command now, or park it until its node is known (None when parked)."""
    p = message.payload
    await lock_microgrid(uow.conn, p.microgrid_id)
    if await topology.node(uow.conn, p.microgrid_id, p.node_id) is None and settings.envelope_topology_wait_s > 0:
        deadline = now + timedelta(seconds=settings.envelope_topology_wait_s)
        await parked_submissions.park(uow.conn, message, deadline)
        return None
    return await submit_envelope(uow, settings=settings, submission=submission_of(message), now=now,
                                 causation=message)


async def submit_parked_now_known(
    uow: UnitOfWork, microgrid_id: UUID, *, settings: EnvelopeLifecycleSettings, now: datetime
) -> int:
    """After a topology update (in its transaction): judge the parked commands whose node arrived."""
    ready = await parked_submissions.take_known(uow.conn, microgrid_id)
    for message in ready:
        await submit_envelope(uow, settings=settings, submission=submission_of(message), now=now, causation=message)
    return len(ready)


async def expire_parked_submissions(ctx: EnvelopeLifecycleContext) -> int:
    """Commands whose wait is over are judged against what is known: rejected, saying they waited."""
    settings = ctx.settings

    async def judge(uow: UnitOfWork, message: SubmitOperatingEnvelope) -> None:
        await lock_microgrid(uow.conn, message.payload.microgrid_id)
        await submit_envelope(uow, settings=settings, submission=submission_of(message), now=ctx.clock.now(),
                              causation=message, waited_for_node_s=settings.envelope_topology_wait_s)

    return await judge_expired(
        parked_submissions.take_expired, unit_of_work=ctx.unit_of_work, now=ctx.clock.now, judge=judge
    )


def parked_submission_sweeper(ctx: EnvelopeLifecycleContext) -> list:
    interval = ctx.settings.envelope_topology_sweep_interval_s
    return [lambda: sweep_forever(lambda: expire_parked_submissions(ctx), interval)]
