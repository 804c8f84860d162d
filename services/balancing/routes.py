"""HTTP routes: rebalance (through the one consumer), cycle reads and microgrid status."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Header
from fastapi.responses import JSONResponse, Response

from contracts.api.balancing import (
    CycleResultResponse,
    MicrogridStatusResponse,
    RebalanceAcceptedResponse,
    RebalanceRequest,
)
from contracts.base import encode_json
from contracts.enums import ReasonCode
from libs.platform.auth import Principal, Scope, microgrid_guard, require_any_scope, require_scopes
from libs.platform.http import ApiError
from libs.platform.runtime import service_context
from services.balancing import service, views
from services.balancing.adapters.cycles import CycleAnswer, StoredCycle
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
) -> Response:
    """Trigger one microgrid balancing cycle (optionally scoped to a subtree); the same key, the same cycle."""
    body = body or RebalanceRequest()
    if idempotency_key and body.request_key and idempotency_key != body.request_key:
        raise ApiError.invalid(
            "Idempotency-Key header and body request_key differ",
            violated_rule="one_idempotency_key",
            details={"header": idempotency_key, "body": body.request_key},
        )
    try:
        key, cycle = await service.request_rebalance(
            ctx,
            microgrid_id=microgrid_id,
            node_id=body.node_id,
            expected_topology_version=body.expected_topology_version,
            request_key=idempotency_key or body.request_key,
            actor=principal.subject,
            correlation_id=correlation_id,
        )
    except service.UnknownMicrogrid as exc:
        raise ApiError.not_found(str(exc)) from exc
    except service.RequestKeyReused as exc:
        raise ApiError.conflict(str(exc)) from exc
    now = ctx.clock.now()
    if isinstance(cycle, service.CycleRanHere):
        return _json_record(microgrid_id, now, cycle.record_json)
    if cycle is None:
        accepted = RebalanceAcceptedResponse(microgrid_id=microgrid_id, timestamp=now, request_key=key)
        return JSONResponse(accepted.model_dump(mode="json"), status_code=202)
    error = error_for(cycle)
    if error is not None:
        raise error
    return _json(CycleResultResponse(microgrid_id=microgrid_id, timestamp=now, result=cycle.result))


def _json_record(microgrid_id: UUID, timestamp: datetime, record_json: bytes) -> Response:
    """CycleResultResponse's bytes around a cycle record already serialised (the record is the model's own
    JSON, `cycle_records.encode_cycle`): what `_json` writes, without parsing and re-encoding the record."""
    head = encode_json({"microgrid_id": microgrid_id, "timestamp": timestamp.astimezone(UTC)})
    return Response(head[:-1] + b',"result":' + record_json + b"}", media_type="application/json")


def _json(answer: CycleResultResponse) -> Response:
    """The answer serialised once by pydantic-core: FastAPI would validate the cycle's record again against
    the response model and encode it with the stdlib, a row per node of the tree, on every request."""
    return Response(answer.model_dump_json(), media_type="application/json")


@router.get("/{microgrid_id}/cycles/{cycle_id}", response_model=CycleResultResponse)
async def get_cycle(microgrid_id: UUID, cycle_id: UUID, ctx: Ctx, _: Reader) -> Response:
    cycle = await views.cycle_of_microgrid(ctx.pool, microgrid_id, cycle_id)
    return _json(CycleResultResponse(microgrid_id=microgrid_id, timestamp=ctx.clock.now(), result=cycle.result))


@router.get("/{microgrid_id}/status", response_model=MicrogridStatusResponse)
async def get_status(microgrid_id: UUID, ctx: Ctx, _: Reader) -> MicrogridStatusResponse:
    """Latest cycle, its breaches, active envelopes, effective circuit capacities and capability status."""
    return await views.microgrid_status(ctx.pool, microgrid_id, ctx.clock.now())


def error_for(cycle: CycleAnswer | StoredCycle) -> ApiError | None:
    """The spec's error answer for a stored cycle, if it calls for one (the cycle is stored either way).

    REJECTED for an invalid tree: 422; for a topology version conflict: 409; a fail-safe cycle for
    want of telemetry and fallback: 503. `details.cycle_id` names the stored cycle.
    """
    result = cycle.result
    details: dict[str, Any] = {"cycle_id": str(result.cycle_id), "outcome": result.outcome.value}
    decided = json.loads(cycle.output) if cycle.output is not None else {}  # kept for REJECTED cycles only
    if ReasonCode.TOPOLOGY_INVALID in result.reason_codes:
        violations = decided["topology_violations"]
        return ApiError.invalid(
            f"cycle {result.cycle_id} rejected: the topology is invalid",
            reason_code=ReasonCode.TOPOLOGY_INVALID,
            violated_rule=violations[0]["rule"] if violations else "TOPOLOGY_INVALID",
            details={**details, "violations": violations},
        )
    if ReasonCode.TOPOLOGY_VERSION_CONFLICT in result.reason_codes:
        return ApiError(
            409,
            ReasonCode.TOPOLOGY_VERSION_CONFLICT,
            f"cycle {result.cycle_id} rejected: topology version conflict",
            expected_version=decided["expected_topology_version"],
            actual_version=result.topology_version,
            details=details,
        )
    if cycle.missing_inputs:
        return ApiError(
            503,
            ReasonCode.TELEMETRY_INSUFFICIENT,
            f"cycle {result.cycle_id} ran fail safe: telemetry insufficient and no fallback",
            missing_inputs=cycle.missing_inputs,
            safe_action_taken=cycle.safe_action_taken,
            details=details,
        )
    return None


def routers() -> list[APIRouter]:
    return [router]
