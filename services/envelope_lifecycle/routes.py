"""Internal HTTP door of the envelope write port, and the operator reads (docs/envelopes.md).

Thin: parse, call the same use cases as the command-topic handlers, answer in the spec's shapes.
A rejected envelope is committed (row, history, rejected event) before the 422 is raised.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response

from contracts.api.envelope_lifecycle import (
    EffectiveCircuitCapacityView,
    EnvelopeHistory,
    EnvelopeReceipt,
    ForecastSourceView,
    OperatingEnvelopeSubmission,
    OperatingEnvelopeView,
)
from contracts.api.topology import MicrogridResponse
from contracts.enums import EnvelopeStatus, ReasonCode
from contracts.http_errors import business_422
from libs.platform.auth import Principal, Scope, microgrid_guard, require_scopes
from libs.platform.http import ApiError
from libs.platform.runtime import service_context
from services.envelope_lifecycle import views
from services.envelope_lifecycle.service import (
    EnvelopeNotFound,
    Ingested,
    NotWithdrawable,
    submit_envelope,
    withdraw_envelope,
)
from services.envelope_lifecycle.settings import EnvelopeLifecycleContext
from services.envelope_lifecycle.submission import EnvelopeSubmission
from services.envelope_lifecycle.topology_wait import wait_for_node

router = APIRouter(prefix="/internal/microgrid/{microgrid_id}", tags=["operating envelopes (internal)"])

Ctx = Annotated[EnvelopeLifecycleContext, Depends(service_context)]
# Every route is under `{microgrid_id}`: scope first, then the microgrid against the token's grant (404).
Writer = Annotated[Principal, Depends(microgrid_guard(require_scopes(Scope.INTEGRATION_WRITE)))]
Reader = Annotated[Principal, Depends(microgrid_guard(require_scopes(Scope.OPERATOR_READ)))]


@router.post(
    "/operating-envelopes",
    status_code=201,
    responses={
        200: {"description": "Replay of an already ingested source_ref: the same envelope, nothing new"},
        **business_422("ENVELOPE_INVALID: the envelope rules (known types, target node in the microgrid, window "
                       "and blocks, window not elapsed); stored REJECTED with the violated_rule"),
    },
)
async def submit(
    microgrid_id: UUID, body: OperatingEnvelopeSubmission, response: Response, ctx: Ctx, principal: Writer
) -> MicrogridResponse[EnvelopeReceipt]:
    """Submit one operating envelope (idempotent by source_ref)."""
    submission = EnvelopeSubmission(
        microgrid_id=microgrid_id,
        node_id=body.node_id,
        origin_control_point_id=body.origin_control_point_id,
        envelope_type=body.envelope_type,
        constraint_type=body.constraint_type,
        effective_from=body.effective_from,
        effective_to=body.effective_to,
        source_ref=body.source_ref,
        blocks=tuple(body.blocks),
        # The actor is the token's subject; a body's submitted_by is kept only as a labelled claim.
        submitted_by=principal.subject,
        claimed_by=body.submitted_by,
    )
    # Read-your-writes: a node written to the topology a moment ago may not be known here yet.
    waited = await wait_for_node(ctx, microgrid_id, body.node_id)
    now = ctx.clock.now()
    async with ctx.unit_of_work() as uow:
        outcome = await submit_envelope(
            uow, settings=ctx.settings, submission=submission, now=now, waited_for_node_s=waited
        )
    if outcome.conflict:  # answered after the commit, so the refusal's audit event is kept
        raise ApiError.conflict(f"source_ref {submission.source_ref!r} was already ingested with different content")
    if outcome.rejected:
        raise _rejection(outcome)
    if outcome.replay:
        response.status_code = 200
    return _receipt(microgrid_id, outcome, now)


@router.post("/operating-envelopes/{envelope_id}/withdraw")
async def withdraw(
    microgrid_id: UUID, envelope_id: UUID, ctx: Ctx, principal: Writer
) -> MicrogridResponse[EnvelopeReceipt]:
    """Withdraw a PENDING or ACTIVE envelope now; a repeated withdrawal answers the same (replay)."""
    now = ctx.clock.now()
    try:
        async with ctx.unit_of_work() as uow:
            outcome = await withdraw_envelope(
                uow,
                settings=ctx.settings,
                microgrid_id=microgrid_id,
                envelope_id=envelope_id,
                withdrawn_by=principal.subject,
                now=now,
            )
    except EnvelopeNotFound as exc:
        raise ApiError.not_found(str(exc)) from exc
    except NotWithdrawable as exc:
        raise ApiError.conflict(str(exc)) from exc
    return _receipt(microgrid_id, outcome, now)


@router.get("/operating-envelopes")
async def list_envelopes(
    microgrid_id: UUID,
    ctx: Ctx,
    _: Reader,
    node_id: UUID | None = None,
    status: Annotated[list[EnvelopeStatus] | None, Query()] = None,
) -> MicrogridResponse[list[OperatingEnvelopeView]]:
    """Envelopes of the microgrid, newest first; filter by node and status (repeatable), e.g. status=ACTIVE."""
    found = await views.list_envelopes(
        ctx.pool, microgrid_id=microgrid_id, node_id=node_id, statuses=tuple(status) if status else None
    )
    return MicrogridResponse(microgrid_id=microgrid_id, timestamp=ctx.clock.now(), result=found)


@router.get("/operating-envelopes/{envelope_id}")
async def envelope_history(
    microgrid_id: UUID, envelope_id: UUID, ctx: Ctx, _: Reader
) -> MicrogridResponse[EnvelopeHistory]:
    """One envelope with its lifecycle history (receipt, boundaries, expiry, withdrawal, health changes)."""
    found = await views.envelope_history(ctx.pool, microgrid_id=microgrid_id, envelope_id=envelope_id)
    if found is None:
        raise ApiError.not_found(f"no envelope {envelope_id} in microgrid {microgrid_id}")
    return MicrogridResponse(microgrid_id=microgrid_id, timestamp=ctx.clock.now(), result=found)


@router.get("/effective-circuit-capacity")
async def effective_circuit_capacity(
    microgrid_id: UUID, ctx: Ctx, _: Reader
) -> MicrogridResponse[EffectiveCircuitCapacityView]:
    """The last effective capacity projected to each managed feeder circuit, and scopes that cannot project."""
    view = await views.effective_circuit_capacities(ctx.pool, microgrid_id=microgrid_id)
    return MicrogridResponse(microgrid_id=microgrid_id, timestamp=ctx.clock.now(), result=view)


@router.get("/forecast-sources")
async def forecast_sources(microgrid_id: UUID, ctx: Ctx, _: Reader) -> MicrogridResponse[list[ForecastSourceView]]:
    """Health of each forecast source (origin control point) as the scheduler last evaluated it."""
    found = await views.forecast_source_health(ctx.pool, microgrid_id=microgrid_id)
    return MicrogridResponse(microgrid_id=microgrid_id, timestamp=ctx.clock.now(), result=found)


def _receipt(microgrid_id: UUID, outcome: Ingested, now: datetime) -> MicrogridResponse[EnvelopeReceipt]:
    record = outcome.envelope.record()
    assert record is not None
    return MicrogridResponse(
        microgrid_id=microgrid_id, timestamp=now, result=EnvelopeReceipt(envelope=record, replay=outcome.replay)
    )


def _rejection(outcome: Ingested) -> ApiError:
    env = outcome.envelope
    return ApiError.invalid(
        env.rejection_reason or "operating envelope is invalid",
        violated_rule=env.violated_rule or "",
        details={"envelope_id": str(env.envelope_id), "replay": outcome.replay, **env.rejection_details},
        reason_code=ReasonCode.ENVELOPE_INVALID,
    )
