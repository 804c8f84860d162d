"""Topology use cases: replace a microgrid's tree (versioned) and resync a depot's managed nodes.

Both follow the spec's "Topology Update Guardrails": version first (409 TOPOLOGY_VERSION_CONFLICT),
then every tree rule (422 TOPOLOGY_INVALID), then the new tree at version + 1 with one
`microgrid.topology_updated` carrying the whole tree, all in one transaction with the outbox.
The tree rules are the domain's (`libs.domain.topology`); this module adds only what belongs to the
service: managed nodes are resync's, and fallback rules must name nodes of the tree.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from contracts.api.topology import ResyncResult, TopologyNodeInput, TopologyReplaceRequest, TopologyWriteResult
from contracts.enums import ReasonCode
from contracts.events import (
    CapabilityControlPointUpdated,
    CapabilityControlPointUpdatedPayload,
    NodeLimitUpdated,
    NodeLimitUpdatedPayload,
    TopologyUpdated,
    TopologyUpdatedPayload,
)
from contracts.records import FallbackRuleRecord, MicrogridNodeRecord, MicrogridRecord
from libs.domain.from_records import domain_microgrid, domain_node
from libs.domain.topology import TopologyViolation
from libs.domain.topology_edits import replace_topology as judge_replacement
from libs.platform.messaging.unit_of_work import UnitOfWork
from services.topology.adapters import control_point_store, microgrid_store, node_limit_store, read_models
from services.topology.authoring import Authoring
from services.topology.resync import resynced_nodes

# Fields of a managed node that only resync may set (operators may change its status and display order).
_MANAGED_FIELDS = ("parent_node_id", "name", "node_type", "attached_asset_type", "attached_asset_id")


@dataclass(frozen=True, slots=True)
class Violation:
    """A broken rule as the 422 body reports it (`details.violations`)."""

    rule: str
    node_ids: tuple[str, ...]
    detail: str

    @classmethod
    def of(cls, v: TopologyViolation) -> Violation:
        return cls(v.rule.value, v.node_ids, v.detail)

    def as_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "node_ids": list(self.node_ids), "detail": self.detail}


class Refused(Exception):
    """A topology use case's refusal, in the service's words; routes.py gives each kind its HTTP answer."""


class NotFound(Refused):
    """The named microgrid, depot or control point is not there."""


class Conflict(Refused):
    """The write contradicts what is stored (a depot's second microgrid, a stale topology version)."""

    def __init__(
        self,
        message: str,
        *,
        reason_code: ReasonCode = ReasonCode.CONFLICT,
        expected_version: int | None = None,
        actual_version: int | None = None,
    ) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.expected_version = expected_version
        self.actual_version = actual_version


class Rejected(Refused):
    """The write breaks a rule: the first broken rule, and every violation in `details`."""

    def __init__(self, message: str, *, violated_rule: str, details: Any, reason_code: ReasonCode) -> None:
        super().__init__(message)
        self.violated_rule = violated_rule
        self.details = details
        self.reason_code = reason_code


def invalid(message: str, violations: Sequence[Violation], reason_code: ReasonCode) -> Rejected:
    return Rejected(
        message,
        violated_rule=violations[0].rule,
        details={"violations": [v.as_json() for v in violations]},
        reason_code=reason_code,
    )




# ---- POST /api/microgrid/{microgrid_id}/topology -----------------------------------------------


async def replace_topology(
    *, uow: UnitOfWork, microgrid_id: UUID, request: TopologyReplaceRequest, by: Authoring
) -> TopologyWriteResult:
    conn = uow.conn
    microgrid = await _lock_for_topology_write(conn, microgrid_id, request.depot_id)
    current = await microgrid_store.load_nodes(conn, microgrid_id)
    by_id = {n.node_id: n for n in current}
    candidate = [_authored_node(microgrid_id, n, by_id.get(n.node_id)) for n in request.nodes]
    violations = await _judge(conn, microgrid, current, candidate, request.version)
    violations += _managed_node_violations(current, candidate)
    violations += _fallback_rule_violations(candidate, request.fallback_rules)
    if violations:
        raise invalid("Topology violates the tree rules", violations, ReasonCode.TOPOLOGY_INVALID)
    return await _commit(uow, microgrid, current, candidate, list(request.fallback_rules), by)


async def _lock_for_topology_write(
    conn: asyncpg.Connection, microgrid_id: UUID, depot_id: UUID | None
) -> MicrogridRecord:
    """The locked microgrid; a first write naming its depot creates it (version 0), else 404."""
    microgrid = await microgrid_store.lock_microgrid(conn, microgrid_id)
    if microgrid is None and depot_id is not None:
        await microgrid_store.create_microgrid_if_absent(conn, microgrid_id, depot_id)
        microgrid = await microgrid_store.lock_microgrid(conn, microgrid_id)
        if microgrid is None:
            # Not naming it: the caller may hold no grant on that microgrid (issue 14).
            raise Conflict(f"Depot {depot_id} already has a microgrid (one depot, one microgrid)")
    if microgrid is None:
        raise NotFound(f"Microgrid {microgrid_id} not found")
    if depot_id is not None and depot_id != microgrid.depot_id:
        raise invalid(
            "Microgrid belongs to another depot",
            [Violation("DEPOT_MISMATCH", (), f"microgrid {microgrid_id} belongs to another depot")],
            ReasonCode.VALIDATION_FAILED,
        )
    return microgrid


def _authored_node(
    microgrid_id: UUID, node: TopologyNodeInput, existing: MicrogridNodeRecord | None
) -> MicrogridNodeRecord:
    # model_construct: an incomplete asset pair must reach the domain's rule (422), not a ValueError here.
    return MicrogridNodeRecord.model_construct(
        **node.model_dump(), microgrid_id=microgrid_id, managed=bool(existing and existing.managed)
    )


async def _judge(
    conn: asyncpg.Connection,
    microgrid: MicrogridRecord,
    current: Sequence[MicrogridNodeRecord],
    candidate: Sequence[MicrogridNodeRecord],
    authored_version: int,
) -> list[Violation]:
    """Version check (raises Conflict) then the domain's tree rules on the whole proposed tree."""
    foreign = await microgrid_store.nodes_owned_elsewhere(conn, microgrid.microgrid_id, [n.node_id for n in candidate])
    result = judge_replacement(
        domain_microgrid(microgrid),
        [domain_node(n) for n in current],
        [domain_node(n) for n in candidate],
        authored_version,
        foreign,
    )
    if result.reason_code is ReasonCode.TOPOLOGY_VERSION_CONFLICT:
        raise Conflict(
            "Topology was changed since the version this edit was authored on",
            reason_code=ReasonCode.TOPOLOGY_VERSION_CONFLICT,
            expected_version=result.expected_version,
            actual_version=result.actual_version,
        )
    return [Violation.of(v) for v in result.violations]


def _managed_node_violations(
    current: Iterable[MicrogridNodeRecord], candidate: Iterable[MicrogridNodeRecord]
) -> list[Violation]:
    proposed = {n.node_id: n for n in candidate}
    out: list[Violation] = []
    for node in sorted((n for n in current if n.managed), key=lambda n: str(n.node_id)):
        new = proposed.get(node.node_id)
        if new is None:
            out.append(
                Violation(
                    "MANAGED_NODE_REMOVED",
                    (str(node.node_id),),
                    "managed nodes follow the depot's feeder circuits: change them by resync",
                )
            )
        elif any(getattr(new, f) != getattr(node, f) for f in _MANAGED_FIELDS):
            out.append(
                Violation(
                    "MANAGED_NODE_CHANGED",
                    (str(node.node_id),),
                    f"only status and display_order of a managed node may change, not {_MANAGED_FIELDS}",
                )
            )
    return out


def _fallback_rule_violations(
    candidate: Iterable[MicrogridNodeRecord], rules: Iterable[FallbackRuleRecord]
) -> list[Violation]:
    node_ids = {n.node_id for n in candidate}
    seen: set[UUID] = set()
    out: list[Violation] = []
    for rule in rules:
        if rule.node_id in seen:
            out.append(Violation("FALLBACK_RULE_DUPLICATE", (str(rule.node_id),), "one fallback rule per node"))
        elif rule.node_id not in node_ids:
            out.append(Violation("FALLBACK_RULE_UNKNOWN_NODE", (str(rule.node_id),), "rule names no node of the tree"))
        seen.add(rule.node_id)
    return out


# ---- POST /api/depot/{depot_id}/microgrid/resync -----------------------------------------------


async def resync_depot(*, uow: UnitOfWork, depot_id: UUID, by: Authoring) -> ResyncResult:
    conn = uow.conn
    microgrid = await microgrid_store.lock_microgrid_of_depot(conn, depot_id)
    created = False
    if microgrid is None:
        # Only a depot the circuit records know gets a microgrid: a typo must not create one (issue 14).
        if not await read_models.depot_has_circuits(conn, depot_id):
            raise NotFound(f"depot {depot_id} not found")
        created = await microgrid_store.create_microgrid_if_absent(conn, uuid.uuid4(), depot_id)
        microgrid = await microgrid_store.lock_microgrid_of_depot(conn, depot_id)
        assert microgrid is not None  # inserted above or by a concurrent resync that committed first
    feeders = await read_models.top_level_feeder_circuits(conn, depot_id)
    current = await microgrid_store.load_nodes(conn, microgrid.microgrid_id)
    desired = resynced_nodes(microgrid.microgrid_id, current, feeders)
    feeder_ids = [c.circuit_id for c in feeders]
    if {n.node_id: n for n in desired} == {n.node_id: n for n in current}:
        return ResyncResult(microgrid=microgrid, changed=False, created=created, feeder_circuit_ids=feeder_ids)
    violations = await _judge(conn, microgrid, current, desired, microgrid.version)
    if violations:
        raise invalid("Resync would break the tree rules", violations, ReasonCode.TOPOLOGY_INVALID)
    kept_ids = {n.node_id for n in desired}
    rules = [
        r for r in await microgrid_store.load_fallback_rules(conn, microgrid.microgrid_id) if r.node_id in kept_ids
    ]
    written = await _commit(uow, microgrid, current, desired, rules, by)
    return ResyncResult(**written.model_dump(), created=created, feeder_circuit_ids=feeder_ids)


# ---- the accepted write ------------------------------------------------------------------------


async def _commit(
    uow: UnitOfWork,
    microgrid: MicrogridRecord,
    current: Sequence[MicrogridNodeRecord],
    nodes: Sequence[MicrogridNodeRecord],
    fallback_rules: list[FallbackRuleRecord],
    by: Authoring,
) -> TopologyWriteResult:
    """Store the tree at version + 1; limits and control points of removed nodes are deactivated."""
    conn, mg_id = uow.conn, microgrid.microgrid_id
    nodes = [MicrogridNodeRecord.model_validate(n.model_dump()) for n in sorted(nodes, key=lambda n: str(n.node_id))]
    before = {n.node_id: n for n in current}
    after = {n.node_id: n for n in nodes}
    removed = sorted(before.keys() - after.keys(), key=str)
    await microgrid_store.replace_nodes(conn, mg_id, nodes)
    await microgrid_store.replace_fallback_rules(conn, mg_id, fallback_rules)
    version = await microgrid_store.advance_version(conn, mg_id, microgrid.version)
    stored = microgrid.model_copy(update={"version": version})
    await uow.publish(
        by.event(
            TopologyUpdated,
            TopologyUpdatedPayload(
                microgrid_id=mg_id,
                depot_id=microgrid.depot_id,
                version=version,
                updated_by=by.actor,
                nodes=nodes,
                fallback_rules=sorted(fallback_rules, key=lambda r: str(r.node_id)),
            ),
        )
    )
    limits = await node_limit_store.deactivate_limits_of_nodes(conn, mg_id, removed, by.now)
    for limit in limits:
        await uow.publish(
            by.event(NodeLimitUpdated, NodeLimitUpdatedPayload(**limit.model_dump(), updated_by=by.actor))
        )
    points = await control_point_store.deactivate_control_points_of_nodes(conn, mg_id, removed)
    for cp in points:
        await uow.publish(
            by.event(
                CapabilityControlPointUpdated,
                CapabilityControlPointUpdatedPayload(**cp.model_dump(), updated_by=by.actor),
            )
        )
    return TopologyWriteResult(
        microgrid=stored,
        changed=True,
        added_node_ids=sorted(after.keys() - before.keys(), key=str),
        removed_node_ids=removed,
        updated_node_ids=sorted((i for i in after.keys() & before.keys() if after[i] != before[i]), key=str),
        deactivated_node_limit_ids=[limit.node_limit_id for limit in limits],
        deactivated_control_point_ids=[cp.control_point_id for cp in points],
    )
