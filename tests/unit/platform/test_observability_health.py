"""/health is liveness; /ready runs the service's checks and names the ones that fail."""

from __future__ import annotations

import asyncio
import time

from fastapi import FastAPI
from fastapi.testclient import TestClient

from libs.platform.observability.health import health_router


async def _ok() -> bool:
    return True


async def _down() -> bool:
    return False


async def _hangs() -> bool:
    await asyncio.Event().wait()
    return True


async def _raises() -> bool:
    raise ConnectionRefusedError("broker at localhost:9092")


def _client(checks, timeout_seconds: float = 2.0) -> TestClient:
    app = FastAPI()
    app.include_router(health_router(checks, timeout_seconds=timeout_seconds))
    return TestClient(app)


def test_ready_is_200_when_every_check_passes() -> None:
    client = _client({"database": _ok, "broker": _ok})
    assert client.get("/health").json() == {"status": "ok"}
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


def test_ready_is_503_naming_each_failing_check() -> None:
    client = _client(
        {"database": _ok, "broker": _raises, "consumer_progress": _down, "cache": _hangs}, timeout_seconds=0.2
    )
    response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["failed"] == ["broker", "consumer_progress", "cache"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["consumer_progress"] == "failed"
    assert body["checks"]["cache"] == "timeout"
    assert body["checks"]["broker"].startswith("error: ConnectionRefusedError")
    # liveness does not depend on the checks
    assert client.get("/health").status_code == 200


def test_ready_answers_within_its_timeout_when_a_check_cannot_be_cancelled_promptly() -> None:
    """Defect 4: asyncpg's unwinding waits on a SIGSTOPped server; the probe must not wait with it."""
    started: list[int] = []

    async def hung_database() -> bool:
        started.append(1)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(3.0)  # like pool release waiting on the stopped server
            raise
        return True

    with _client({"database": hung_database, "broker": _ok}, timeout_seconds=0.3) as client:  # one event loop
        for _ in range(2):
            began = time.monotonic()
            response = client.get("/ready")
            assert time.monotonic() - began < 1.5
            assert response.status_code == 503
            assert response.json()["checks"] == {"database": "timeout", "broker": "ok"}
    # the second probe found the first check still unwinding and did not start another copy
    assert len(started) == 1


def test_ready_is_200_and_degraded_when_a_check_names_something_to_see_to() -> None:
    async def parked() -> str:
        return "1 outbox row parked (id 7): MessageSizeTooLargeError"

    response = _client({"database": _ok, "outbox": parked}).get("/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["degraded"] == ["outbox"]
    assert body["checks"]["outbox"] == "degraded: 1 outbox row parked (id 7): MessageSizeTooLargeError"
