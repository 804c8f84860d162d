"""A client of the services gives up an idle connection before the service's HTTP door closes it.

With the same idle timeout on both sides (uvicorn's and httpx's defaults are both 5 s), a request sent
just as the server closes the connection fails with "Server disconnected without sending a response":
a fleet seeding saw it. The services close idle connections after `http_keep_alive_s`
(`mgrid run`: `uvicorn_options`); the simulator's clients drop theirs at half of it (`http_limits`).
"""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from libs.platform.settings import PlatformSettings
from simulator.transport import SimulatorSettings
from tools.run_cli import uvicorn_options


@pytest.mark.parametrize("keep_alive_s", [2, 5, 30, 3600])
def test_the_simulator_drops_idle_connections_before_the_services_close_them(keep_alive_s: int) -> None:
    service_side = uvicorn_options(PlatformSettings(http_keep_alive_s=keep_alive_s))["timeout_keep_alive"]
    client_side = SimulatorSettings(http_keep_alive_s=keep_alive_s).http_limits().keepalive_expiry
    assert service_side == keep_alive_s
    assert client_side is not None and client_side < service_side


def test_a_keep_alive_below_two_seconds_is_refused() -> None:
    with pytest.raises(ValueError, match="http_keep_alive_s"):
        PlatformSettings(http_keep_alive_s=1)


async def test_a_request_after_an_idle_gap_goes_out_on_a_fresh_connection() -> None:
    """Idle for longer than the client keeps a connection, shorter than the server does: the client has
    dropped it (a new source port), so it could never have sent on one the server was closing."""
    settings = SimulatorSettings(http_keep_alive_s=2)
    app = FastAPI()

    @app.get("/port")
    async def port(request: Request) -> dict[str, int]:
        assert request.client is not None
        return {"port": request.client.port}

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    options = {**uvicorn_options(settings), "loop": "asyncio"}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free, **options))
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{free}", limits=settings.http_limits()) as client:
            first = (await client.get("/port")).json()["port"]
            again = (await client.get("/port")).json()["port"]
            assert again == first  # kept alive between requests close together
            await asyncio.sleep(1.5)  # past the client's 1 s, inside the server's 2 s
            after_gap = (await client.get("/port")).json()["port"]
            assert after_gap != first
    finally:
        server.should_exit = True
        await serving
