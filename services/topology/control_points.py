"""Capability control points: the configuration master of each capability at a microgrid scope.

Upsert by control_point_id. A control point keeps its scope (microgrid, node, capability type) for
life, because its status history is keyed to it (D-016); state, source and config may change.
Configuration owned by another bounded context is referenced opaquely (external_config_type/ref,
D-024): nothing here resolves or checks it.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from contracts.api.topology import ControlPointInput, ControlPointsView, ControlPointView, ControlPointWriteResult
from contracts.enums import CapabilityType, ControlSource, ReasonCode
from contracts.events import CapabilityControlPointUpdated, CapabilityControlPointUpdatedPayload
from contracts.records import CapabilityControlPointRecord
from libs.domain.limits import aggregate_caps_from_local_config
from libs.platform.messaging.unit_of_work import UnitOfWork
from services.topology.adapters import control_point_store, microgrid_store, status_store
from services.topology.authoring import Authoring
from services.topology.service import NotFound, Violation, invalid
from services.topology.status_ingest import projection_record


async def upsert_control_point(
    *, uow: UnitOfWork, microgrid_id: UUID, control_point_id: UUID, request: ControlPointInput, by: Authoring
) -> ControlPointWriteResult:
    conn = uow.conn
    if await microgrid_store.lock_microgrid(conn, microgrid_id) is None:
        raise NotFound(f"Microgrid {microgrid_id} not found")
    before = await control_point_store.get_control_point(conn, control_point_id)
    violations = await _violations(conn, microgrid_id, control_point_id, request, before)
    if violations:
        raise invalid("Control point rejected", violations, ReasonCode.VALIDATION_FAILED)
    record = CapabilityControlPointRecord(
        control_point_id=control_point_id, microgrid_id=microgrid_id, **request.model_dump()
    )
    if record == before:
        return ControlPointWriteResult(control_point=record, created=False, changed=False)
    await control_point_store.save_control_point(conn, record)
    await uow.publish(
        by.event(
            CapabilityControlPointUpdated,
            CapabilityControlPointUpdatedPayload(**record.model_dump(), updated_by=by.actor),
        )
    )
    return ControlPointWriteResult(control_point=record, created=before is None, changed=True)


async def _violations(
    conn: asyncpg.Connection,
    microgrid_id: UUID,
    control_point_id: UUID,
    request: ControlPointInput,
    before: CapabilityControlPointRecord | None,
) -> list[Violation]:
    out: list[Violation] = []
    node_ref = (str(request.node_id),) if request.node_id else ()
    if request.schedule_ref is not None and request.control_source is not ControlSource.LOCAL:
        out.append(
            Violation(
                "SCHEDULE_REF_ONLY_LOCAL",
                node_ref,
                "schedule_ref is valid only when control_source=LOCAL (D-015, FR-022)",
            )
        )
    if before is not None and before.microgrid_id != microgrid_id:
        out.append(
            Violation(
                "CONTROL_POINT_IN_OTHER_MICROGRID",
                node_ref,
                "control point belongs to another microgrid",
            )
        )
    elif before is not None and (before.node_id, before.capability_type) != (request.node_id, request.capability_type):
        out.append(
            Violation(
                "CONTROL_POINT_SCOPE_IMMUTABLE",
                node_ref,
                "node_id and capability_type of a control point never change (its history is keyed to it)",
            )
        )
    if request.node_id is not None and request.active:
        nodes = {n.node_id for n in await microgrid_store.load_nodes(conn, microgrid_id)}
        if request.node_id not in nodes:
            out.append(Violation("CONTROL_POINT_UNKNOWN_NODE", node_ref, "node is not in this microgrid's topology"))
    if request.active:
        holder = await control_point_store.active_control_point_for_scope(
            conn, microgrid_id, request.node_id, request.capability_type
        )
        if holder is not None and holder.control_point_id != control_point_id:
            out.append(
                Violation(
                    "ONE_ACTIVE_CONTROL_POINT_PER_SCOPE",
                    node_ref,
                    f"control point {holder.control_point_id} is already active for this"
                    f" microgrid, node and {request.capability_type.value}",
                )
            )
    if request.capability_type is CapabilityType.LOAD_BALANCING:
        try:
            aggregate_caps_from_local_config(str(control_point_id), request.local_config)
        except ValueError as exc:
            out.append(Violation("AGGREGATE_CAP_INVALID", node_ref, str(exc)))
    return out


async def read_control_points(
    *,
    conn: asyncpg.Connection,
    microgrid_id: UUID,
    capability_type: CapabilityType | None,
    node_id: UUID | None,
    include_status: bool,
    include_inactive: bool,
    now: datetime,
) -> ControlPointsView:
    if await microgrid_store.get_microgrid(conn, microgrid_id) is None:
        raise NotFound(f"Microgrid {microgrid_id} not found")
    points = await control_point_store.list_control_points(
        conn, microgrid_id, capability_type=capability_type, node_id=node_id, include_inactive=include_inactive
    )
    status = {}
    if include_status and points:
        rows = await status_store.projection_rows(conn, microgrid_id, [p.control_point_id for p in points])
        status = {r["control_point_id"]: projection_record(r, now) for r in rows}
    return ControlPointsView(
        control_points=[ControlPointView(control_point=p, status=status.get(p.control_point_id)) for p in points]
    )
