"""Library instrumentation: HTTP server spans (FastAPI), database spans (asyncpg), HTTP client spans (httpx).

All come from the opentelemetry-instrumentation-* packages; they use the global tracer provider
and propagator that setup_observability installs. Each function is safe to call twice.
"""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

# Probes and scrapes every few seconds would bury the traces worth reading.
_UNTRACED_PATHS = r"/health$,/ready$,/metrics$"


def instrument_app(app: FastAPI) -> FastAPI:
    """Server spans for every request, continuing the caller's `traceparent`."""
    if not getattr(app, "_is_instrumented_by_opentelemetry", False):
        # receive/send sub-spans per ASGI message add nothing to a trace of request handling
        FastAPIInstrumentor.instrument_app(
            app, excluded_urls=_UNTRACED_PATHS, exclude_spans=["receive", "send"]
        )
    return app


def instrument_asyncpg() -> None:
    instrumentor = AsyncPGInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


def instrument_httpx() -> None:
    """Client spans for outgoing httpx calls, with `traceparent` injected into the request headers."""
    instrumentor = HTTPXClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
