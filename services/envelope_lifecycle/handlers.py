"""One handler per consumed topic. Each runs in the consumer's unit of work (inbox row included).

Write-port commands go through the same use cases as the internal HTTP routes; upstream records keep
this service's read models (nodes, legacy circuits, control points and their status) and re-evaluate
what depends on them: forecast-source health and the feeder-circuit projection.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

from contracts import commands as cmd
from contracts import events as ev
from contracts.base import Message
from contracts.enums import ProjectionTrigger
from libs.domain.envelopes import LIVE_STATUSES
from libs.platform.messaging.consumer import PermanentHandlerError
from libs.platform.messaging.unit_of_work import UnitOfWork
from libs.platform.runtime import ServiceHandler
from services.envelope_lifecycle.adapters import capabilities, circuit_capacity, envelopes, legacy_circuits, topology
from services.envelope_lifecycle.adapters.locks import lock_microgrid
from services.envelope_lifecycle.projection import project_nodes
from services.envelope_lifecycle.service import EnvelopeNotFound, NotWithdrawable, withdraw_envelope
from services.envelope_lifecycle.settings import EnvelopeLifecycleContext as Ctx
from services.envelope_lifecycle.source_health import announce_health_change, reevaluate_source
from services.envelope_lifecycle.topology_wait import submit_or_park, submit_parked_now_known

log = logging.getLogger(__name__)


async def on_submit_operating_envelope(message: cmd.SubmitOperatingEnvelope, uow: UnitOfWork, ctx: Ctx) -> None:
    # A conflicting resubmission is refused with a rejected event (audited), not dead-lettered. A node
    # not known here yet is waited for (parked), not judged at once (read-your-writes).
    await submit_or_park(uow, message, settings=ctx.settings, now=ctx.clock.now())


async def on_withdraw_operating_envelope(message: cmd.WithdrawOperatingEnvelope, uow: UnitOfWork, ctx: Ctx) -> None:
    p = message.payload
    if p.envelope_id is None and p.source_ref is None:
        raise PermanentHandlerError("ENVELOPE_NOT_NAMED", "withdrawal names neither envelope_id nor source_ref")
    try:
        await withdraw_envelope(
            uow,
            settings=ctx.settings,
            microgrid_id=p.microgrid_id,
            envelope_id=p.envelope_id,
            source_ref=p.source_ref,
            withdrawn_by=p.withdrawn_by,
            now=ctx.clock.now(),
            causation=message,
        )
    except EnvelopeNotFound as exc:
        raise PermanentHandlerError("ENVELOPE_NOT_FOUND", str(exc)) from exc
    except NotWithdrawable as exc:
        # The envelope already stopped applying (expired or rejected): the intent holds; nothing to do.
        log.info("withdrawal ignored: %s", exc)


async def on_topology_updated(message: ev.TopologyUpdated, uow: UnitOfWork, ctx: Ctx) -> None:
    mg = message.payload.microgrid_id
    await lock_microgrid(uow.conn, mg)
    if await topology.replace_topology(uow.conn, message.payload):
        managed = {n.node_id for n in await topology.managed_nodes(uow.conn, mg)}
        await _reproject(uow, ctx, mg, managed, ctx.clock.now(), message)
        # Envelope commands that were waiting for a node of this version are judged now.
        await submit_parked_now_known(uow, mg, settings=ctx.settings, now=ctx.clock.now())


async def on_legacy_circuit_updated(message: ev.LegacyCircuitUpdated, uow: UnitOfWork, ctx: Ctx) -> None:
    await legacy_circuits.upsert_circuit(uow.conn, message.payload)
    # The circuit's default and fail-safe capacities are inputs of its projection (D-021: recompute).
    for node in await topology.nodes_attached_to(uow.conn, message.payload.circuit_id):
        await lock_microgrid(uow.conn, node.microgrid_id)
        await _reproject(uow, ctx, node.microgrid_id, {node.node_id}, ctx.clock.now(), message)


async def on_capability_control_point_updated(
    message: ev.CapabilityControlPointUpdated, uow: UnitOfWork, ctx: Ctx
) -> None:
    p = message.payload
    await lock_microgrid(uow.conn, p.microgrid_id)
    await capabilities.upsert_control_point(uow.conn, p)
    await _reevaluate_health(uow, ctx, p.microgrid_id, p.control_point_id, ctx.clock.now(), message)


async def on_capability_status_recorded(message: ev.CapabilityStatusRecorded, uow: UnitOfWork, ctx: Ctx) -> None:
    p = message.payload
    await lock_microgrid(uow.conn, p.microgrid_id)
    if await capabilities.record_status(uow.conn, p):
        await _reevaluate_health(uow, ctx, p.microgrid_id, p.control_point_id, ctx.clock.now(), message)


HANDLERS: Mapping[type[Message], ServiceHandler] = {
    cmd.SubmitOperatingEnvelope: on_submit_operating_envelope,
    cmd.WithdrawOperatingEnvelope: on_withdraw_operating_envelope,
    ev.TopologyUpdated: on_topology_updated,
    ev.LegacyCircuitUpdated: on_legacy_circuit_updated,
    ev.CapabilityControlPointUpdated: on_capability_control_point_updated,
    ev.CapabilityStatusRecorded: on_capability_status_recorded,
}


async def _reevaluate_health(
    uow: UnitOfWork, ctx: Ctx, microgrid_id: UUID, control_point_id: UUID, now: datetime, cause: Message
) -> None:
    change = await reevaluate_source(
        uow, settings=ctx.settings, microgrid_id=microgrid_id, control_point_id=control_point_id, at=now
    )
    if change is not None:  # a health change is a lifecycle trigger
        nodes = await announce_health_change(uow, change, at=now, causation=cause)
        await _project(uow, ctx, microgrid_id, nodes, now, cause)


async def _reproject(
    uow: UnitOfWork, ctx: Ctx, microgrid_id: UUID, nodes: set[UUID], now: datetime, cause: Message
) -> None:
    """Recompute those of `nodes` with live envelopes or an already projected value."""
    live = {e.node_id for e in await envelopes.search(uow.conn, microgrid_id, statuses=LIVE_STATUSES)}
    projected = {c.node_id for c in await circuit_capacity.of_microgrid(uow.conn, microgrid_id)}
    await _project(uow, ctx, microgrid_id, nodes & (live | projected), now, cause)


async def _project(
    uow: UnitOfWork, ctx: Ctx, microgrid_id: UUID, nodes: set[UUID], now: datetime, cause: Message
) -> None:
    await project_nodes(
        uow,
        settings=ctx.settings,
        microgrid_id=microgrid_id,
        node_ids=nodes,
        at=now,
        trigger=ProjectionTrigger.ENVELOPE_LIFECYCLE,
        causation=cause,
    )
