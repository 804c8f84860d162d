"""Liveness (/health) and readiness (/ready) routes.

Liveness answers as long as the process serves HTTP; readiness runs the service's checks
(database, broker, consumer progress, ...) each under a timeout, so a hung dependency reads as
not ready instead of hanging the probe.

The timeout is kept even when a check cannot be cancelled promptly: `asyncio.wait_for` waits for
the cancelled check to finish unwinding, and asyncpg's unwinding (cancel request, connection
release) waits on the server itself, so a SIGSTOPped Postgres used to hold /ready for as long as it
was stopped. Here a check that overruns is cancelled and left to unwind on its own; while it is
still unwinding, later probes do not start another copy (that would pile hung connections up), they
report it as still timing out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter
from fastapi.responses import JSONResponse

# True: ok; False: failed (503). A string: the service works but something needs an operator (a parked
# outbox row): /ready stays 200 with status "degraded" and the check's message, so it is seen, not hidden.
ReadinessCheck = Callable[[], Awaitable[bool | str]]

DEFAULT_CHECK_TIMEOUT_SECONDS = 2.0

_log = logging.getLogger(__name__)


class ReadinessChecks:
    """Runs named checks concurrently, each answering within the timeout whatever it waits on."""

    def __init__(
        self, checks: Mapping[str, ReadinessCheck], timeout_seconds: float = DEFAULT_CHECK_TIMEOUT_SECONDS
    ) -> None:
        self._checks = dict(checks)
        self._timeout = timeout_seconds
        self._running: dict[str, asyncio.Task[bool | str]] = {}

    async def run(self) -> dict[str, str]:
        names = list(self._checks)
        results = await asyncio.gather(*(self._run_one(n) for n in names))
        return dict(zip(names, results, strict=True))

    def _task_for(self, name: str) -> asyncio.Task[bool | str]:
        task = self._running.get(name)
        if task is None or task.done():
            task = asyncio.ensure_future(self._checks[name]())
            task.add_done_callback(self._forget(name))
            self._running[name] = task
        return task

    def _forget(self, name: str) -> Callable[[asyncio.Task[bool | str]], None]:
        def done(task: asyncio.Task[bool | str]) -> None:
            if not task.cancelled():
                task.exception()  # retrieved, so an abandoned check's error is not reported as unhandled
            if self._running.get(name) is task:
                del self._running[name]

        return done

    async def _run_one(self, name: str) -> str:
        """ "ok", "failed", "timeout", "error: <exception>" or "degraded: <message>"."""
        task = self._task_for(name)
        done, _ = await asyncio.wait({task}, timeout=self._timeout)
        if not done:
            task.cancel()  # not awaited: unwinding may itself hang on the dependency
            return "timeout"
        if task.cancelled():
            return "timeout"
        exc = task.exception()
        if exc is not None:  # a check that raises is a failed check, reported, not a 500
            _log.warning("readiness check %s raised", name, exc_info=exc)
            return f"error: {type(exc).__name__}: {exc}"
        result = task.result()
        if isinstance(result, str):
            return f"degraded: {result}"
        return "ok" if result else "failed"


async def run_checks(
    checks: Mapping[str, ReadinessCheck], timeout_seconds: float = DEFAULT_CHECK_TIMEOUT_SECONDS
) -> dict[str, str]:
    return await ReadinessChecks(checks, timeout_seconds).run()


def health_router(
    checks: Mapping[str, ReadinessCheck], *, timeout_seconds: float = DEFAULT_CHECK_TIMEOUT_SECONDS
) -> APIRouter:
    router = APIRouter(tags=["health"])
    readiness = ReadinessChecks(checks, timeout_seconds)

    @router.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready")
    async def ready() -> JSONResponse:
        results = await readiness.run()
        degraded = [name for name, result in results.items() if result.startswith("degraded: ")]
        failed = [name for name, result in results.items() if result != "ok" and name not in degraded]
        if failed:
            return JSONResponse({"status": "not_ready", "failed": failed, "checks": results}, status_code=503)
        if degraded:
            return JSONResponse({"status": "degraded", "degraded": degraded, "checks": results}, status_code=200)
        return JSONResponse({"status": "ready", "checks": results}, status_code=200)

    return router
