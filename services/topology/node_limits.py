"""Baseline node limits: create or update, at most one ACTIVE limit per node_id + constraint_type.

A new limit for a pair that already has an active one replaces it: the old one is deactivated
(kept as history) and both changes are published. Limits apply to physical nodes only.
"""

from __future__ import annotations

import uuid
from uuid import UUID

import asyncpg

from contracts.api.topology import NodeLimitInput, NodeLimitsRequest, NodeLimitsView, NodeLimitsWriteResult
from contracts.enums import LimitStatus, NodeType, ReasonCode
from contracts.events import NodeLimitUpdated, NodeLimitUpdatedPayload
from contracts.records import MicrogridNodeRecord, NodeLimitRecord
from libs.platform.messaging.unit_of_work import UnitOfWork
from services.topology.adapters import microgrid_store, node_limit_store
from services.topology.authoring import Authoring
from services.topology.service import NotFound, Violation, invalid

# VIRTUAL nodes are logical groupings without a physical boundary: "Only nodes carry enforceable
# physical-limit constraints", so a limit on one would have nothing to enforce it against.
LIMITABLE_NODE_TYPES: frozenset[NodeType] = frozenset(NodeType) - {NodeType.VIRTUAL}


async def write_node_limits(
    *, uow: UnitOfWork, microgrid_id: UUID, request: NodeLimitsRequest, by: Authoring
) -> NodeLimitsWriteResult:
    conn = uow.conn
    if await microgrid_store.lock_microgrid(conn, microgrid_id) is None:
        raise NotFound(f"Microgrid {microgrid_id} not found")
    nodes = {n.node_id: n for n in await microgrid_store.load_nodes(conn, microgrid_id)}
    existing = await node_limit_store.get_limits(conn, [i.node_limit_id for i in request.limits if i.node_limit_id])
    violations = _violations(microgrid_id, request.limits, nodes, existing)
    if violations:
        raise invalid("Node limits rejected", violations, ReasonCode.VALIDATION_FAILED)

    active = {
        (lim.node_id, lim.constraint_type): lim for lim in await node_limit_store.active_limits(conn, microgrid_id)
    }
    written: list[NodeLimitRecord] = []
    replaced: list[NodeLimitRecord] = []
    for item in request.limits:
        limit = NodeLimitRecord(
            node_limit_id=item.node_limit_id or uuid.uuid4(),
            microgrid_id=microgrid_id,
            node_id=item.node_id,
            constraint_type=item.constraint_type,
            limit_watts=item.limit_watts,
            source_type=item.source_type,
            status=item.status,
            updated_at=by.now,
        )
        before = existing.get(limit.node_limit_id)
        if before is not None and before.model_copy(update={"updated_at": by.now}) == limit:
            written.append(before)  # unchanged: no new timestamp, no event
            continue
        holder = active.get((limit.node_id, limit.constraint_type))
        if limit.status is LimitStatus.ACTIVE and holder is not None and holder.node_limit_id != limit.node_limit_id:
            old = holder.model_copy(update={"status": LimitStatus.INACTIVE, "updated_at": by.now})
            await _save(uow, old, by)
            replaced.append(old)
        await _save(uow, limit, by)
        written.append(limit)
        if limit.status is LimitStatus.ACTIVE:
            active[(limit.node_id, limit.constraint_type)] = limit
        elif holder is not None and holder.node_limit_id == limit.node_limit_id:
            del active[(limit.node_id, limit.constraint_type)]
    return NodeLimitsWriteResult(limits=written, replaced=replaced)


async def _save(uow: UnitOfWork, limit: NodeLimitRecord, by: Authoring) -> None:
    await node_limit_store.save_limit(uow.conn, limit)
    await uow.publish(by.event(NodeLimitUpdated, NodeLimitUpdatedPayload(**limit.model_dump(), updated_by=by.actor)))


def _violations(
    microgrid_id: UUID,
    items: list[NodeLimitInput],
    nodes: dict[UUID, MicrogridNodeRecord],
    existing: dict[UUID, NodeLimitRecord],
) -> list[Violation]:
    out: list[Violation] = []
    pairs: set[tuple[UUID, str]] = set()
    ids: set[UUID] = set()
    for item in items:
        node_ref = (str(item.node_id),)
        pair = (item.node_id, item.constraint_type.value)
        if pair in pairs:
            out.append(
                Violation(
                    "DUPLICATE_NODE_LIMIT",
                    node_ref,
                    f"{item.constraint_type.value} given twice for the node in one request",
                )
            )
        pairs.add(pair)
        if item.node_limit_id is not None:
            if item.node_limit_id in ids:
                out.append(
                    Violation("DUPLICATE_NODE_LIMIT", node_ref, f"node_limit_id {item.node_limit_id} given twice")
                )
            ids.add(item.node_limit_id)
        node = nodes.get(item.node_id)
        if node is None:
            out.append(Violation("NODE_LIMIT_UNKNOWN_NODE", node_ref, "node is not in this microgrid's topology"))
        elif node.node_type not in LIMITABLE_NODE_TYPES:
            out.append(
                Violation("NODE_TYPE_NOT_LIMITABLE", node_ref, f"{node.node_type.value} nodes carry no physical limit")
            )
        before = existing.get(item.node_limit_id) if item.node_limit_id else None
        if before is not None and (before.microgrid_id, before.node_id, before.constraint_type) != (
            microgrid_id,
            item.node_id,
            item.constraint_type,
        ):
            out.append(
                Violation(
                    "NODE_LIMIT_IDENTITY_IMMUTABLE",
                    node_ref,
                    "an existing limit keeps its microgrid, node and constraint type",
                )
            )
    return out


async def read_node_limits(*, conn: asyncpg.Connection, microgrid_id: UUID, node_id: UUID | None) -> NodeLimitsView:
    if await microgrid_store.get_microgrid(conn, microgrid_id) is None:
        raise NotFound(f"Microgrid {microgrid_id} not found")
    return NodeLimitsView(limits=await node_limit_store.active_limits(conn, microgrid_id, node_id))
