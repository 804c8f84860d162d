"""W3C trace context (and baggage) into and out of message and HTTP headers.

Kafka headers arrive as a list of (str, bytes) pairs; HTTP and faststream give mappings. Both are
accepted so the messaging layer never converts by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

# Explicit rather than the global default (OTEL_PROPAGATORS) so every service speaks the same format;
# setup_observability also installs it globally for the FastAPI/httpx/faststream instrumentations.
PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])

Headers = Mapping[str, str | bytes] | Iterable[tuple[str, str | bytes]]


def inject_context(headers: dict[str, str] | None = None, context: Context | None = None) -> dict[str, str]:
    """Write the current (or given) context into headers (`traceparent`, `tracestate`, `baggage`)."""
    carrier: dict[str, str] = {} if headers is None else headers
    PROPAGATOR.inject(carrier, context=context)
    return carrier


def _as_text_carrier(headers: Headers) -> dict[str, str]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    carrier: dict[str, str] = {}
    for key, value in pairs:
        # Header names are case-insensitive in HTTP; the W3C names are lower case. A repeated
        # key (Kafka allows it) keeps the last value, the one added closest to sending.
        carrier[key.lower()] = (
            value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
        )
    return carrier


def extract_context(headers: Headers | None) -> Context:
    """The context carried by the headers, to start a consumer span as its child; empty if none."""
    return PROPAGATOR.extract(_as_text_carrier(headers or {}))


def current_traceparent() -> str | None:
    """The current span as a `traceparent` value, e.g. to store with an outbox row; None outside a span."""
    return inject_context({}).get("traceparent")


def kafka_headers(headers: Mapping[str, str]) -> list[tuple[str, bytes]]:
    """Text headers as aiokafka wants them."""
    return [(k, v.encode("utf-8")) for k, v in headers.items()]
