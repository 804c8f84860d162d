"""Shared observability: OpenTelemetry traces, Prometheus metrics, JSON logs, health routes.

A service calls `setup_observability("<service>")` once at start-up, mounts `metrics_router()` and
`health_router({...})`, and calls `instrument_app(app)`. The messaging layer carries trace context
with `inject_context` / `extract_context`; handlers wrap domain steps in `span(...)` and ids in
`bind_context(...)`. `mgrid trace <id>` (observability_cli) reads the local trace files.
"""

from libs.platform.observability.bootstrap import Observability, setup_observability
from libs.platform.observability.health import ReadinessCheck, health_router
from libs.platform.observability.instrumentation import instrument_app, instrument_asyncpg, instrument_httpx
from libs.platform.observability.logs import (
    bind_context,
    current_correlation_id,
    current_microgrid_id,
    get_logger,
)
from libs.platform.observability.metrics import Metrics, get_metrics, metrics_router
from libs.platform.observability.propagation import (
    current_traceparent,
    extract_context,
    inject_context,
    kafka_headers,
)
from libs.platform.observability.trace_store import trace_dir
from libs.platform.observability.tracing import get_tracer, set_span_attributes, span

__all__ = [
    "Metrics",
    "Observability",
    "ReadinessCheck",
    "bind_context",
    "current_correlation_id",
    "current_microgrid_id",
    "current_traceparent",
    "extract_context",
    "get_logger",
    "get_metrics",
    "get_tracer",
    "health_router",
    "inject_context",
    "instrument_app",
    "instrument_asyncpg",
    "instrument_httpx",
    "kafka_headers",
    "metrics_router",
    "set_span_attributes",
    "setup_observability",
    "span",
    "trace_dir",
]
