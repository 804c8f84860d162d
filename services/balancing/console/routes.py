"""The console's HTTP side: the operator picture, cycle explanations, what-if, the live stream and the page.

Every data route takes the same bearer token, scopes (and, as auth grows, microgrid claims) as the rest
of the API, through `require_scopes`. The page itself is a static shell with no data in it: its script
calls these routes with the operator's token, so the page can never show more than the API would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, StreamingResponse
from redis.exceptions import RedisError

from contracts.api.console import (
    ConsoleChange,
    CycleExplanation,
    MicrogridDirectory,
    MicrogridEntry,
    NodeOutcome,
    OperatorPicture,
    Viewer,
    WhatIfRequest,
    WhatIfResponse,
)
from contracts.http_errors import business_422
from libs.platform.auth import Principal, Scope, microgrid_guard, not_found, require_scopes
from libs.platform.http import ApiError
from libs.platform.runtime import service_context
from services.balancing import service
from services.balancing.adapters import read_models
from services.balancing.console import picture, store
from services.balancing.console.handlers import console_channel
from services.balancing.console.what_if import what_if
from services.balancing.replay import explain_stored_cycle
from services.balancing.settings import BalancingContext
from services.balancing.views import cycle_of_microgrid

STATIC = Path(__file__).parent / "static"
# The only files the page may load: the shell, its script and style, and the vendored uPlot (no CDN).
_FILES = {
    "console.js": "text/javascript",
    "console.css": "text/css",
    "vendor/uPlot.iife.min.js": "text/javascript",
    "vendor/uPlot.min.css": "text/css",
}
KEEPALIVE_S = 15.0

api = APIRouter(prefix="/api/operator", tags=["operator console"])
page = APIRouter(tags=["operator console page"])

Ctx = Annotated[BalancingContext, Depends(service_context)]
# The same scopes and microgrid grants as the API: outside the grant a microgrid does not exist (404).
AnyReader = Annotated[Principal, Depends(require_scopes(Scope.OPERATOR_READ))]
Reader = Annotated[Principal, Depends(microgrid_guard(require_scopes(Scope.OPERATOR_READ)))]
Writer = Annotated[Principal, Depends(microgrid_guard(require_scopes(Scope.OPERATOR_READ, Scope.OPERATOR_WRITE)))]


def _viewer(principal: Principal) -> Viewer:
    return Viewer(subject=principal.subject, scopes=sorted(principal.scopes),
                  can_write=str(Scope.OPERATOR_WRITE) in principal.scopes)


async def _picture(ctx: BalancingContext, microgrid_id: UUID, principal: Principal) -> OperatorPicture:
    return await picture.operator_picture(
        ctx.pool, microgrid_id, now=ctx.clock.now(),
        freshness_seconds=ctx.settings.telemetry_freshness_seconds, viewer=_viewer(principal),
    )


@api.get("/microgrids", response_model=MicrogridDirectory)
async def list_microgrids(ctx: Ctx, principal: AnyReader) -> MicrogridDirectory:
    rows = [r for r in await picture.known_microgrids(ctx.pool) if principal.grant.covers_microgrid(r["microgrid_id"])]
    return MicrogridDirectory(
        timestamp=ctx.clock.now(),
        microgrids=[MicrogridEntry(microgrid_id=r["microgrid_id"], depot_id=r["depot_id"],
                                   topology_version=r["version"]) for r in rows],
    )


@api.get("/microgrids/{microgrid_id}", response_model=OperatorPicture)
async def microgrid_picture(microgrid_id: UUID, ctx: Ctx, principal: Reader) -> OperatorPicture:
    """The whole operator picture: tree, limits and their sources, capacities, status, cycles, envelopes, timelines."""
    return await _picture(ctx, microgrid_id, principal)


@api.get("/depots/{depot_id}", response_model=OperatorPicture)
async def depot_picture(depot_id: UUID, ctx: Ctx, principal: AnyReader) -> OperatorPicture:
    """The same picture, found by the depot (one depot, one microgrid)."""
    microgrid_id = await picture.microgrid_of_depot(ctx.pool, depot_id)
    if not principal.grant.covers_depot(depot_id, [microgrid_id]):
        raise not_found("depot", depot_id)
    return await _picture(ctx, microgrid_id, principal)


@api.get("/microgrids/{microgrid_id}/cycles/{cycle_id}/explanation", response_model=CycleExplanation)
async def explain(microgrid_id: UUID, cycle_id: UUID, ctx: Ctx, _: Reader) -> CycleExplanation:
    """What `mgrid cycle explain` prints, with each connector's binding constraint and its source."""
    stored = await cycle_of_microgrid(ctx.pool, microgrid_id, cycle_id)
    async with ctx.pool.acquire() as conn:
        sources = picture.ref_sources(await read_models.load_microgrid_state(conn, microgrid_id))
    return CycleExplanation(cycle_id=cycle_id, microgrid_id=microgrid_id, explanation=explain_stored_cycle(stored),
                            connectors=picture.console_cycle(stored.result, sources).connectors)


@api.post(
    "/microgrids/{microgrid_id}/what-if",
    response_model=WhatIfResponse,
    responses=business_422(
        "The proposed change breaks a rule of what it proposes (ENVELOPE_INVARIANTS, a TOU period that ends "
        "before it starts, a node or circuit not in this microgrid): the same verdict the write would get."
    ),
)
async def preview(microgrid_id: UUID, body: WhatIfRequest, ctx: Ctx, principal: Writer) -> WhatIfResponse:
    """The cycle a node limit, envelope or legacy TOU schedule would produce now; stores and publishes nothing."""
    return await what_if(ctx.pool, microgrid_id, body, actor=principal.subject, now=ctx.clock.now(),
                         settings=service.cycle_settings(ctx.settings))


@api.get("/microgrids/{microgrid_id}/events", response_class=StreamingResponse,
         responses={200: {"content": {"text/event-stream": {}}, "description": "changed events"}})
async def events(microgrid_id: UUID, request: Request, ctx: Ctx, _: Reader) -> StreamingResponse:
    """Server-sent events: `changed` after a cycle completes or an envelope, limit or capacity changes."""
    return StreamingResponse(_stream(ctx, microgrid_id, request), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _change(ctx: BalancingContext, microgrid_id: UUID) -> str:
    """The latest cycle in the event itself (one indexed row), so the page shows it before it reloads the rest."""
    [latest] = await store.recent_cycles(ctx.pool, microgrid_id, 1) or [None]
    change = ConsoleChange(
        latest_cycle=picture.console_cycle(latest, {}) if latest else None,
        nodes=[NodeOutcome(node_id=n.node_id, requested_watts=n.requested_watts, allocated_watts=n.allocated_watts,
                           effective_limit_watts=n.effective_limit_watts)
               for n in (latest.allocation_summary.by_node if latest else [])],
    )
    return change.model_dump_json()


async def _stream(ctx: BalancingContext, microgrid_id: UUID, request: Request) -> AsyncIterator[bytes]:
    pubsub = ctx.redis.pubsub()
    try:
        await pubsub.subscribe(console_channel(ctx.settings, microgrid_id))
        yield b"event: ready\ndata: {}\n\n"
        while not await request.is_disconnected():
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=KEEPALIVE_S)
            except RedisError:
                await asyncio.sleep(1.0)  # the page reloads on its own timer meanwhile
                continue
            if message is None:
                yield b": keepalive\n\n"
                continue
            yield f"event: changed\ndata: {await _change(ctx, microgrid_id)}\n\n".encode()
    finally:
        with contextlib.suppress(RedisError):
            await pubsub.aclose()


# ---- the page ------------------------------------------------------------------------------------


@page.get("/console", response_class=HTMLResponse, include_in_schema=False)
@page.get("/console/depots/{depot_id}", response_class=HTMLResponse, include_in_schema=False)
@page.get("/console/microgrids/{microgrid_id}", response_class=HTMLResponse, include_in_schema=False)
async def console_page() -> FileResponse:
    return FileResponse(STATIC / "console.html", media_type="text/html", headers={"Cache-Control": "no-store"})


@page.get("/console/static/{name:path}", include_in_schema=False)
async def console_static(name: str) -> FileResponse:
    if name not in _FILES:
        raise ApiError.not_found(f"no console file {name}")
    return FileResponse(STATIC / name, media_type=_FILES[name])


def routers() -> list[APIRouter]:
    return [api, page]
