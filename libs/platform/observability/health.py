"""Liveness (/health) and readiness (/ready) routes.

Liveness answers as long as the process serves HTTP; readiness runs the service's checks
(database, broker, consumer progress, ...) each under a timeout, so a hung dependency reads as
not ready instead of hanging the probe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter
from fastapi.responses import JSONResponse

ReadinessCheck = Callable[[], Awaitable[bool]]

DEFAULT_CHECK_TIMEOUT_SECONDS = 2.0

_log = logging.getLogger(__name__)


async def _run_check(name: str, check: ReadinessCheck, timeout_seconds: float) -> str:
    """ "ok", "failed", "timeout" or "error: <exception>"."""
    try:
        passed = await asyncio.wait_for(check(), timeout=timeout_seconds)
    except TimeoutError:
        return "timeout"
    except Exception as exc:  # a check that raises is a failed check, reported, not a 500
        _log.warning("readiness check %s raised", name, exc_info=True)
        return f"error: {type(exc).__name__}: {exc}"
    return "ok" if passed else "failed"


async def run_checks(
    checks: Mapping[str, ReadinessCheck], timeout_seconds: float = DEFAULT_CHECK_TIMEOUT_SECONDS
) -> dict[str, str]:
    names = list(checks)
    results = await asyncio.gather(*(_run_check(n, checks[n], timeout_seconds) for n in names))
    return dict(zip(names, results, strict=True))


def health_router(
    checks: Mapping[str, ReadinessCheck], *, timeout_seconds: float = DEFAULT_CHECK_TIMEOUT_SECONDS
) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready")
    async def ready() -> JSONResponse:
        results = await run_checks(checks, timeout_seconds)
        failed = [name for name, result in results.items() if result != "ok"]
        if failed:
            return JSONResponse({"status": "not_ready", "failed": failed, "checks": results}, status_code=503)
        return JSONResponse({"status": "ready", "checks": results}, status_code=200)

    return router
