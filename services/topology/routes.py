"""The topology service's HTTP routes (the spec's Operator-Facing and Core API Shape), thin on purpose:
authorise, open a transaction, call the use case, answer `{microgrid_id, timestamp, result}`.

Reads need `operator:read`, writes `operator:write`; capability-status ingest also accepts
`integration:write` (external controllers report status without operator rights). Every route acts
only inside the token's grant: another microgrid's or depot's route answers 404 (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.routing import APIRoute

from contracts.api.topology import (
    CollectionView,
    ControlPointInput,
    ControlPointsView,
    ControlPointWriteResult,
    DepotMicrogridView,
    DepotStatusEventInput,
    MicrogridResponse,
    NodeLimitsRequest,
    NodeLimitsView,
    NodeLimitsWriteResult,
    ResourceQuery,
    ResyncResult,
    StatusEventInput,
    StatusEventRecorded,
    StatusHistoryPage,
    TopologyReplaceRequest,
    TopologyView,
    TopologyWriteResult,
)
from contracts.base import UtcDateTime
from contracts.enums import AssetType, CapabilityType, NodeStatus, NodeType
from contracts.http_errors import business_422
from libs.platform.auth import Principal, Scope, microgrid_guard, not_found, require_any_scope, require_scopes
from libs.platform.http import ApiError
from libs.platform.runtime import service_context
from services.topology import control_points, node_limits, service, status_ingest, views
from services.topology.adapters import microgrid_store
from services.topology.authoring import Authoring
from services.topology.settings import TopologyContext


def as_http(refusal: service.Refused) -> ApiError:
    """A use case's refusal as the spec's HTTP error."""
    if isinstance(refusal, service.NotFound):
        return ApiError.not_found(str(refusal))
    if isinstance(refusal, service.Conflict):
        return ApiError.conflict(
            str(refusal),
            reason_code=refusal.reason_code,
            expected_version=refusal.expected_version,
            actual_version=refusal.actual_version,
        )
    assert isinstance(refusal, service.Rejected)
    return ApiError.invalid(
        str(refusal), violated_rule=refusal.violated_rule, details=refusal.details, reason_code=refusal.reason_code
    )


class _RefusalsAsHttp(APIRoute):
    """Every route here answers the use cases' refusals (`service.Refused`) with `as_http`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handle(request)
            except service.Refused as refusal:
                raise as_http(refusal) from refusal

        return answer


router = APIRouter(tags=["topology"], route_class=_RefusalsAsHttp)

Ctx = Annotated[TopologyContext, Depends(service_context)]
_read = require_scopes(Scope.OPERATOR_READ)
_write = require_scopes(Scope.OPERATOR_WRITE)
_report = require_any_scope(Scope.OPERATOR_WRITE, Scope.INTEGRATION_WRITE)
# Microgrid routes: scope, then the `{microgrid_id}` against the grant. Depot routes: see _authorize_depot.
Reader = Annotated[Principal, Depends(microgrid_guard(_read))]
Writer = Annotated[Principal, Depends(microgrid_guard(_write))]
Reporter = Annotated[Principal, Depends(microgrid_guard(_report))]
CorrelationId = Annotated[str | None, Header(alias="X-Correlation-ID", max_length=200)]


async def _authorize_depot(ctx: TopologyContext, principal: Principal, depot_id: UUID) -> Principal:
    """A depot route needs the depot's grant or its microgrid's; else 404, as for an unknown depot.
    A dependency, so it runs before the body is judged, as the microgrid guard does."""
    microgrid = await microgrid_store.get_microgrid_of_depot(ctx.pool, depot_id)
    if not principal.grant.covers_depot(depot_id, [microgrid.microgrid_id] if microgrid else []):
        raise not_found("depot", depot_id)
    return principal


async def _depot_reader(depot_id: UUID, ctx: Ctx, who: Annotated[Principal, Depends(_read)]) -> Principal:
    return await _authorize_depot(ctx, who, depot_id)


async def _depot_writer(depot_id: UUID, ctx: Ctx, who: Annotated[Principal, Depends(_write)]) -> Principal:
    return await _authorize_depot(ctx, who, depot_id)


async def _depot_reporter(depot_id: UUID, ctx: Ctx, who: Annotated[Principal, Depends(_report)]) -> Principal:
    return await _authorize_depot(ctx, who, depot_id)


DepotReader = Annotated[Principal, Depends(_depot_reader)]
DepotWriter = Annotated[Principal, Depends(_depot_writer)]
DepotReporter = Annotated[Principal, Depends(_depot_reporter)]


def _max_clock_skew(ctx: TopologyContext) -> timedelta:
    return timedelta(seconds=ctx.settings.status_max_clock_skew_s)


def _authoring(ctx: TopologyContext, principal: Principal, correlation_id: str | None) -> Authoring:
    return Authoring(actor=principal.subject, now=ctx.clock.now(), correlation_id=correlation_id or None)


# ---- topology ----------------------------------------------------------------------------------


@router.get("/api/microgrid/{microgrid_id}/topology")
async def get_topology(
    microgrid_id: UUID,
    ctx: Ctx,
    _: Reader,
    view: Annotated[
        Literal["tree", "collection"], Query(description="tree: physical view (nested); collection: resource sets")
    ] = "tree",
    subtree_root_node_id: Annotated[UUID | None, Query(description="collection: only this subtree")] = None,
    node_type: Annotated[list[NodeType] | None, Query(description="collection: only these node types")] = None,
    attached_asset_type: Annotated[list[AssetType] | None, Query(description="collection: only these assets")] = None,
    status: Annotated[list[NodeStatus] | None, Query(description="collection: only these node statuses")] = None,
) -> MicrogridResponse[TopologyView | CollectionView]:
    """The physical topology view, or (view=collection) the operational collection view (FR-018)."""
    async with ctx.pool.acquire() as conn:
        if view == "collection":
            filters = (subtree_root_node_id, node_type, attached_asset_type, status)
            query = (
                None
                if all(f is None for f in filters)
                else ResourceQuery(
                    subtree_root_node_id=subtree_root_node_id,
                    node_types=node_type or [],
                    attached_asset_types=attached_asset_type or [],
                    statuses=status or [],
                )
            )
            result: TopologyView | CollectionView = await views.collection_view(
                conn=conn, microgrid_id=microgrid_id, query=query
            )
        else:
            result = await views.topology_view(conn=conn, microgrid_id=microgrid_id)
    return MicrogridResponse(microgrid_id=microgrid_id, timestamp=ctx.clock.now(), result=result)


@router.post(
    "/api/microgrid/{microgrid_id}/topology",
    responses=business_422("TOPOLOGY_INVALID: the tree rules (one root path, no cycle, no orphan, parent types, "
                           "asset pairs, managed nodes kept); details.violations names each"),
)
async def post_topology(
    microgrid_id: UUID, body: TopologyReplaceRequest, ctx: Ctx, who: Writer, correlation_id: CorrelationId = None
) -> MicrogridResponse[TopologyWriteResult]:
    if body.depot_id is not None:  # a body id is checked like a path id: binding a depot needs its grant
        await _authorize_depot(ctx, who, body.depot_id)
    by = _authoring(ctx, who, correlation_id)
    async with ctx.unit_of_work() as uow:
        result = await service.replace_topology(uow=uow, microgrid_id=microgrid_id, request=body, by=by)
    return MicrogridResponse(microgrid_id=microgrid_id, timestamp=by.now, result=result)


# ---- depot -------------------------------------------------------------------------------------


@router.get("/api/depot/{depot_id}/microgrid")
async def get_depot_microgrid(depot_id: UUID, ctx: Ctx, _: DepotReader) -> MicrogridResponse[DepotMicrogridView]:
    async with ctx.pool.acquire() as conn:
        result = await views.depot_view(conn=conn, depot_id=depot_id)
    return MicrogridResponse(microgrid_id=result.microgrid.microgrid_id, timestamp=ctx.clock.now(), result=result)


@router.post(
    "/api/depot/{depot_id}/microgrid/resync",
    responses=business_422("TOPOLOGY_INVALID: the resynced tree would break the tree rules"),
)
async def post_resync(
    depot_id: UUID, ctx: Ctx, who: DepotWriter, correlation_id: CorrelationId = None
) -> MicrogridResponse[ResyncResult]:
    by = _authoring(ctx, who, correlation_id)
    async with ctx.unit_of_work() as uow:
        result = await service.resync_depot(uow=uow, depot_id=depot_id, by=by)
    return MicrogridResponse(microgrid_id=result.microgrid.microgrid_id, timestamp=by.now, result=result)


@router.post(
    "/api/depot/{depot_id}/microgrid/capability-status-events",
    responses=business_422("VALIDATION_FAILED: no such control point in the depot's microgrid (FR-023), "
                           "an ambiguous capability type, or a status the control point does not take"),
)
async def post_depot_status_event(
    depot_id: UUID, body: DepotStatusEventInput, ctx: Ctx, who: DepotReporter, correlation_id: CorrelationId = None
) -> MicrogridResponse[StatusEventRecorded]:
    by = _authoring(ctx, who, correlation_id)
    async with ctx.unit_of_work() as uow:
        microgrid_id, result = await status_ingest.record_depot_status_event(
            uow=uow, depot_id=depot_id, request=body, by=by, max_clock_skew=_max_clock_skew(ctx)
        )
    return MicrogridResponse(microgrid_id=microgrid_id, timestamp=by.now, result=result)


# ---- capability control points and status -----------------------------------------------------


@router.get("/api/microgrid/{microgrid_id}/control-points")
async def get_control_points(
    microgrid_id: UUID,
    ctx: Ctx,
    _: Reader,
    capability_type: CapabilityType | None = None,
    node_id: UUID | None = None,
    include_status: bool = True,
    include_inactive: bool = False,
) -> MicrogridResponse[ControlPointsView]:
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn:
        result = await control_points.read_control_points(
            conn=conn,
            microgrid_id=microgrid_id,
            capability_type=capability_type,
            node_id=node_id,
            include_status=include_status,
            include_inactive=include_inactive,
            now=now,
        )
    return MicrogridResponse(microgrid_id=microgrid_id, timestamp=now, result=result)


@router.post(
    "/api/microgrid/{microgrid_id}/control-points/{control_point_id}",
    responses=business_422("VALIDATION_FAILED: control point rules (target node in the microgrid, "
                           "schedule_ref only for LOCAL, one per capability and scope); details.violations"),
)
async def post_control_point(
    microgrid_id: UUID,
    control_point_id: UUID,
    body: ControlPointInput,
    ctx: Ctx,
    who: Writer,
    correlation_id: CorrelationId = None,
) -> MicrogridResponse[ControlPointWriteResult]:
    by = _authoring(ctx, who, correlation_id)
    async with ctx.unit_of_work() as uow:
        result = await control_points.upsert_control_point(
            uow=uow, microgrid_id=microgrid_id, control_point_id=control_point_id, request=body, by=by
        )
    return MicrogridResponse(microgrid_id=microgrid_id, timestamp=by.now, result=result)


@router.post(
    "/api/microgrid/{microgrid_id}/control-points/{control_point_id}/status-events",
    responses=business_422("VALIDATION_FAILED: status event rules (an existing control point of the same "
                           "microgrid, FR-023); details.violations"),
)
async def post_status_event(
    microgrid_id: UUID,
    control_point_id: UUID,
    body: StatusEventInput,
    ctx: Ctx,
    who: Reporter,
    correlation_id: CorrelationId = None,
) -> MicrogridResponse[StatusEventRecorded]:
    by = _authoring(ctx, who, correlation_id)
    async with ctx.unit_of_work() as uow:
        result = await status_ingest.record_status_event(
            uow=uow,
            microgrid_id=microgrid_id,
            control_point_id=control_point_id,
            request=body,
            by=by,
            max_clock_skew=_max_clock_skew(ctx),
        )
    return MicrogridResponse(microgrid_id=microgrid_id, timestamp=by.now, result=result)


@router.get(
    "/api/microgrid/{microgrid_id}/control-points/{control_point_id}/status-events",
    responses=business_422("VALIDATION_FAILED: CURSOR_INVALID, a cursor this API did not return"),
)
async def get_status_events(
    microgrid_id: UUID,
    control_point_id: UUID,
    ctx: Ctx,
    _: Reader,
    observed_from: Annotated[UtcDateTime | None, Query(alias="from", description="observed_at >= from")] = None,
    observed_to: Annotated[UtcDateTime | None, Query(alias="to", description="observed_at < to")] = None,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")] = None,
    limit: Annotated[int | None, Query(ge=1, description="page size (default and maximum from settings)")] = None,
) -> MicrogridResponse[StatusHistoryPage]:
    size = min(limit or ctx.settings.status_history_default_page, ctx.settings.status_history_max_page)
    async with ctx.pool.acquire() as conn:
        result = await status_ingest.status_history(
            conn=conn,
            microgrid_id=microgrid_id,
            control_point_id=control_point_id,
            observed_from=observed_from,
            observed_to=observed_to,
            cursor=cursor,
            limit=size,
        )
    return MicrogridResponse(microgrid_id=microgrid_id, timestamp=ctx.clock.now(), result=result)


# ---- node limits -------------------------------------------------------------------------------


@router.get("/api/microgrid/{microgrid_id}/node-limits")
async def get_node_limits(
    microgrid_id: UUID, ctx: Ctx, _: Reader, node_id: UUID | None = None
) -> MicrogridResponse[NodeLimitsView]:
    async with ctx.pool.acquire() as conn:
        result = await node_limits.read_node_limits(conn=conn, microgrid_id=microgrid_id, node_id=node_id)
    return MicrogridResponse(microgrid_id=microgrid_id, timestamp=ctx.clock.now(), result=result)


@router.post(
    "/api/microgrid/{microgrid_id}/node-limits",
    responses=business_422("VALIDATION_FAILED: node limit rules (the node is in the microgrid, a known limit "
                           "id, one active limit per node and constraint type); details.violations"),
)
async def post_node_limits(
    microgrid_id: UUID, body: NodeLimitsRequest, ctx: Ctx, who: Writer, correlation_id: CorrelationId = None
) -> MicrogridResponse[NodeLimitsWriteResult]:
    by = _authoring(ctx, who, correlation_id)
    async with ctx.unit_of_work() as uow:
        result = await node_limits.write_node_limits(uow=uow, microgrid_id=microgrid_id, request=body, by=by)
    return MicrogridResponse(microgrid_id=microgrid_id, timestamp=by.now, result=result)
