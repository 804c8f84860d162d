"""W3C trace context (and baggage): the one propagator every service installs.

The outbox (`messaging/unit_of_work.py`, `relay.py`) and the consumer inject and extract through
OpenTelemetry's global `propagate`, which `setup_observability` sets to this propagator.
"""

from __future__ import annotations

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

# Explicit rather than the global default (OTEL_PROPAGATORS) so every service speaks the same format;
# setup_observability also installs it globally for the FastAPI and httpx instrumentations.
PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
