"""The circuit-facing routes: compatibility aliases only (Compatibility Matrix). Every answer says so with
`Deprecation: true` and a `Link` to the microgrid successor route, and names the mapped microgrid_id +
node_id. Thin: validate, call the use case, answer.

A circuit route acts for the circuit's depot and the microgrids its nodes belong to: the caller's grant
must cover one of them, else 404 as for an unknown circuit (docs/security.md). A refusal lists only the
candidate microgrids the caller may see.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Header, Response, status

from contracts.api.compatibility_adapter import (
    CircuitEffectiveCapacityView,
    CircuitRebalanceResponse,
    LegacyTouSchedule,
    TouLimitsSubmitted,
    TouLimitsView,
    TranslationSummary,
)
from contracts.enums import ReasonCode
from contracts.http_errors import business_422
from libs.domain.circuit_alias import AliasFailure
from libs.platform.auth import Principal, Scope, not_found, require_platform_grant, require_scopes
from libs.platform.http import ApiError
from libs.platform.runtime import service_context
from services.compatibility_adapter import service, tou_limits, translation, views
from services.compatibility_adapter.adapters import alias_read_model
from services.compatibility_adapter.settings import CompatibilityAdapterContext
from services.compatibility_adapter.topology_wait import after_waiting, wait_for_circuit
from services.compatibility_adapter.translation_keys import MAX_IDEMPOTENCY_KEY_LENGTH

# (the literal: Starlette renamed the constant between versions)
_UNPROCESSABLE = 422

router = APIRouter(tags=["circuit compatibility aliases"])

Context = Annotated[CompatibilityAdapterContext, Depends(service_context)]
_write = require_scopes(Scope.INTEGRATION_WRITE)
_read = require_scopes(Scope.OPERATOR_READ)
IdempotencyKey = Annotated[str | None, Header(min_length=1, max_length=MAX_IDEMPOTENCY_KEY_LENGTH)]
CorrelationId = Annotated[str | None, Header(min_length=1, max_length=200)]


def alias_headers(successor: str | None = None) -> dict[str, str]:
    headers = {"Deprecation": "true"}
    if successor:
        headers["Link"] = f'<{successor}>; rel="successor-version"'
    return headers


def _announce(response: Response, successor: str | None) -> None:
    response.headers.update(alias_headers(successor))


async def _authorize_circuit(ctx: CompatibilityAdapterContext, principal: Principal, circuit_id: UUID) -> Principal:
    """A dependency, so it runs before the body is judged, as the microgrid guard does elsewhere."""
    if not principal.grant.everything:
        depot_id, microgrid_ids = await views.circuit_owners(ctx.pool, circuit_id)
        if not principal.grant.covers_depot(depot_id, microgrid_ids):
            raise not_found("circuit", circuit_id)
    return principal


async def _circuit_writer(circuit_id: UUID, ctx: Context, who: Annotated[Principal, Depends(_write)]) -> Principal:
    return await _authorize_circuit(ctx, who, circuit_id)


async def _circuit_reader(circuit_id: UUID, ctx: Context, who: Annotated[Principal, Depends(_read)]) -> Principal:
    return await _authorize_circuit(ctx, who, circuit_id)


Writer = Annotated[Principal, Depends(_circuit_writer)]
Reader = Annotated[Principal, Depends(_circuit_reader)]


def _refusal(
    failure: AliasFailure, status_code: int, principal: Principal, topology_version: int | None = None
) -> ApiError:
    # Never name a microgrid outside the caller's grant (issue 14), not even as an ambiguity candidate.
    visible = tuple(c for c in failure.candidates if principal.grant.covers_microgrid(c[0]))
    failure = replace(failure, candidates=visible)
    message = f"circuit {failure.circuit_id}: {failure.detail}"
    fields: dict[str, Any] = {"details": translation.failure_details(failure)}
    if status_code == _UNPROCESSABLE:
        fields["violated_rule"] = "circuit_alias_limit_scope"
    if topology_version is not None:
        # The 409 versions of an alias failure: it failed on `actual_version` of the circuit's topology; the
        # next version is the first that could resolve it (the same shape as a topology version conflict).
        fields["actual_version"] = topology_version
        fields["expected_version"] = topology_version + 1
        message += f" (alias map at topology v{topology_version})"
    return ApiError(status_code, failure.reason_code, message, headers=alias_headers(), **fields)


@router.post(
    "/api/circuit/{circuit_id}/rebalance_load",
    response_model=CircuitRebalanceResponse,
    responses={
        202: {
            "model": CircuitRebalanceResponse,
            "description": "Cycle not finished within the wait"
            " bound: repeat with the same Idempotency-Key to collect the result",
        }
    },
    summary="Legacy alias of POST /api/microgrid/{microgrid_id}/rebalance",
)
async def rebalance_load(
    circuit_id: UUID,
    response: Response,
    ctx: Context,
    principal: Writer,
    idempotency_key: IdempotencyKey = None,
    x_correlation_id: CorrelationId = None,
) -> CircuitRebalanceResponse:
    waited = await wait_for_circuit(ctx, circuit_id)  # a resync a moment ago may not be known here yet
    requested = await service.request_circuit_rebalance(
        ctx=ctx,
        circuit_id=circuit_id,
        idempotency_key=idempotency_key,
        correlation_id=x_correlation_id,
        requested_by=principal.subject,
        now=ctx.clock.now(),
    )
    if isinstance(requested, AliasFailure):
        version = await alias_read_model.topology_version_for_circuit(ctx.pool, circuit_id)
        raise _refusal(after_waiting(requested, waited), status.HTTP_409_CONFLICT, principal, version)
    cycle = await service.await_cycle_result(ctx=ctx, request=requested)
    _announce(response, f"/api/microgrid/{requested.microgrid_id}/rebalance")
    if cycle is None:
        response.status_code = status.HTTP_202_ACCEPTED
    return views.circuit_rebalance_response(requested, cycle, ctx.clock.now())


@router.post(
    "/api/circuit/{circuit_id}/tou_limits",
    response_model=TouLimitsSubmitted,
    status_code=status.HTTP_202_ACCEPTED,
    responses=business_422("LIMIT_SCOPE_TRANSLATION_FAILED or CIRCUIT_ALIAS_NOT_RESOLVABLE: the circuit has "
                           "no single microgrid node; ENVELOPE_INVALID: the schedule breaks the envelope rules"),
    summary="Legacy TOU limits, submitted as a TOU_LIMIT operating envelope on the circuit's node",
)
async def submit_tou_limits(
    circuit_id: UUID,
    schedule: LegacyTouSchedule,
    response: Response,
    ctx: Context,
    principal: Writer,
    x_correlation_id: CorrelationId = None,
) -> TouLimitsSubmitted:
    request = tou_limits.TouRequest(
        circuit_id=circuit_id,
        schedule=schedule,
        submitted_by=principal.subject,
        correlation_id=x_correlation_id or str(uuid4()),
    )
    waited = await wait_for_circuit(ctx, circuit_id)  # a resync a moment ago may not be known here yet
    submitted = await tou_limits.submit_tou_schedule(ctx=ctx, request=request, now=ctx.clock.now())
    if isinstance(submitted, AliasFailure):
        raise _refusal(after_waiting(submitted, waited), _UNPROCESSABLE, principal)
    if isinstance(submitted, tou_limits.InvalidSchedule):  # judged before anything was withdrawn
        raise ApiError.invalid(
            f"circuit {circuit_id}: the schedule is not a valid TOU_LIMIT envelope: {submitted.problems[0]}",
            violated_rule="ENVELOPE_INVARIANTS",
            details={"problems": submitted.problems[:20]},
            reason_code=ReasonCode.ENVELOPE_INVALID,
        )
    _announce(response, f"/api/microgrid/{submitted.microgrid_id}/status")
    return submitted


@router.get(
    "/api/circuit/{circuit_id}/tou_limits",
    response_model=TouLimitsView,
    responses=business_422("LIMIT_SCOPE_TRANSLATION_FAILED or CIRCUIT_ALIAS_NOT_RESOLVABLE: the circuit has "
                           "no single microgrid node"),
    summary="Legacy TOU limits, read back from the TOU_LIMIT envelopes on the circuit's node",
)
async def read_tou_limits(circuit_id: UUID, response: Response, ctx: Context, who: Reader) -> TouLimitsView:
    view = await tou_limits.read_tou_limits(ctx=ctx, circuit_id=circuit_id, now=ctx.clock.now())
    if isinstance(view, AliasFailure):
        raise _refusal(view, _UNPROCESSABLE, who)
    _announce(response, f"/api/microgrid/{view.microgrid_id}/status")
    return view


@router.get(
    "/api/circuit/{circuit_id}/effective_capacity",
    response_model=CircuitEffectiveCapacityView,
    summary="Circuit-facing effective capacity (derived from the microgrid's envelope state)",
)
async def effective_capacity(
    circuit_id: UUID, response: Response, ctx: Context, who: Reader
) -> CircuitEffectiveCapacityView:
    view = await views.read_effective_capacity(ctx=ctx, circuit_id=circuit_id, now=ctx.clock.now())
    if view is None:
        raise ApiError.not_found(f"circuit {circuit_id} is unknown to the compatibility adapter")
    _announce(response, f"/api/microgrid/{view.microgrid_id}/status" if view.microgrid_id else None)
    return view


@router.get(
    "/api/compatibility/translations",
    response_model=TranslationSummary,
    summary="Counts of circuit alias translations by path, result and reason code",
)
async def translations(ctx: Context, who: Annotated[Principal, Depends(_read)]) -> TranslationSummary:
    require_platform_grant(who)  # counts across every microgrid
    return await views.translation_summary(ctx=ctx, now=ctx.clock.now())
