"""Trace context crosses a message boundary: injected on one side, extracted on the other, with the
propagator every service installs (the outbox injects into a dict; the consumer decodes the Kafka
headers to text and extracts)."""

from __future__ import annotations

from opentelemetry import baggage, context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from libs.platform.observability.propagation import PROPAGATOR


def kafka_round_trip(carrier: dict[str, str]) -> dict[str, str]:
    """As the relay sends headers ((str, bytes) pairs) and the consumer reads them back."""
    sent = [(k, v.encode()) for k, v in carrier.items()]
    return {k: v.decode(errors="replace") for k, v in sent}


def test_consumer_span_continues_the_producer_trace_from_kafka_headers() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span(
        "publish microgrid.rebalance_requested", kind=SpanKind.PRODUCER
    ) as producer:
        carrier = {"content-type": "application/json"}
        PROPAGATOR.inject(carrier)
    sent = producer.get_span_context()

    ctx = PROPAGATOR.extract(kafka_round_trip(carrier))
    with tracer.start_as_current_span("process", context=ctx, kind=SpanKind.CONSUMER) as consumer:
        assert consumer.get_span_context().trace_id == sent.trace_id
        assert consumer.parent is not None
        assert consumer.parent.span_id == sent.span_id
        assert consumer.parent.is_remote


def test_baggage_travels_with_the_trace_context() -> None:
    carrier: dict[str, str] = {}
    token = context.attach(baggage.set_baggage("tenant", "depot-7"))
    try:
        PROPAGATOR.inject(carrier)
    finally:
        context.detach(token)
    assert baggage.get_baggage("tenant", PROPAGATOR.extract(kafka_round_trip(carrier))) == "depot-7"


def test_headers_without_context_give_a_new_root() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("root", context=PROPAGATOR.extract({"other": "x"})) as root:
        assert root.parent is None
    with tracer.start_as_current_span("root", context=PROPAGATOR.extract({})) as root:
        assert root.parent is None
