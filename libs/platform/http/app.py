"""`create_app`: the one way a service builds its FastAPI app."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, FastAPI

from contracts.http_errors import ErrorResponse
from libs.platform.http.body_limit import BodySizeLimit
from libs.platform.http.errors import install_error_handlers

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]

# Documents the real error body in OpenAPI, in place of FastAPI's default 422 schema.
_ERROR_DOCS: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorResponse, "description": "Client error (spec error shape)"},
    "5XX": {"model": ErrorResponse, "description": "Server error (spec error shape)"},
}


def create_app(
    *,
    service_name: str,
    routers: list[APIRouter],
    lifespan: Lifespan | None = None,
    max_body_bytes: int = 1_048_576,
) -> FastAPI:
    """Build a service's app. Infrastructure (Kafka broker, pools) starts in the `lifespan` it passes."""
    app = FastAPI(title=service_name, lifespan=lifespan)
    for router in routers:
        app.include_router(router, responses=_ERROR_DOCS)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_body_bytes=max_body_bytes)
    return app
