"""Run one service in-process against the real stack, with an HTTP client bound to its app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from libs.platform.auth import ALL, Grant, issue_token
from libs.platform.clock import Clock
from libs.platform.messaging.topics_admin import provision
from libs.platform.runtime import ServiceContext, ServiceDefinition, ServiceRuntime, build_app
from libs.platform.settings import PlatformSettings
from libs.platform.stack_credentials import for_service

ALL_SCOPES = ("operator:read", "operator:write", "integration:write")


@dataclass
class RunningService:
    runtime: ServiceRuntime
    ctx: ServiceContext
    client: httpx.AsyncClient


def auth_headers(*scopes: str, subject: str = "test-operator", grant: Grant = ALL) -> dict[str, str]:
    """A local token; by default for every microgrid, as the local tools hold (docs/security.md)."""
    return {"Authorization": f"Bearer {issue_token(subject, scopes or ALL_SCOPES, grant)}"}


@asynccontextmanager
async def running_service(
    definition: ServiceDefinition, settings: PlatformSettings, clock: Clock | None = None
) -> AsyncIterator[RunningService]:
    """The service on `clock` (a ManualClock in most tests; the SystemClock when None)."""
    # As in production: the admin provisions the prefix's topics and ACLs (a service may not), and the
    # service works as its own database role and Kafka principal, not as the test's admin.
    await provision(settings)
    runtime = ServiceRuntime(definition, for_service(settings, definition.name), clock=clock)
    ctx = await runtime.start()
    app = build_app(definition)
    app.state.ctx = ctx
    app.state.runtime = runtime
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield RunningService(runtime=runtime, ctx=ctx, client=client)
    finally:
        await runtime.stop()
