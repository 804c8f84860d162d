"""Shared observability: OpenTelemetry traces, Prometheus metrics, JSON logs, health routes.

A service calls `setup_observability("<service>")` once at start-up, mounts `metrics_router()` and
`health_router({...})`, and calls `instrument_app(app)`. The messaging layer carries trace context in
Kafka headers with the propagator `setup_observability` installs (`propagation.PROPAGATOR`); handlers
wrap domain steps in `span(...)` and ids in `bind_context(...)`. `mgrid trace <id>`
(tools/observability_cli.py) reads the local trace files.
"""

from libs.platform.observability.bootstrap import setup_observability
from libs.platform.observability.health import health_router
from libs.platform.observability.instrumentation import instrument_app
from libs.platform.observability.logs import bind_context, get_logger
from libs.platform.observability.metrics import get_metrics, metrics_router
from libs.platform.observability.tracing import set_span_attributes, span

__all__ = [
    "bind_context",
    "get_logger",
    "get_metrics",
    "health_router",
    "instrument_app",
    "metrics_router",
    "set_span_attributes",
    "setup_observability",
    "span",
]
