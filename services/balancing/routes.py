"""HTTP routes: rebalance (through the one consumer), cycle reads and microgrid status."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Header
from fastapi.responses import JSONResponse

from contracts.api.balancing import (
    CycleResultResponse,
    MicrogridStatusResponse,
    RebalanceAcceptedResponse,
    RebalanceRequest,
)
from libs.platform.auth import Principal, Scope, microgrid_guard, require_any_scope, require_scopes
from libs.platform.http import ApiError
from libs.platform.runtime import service_context
from services.balancing import service, views
from services.balancing.settings import BalancingContext

router = APIRouter(prefix="/api/microgrid", tags=["balancing"])

Ctx = Annotated[BalancingContext, Depends(service_context)]
# Every route is under `{microgrid_id}`: scope first, then the microgrid against the token's grant (404).
Reader = Annotated[Principal, Depends(microgrid_guard(require_scopes(Scope.OPERATOR_READ)))]
# Operators and integrations may rebalance: either write scope will do.
Rebalancer = Annotated[
    Principal, Depends(microgrid_guard(require_any_scope(Scope.OPERATOR_WRITE, Scope.INTEGRATION_WRITE)))
]


@router.post(
    "/{microgrid_id}/rebalance",
    response_model=CycleResultResponse,
    responses={
        202: {"model": RebalanceAcceptedResponse, "description": "Cycle not finished within the wait"},
        409: {"description": "Cycle REJECTED: TOPOLOGY_VERSION_CONFLICT (stored; details.cycle_id)"},
        422: {"description": "Cycle REJECTED: TOPOLOGY_INVALID (stored; details.cycle_id)"},
        503: {"description": "Cycle ran fail safe: TELEMETRY_INSUFFICIENT (stored; details.cycle_id)"},
    },
)
async def rebalance(
    microgrid_id: UUID,
    ctx: Ctx,
    principal: Rebalancer,
    body: Annotated[RebalanceRequest | None, Body()] = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
    correlation_id: Annotated[str | None, Header(alias="X-Correlation-ID", max_length=200)] = None,
) -> CycleResultResponse | JSONResponse:
    """Trigger one microgrid balancing cycle (optionally scoped to a subtree); the same key, the same cycle."""
    body = body or RebalanceRequest()
    if idempotency_key and body.request_key and idempotency_key != body.request_key:
        raise ApiError.invalid(
            "Idempotency-Key header and body request_key differ",
            violated_rule="one_idempotency_key",
            details={"header": idempotency_key, "body": body.request_key},
        )
    key, cycle = await service.request_rebalance(
        ctx,
        microgrid_id=microgrid_id,
        node_id=body.node_id,
        expected_topology_version=body.expected_topology_version,
        request_key=idempotency_key or body.request_key,
        actor=principal.subject,
        correlation_id=correlation_id,
    )
    now = ctx.clock.now()
    if cycle is None:
        accepted = RebalanceAcceptedResponse(microgrid_id=microgrid_id, timestamp=now, request_key=key)
        return JSONResponse(accepted.model_dump(mode="json"), status_code=202)
    error = service.error_for(cycle)
    if error is not None:
        raise error
    return CycleResultResponse(microgrid_id=microgrid_id, timestamp=now, result=cycle.result)


@router.get("/{microgrid_id}/cycles/{cycle_id}", response_model=CycleResultResponse)
async def get_cycle(microgrid_id: UUID, cycle_id: UUID, ctx: Ctx, _: Reader) -> CycleResultResponse:
    cycle = await views.cycle_of_microgrid(ctx.pool, microgrid_id, cycle_id)
    return CycleResultResponse(microgrid_id=microgrid_id, timestamp=ctx.clock.now(), result=cycle.result)


@router.get("/{microgrid_id}/status", response_model=MicrogridStatusResponse)
async def get_status(microgrid_id: UUID, ctx: Ctx, _: Reader) -> MicrogridStatusResponse:
    """Latest cycle, its breaches, active envelopes, effective circuit capacities and capability status."""
    return await views.microgrid_status(ctx.pool, microgrid_id, ctx.clock.now())


def routers() -> list[APIRouter]:
    return [router]
