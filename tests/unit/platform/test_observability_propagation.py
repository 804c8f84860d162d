"""Trace context crosses a message boundary: injected on one side, extracted on the other."""

from __future__ import annotations

from opentelemetry import baggage, context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from libs.platform.observability.propagation import (
    current_traceparent,
    extract_context,
    inject_context,
    kafka_headers,
)


def test_consumer_span_continues_the_producer_trace_from_kafka_headers() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span(
        "publish microgrid.rebalance_requested", kind=SpanKind.PRODUCER
    ) as producer:
        headers = kafka_headers(inject_context({"content-type": "application/json"}))
    sent = producer.get_span_context()

    # The consuming process sees only the raw Kafka headers: (str, bytes) pairs.
    ctx = extract_context(headers)
    with tracer.start_as_current_span("process", context=ctx, kind=SpanKind.CONSUMER) as consumer:
        assert consumer.get_span_context().trace_id == sent.trace_id
        assert consumer.parent is not None
        assert consumer.parent.span_id == sent.span_id
        assert consumer.parent.is_remote


def test_extract_accepts_mappings_with_bytes_or_text_and_any_header_case() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("http call") as outgoing:
        carrier = inject_context()
    as_bytes = {k.upper(): v.encode() for k, v in carrier.items()}
    for headers in (carrier, as_bytes):
        with tracer.start_as_current_span("handler", context=extract_context(headers)) as incoming:
            assert incoming.get_span_context().trace_id == outgoing.get_span_context().trace_id
            assert (
                incoming.parent is not None and incoming.parent.span_id == outgoing.get_span_context().span_id
            )


def test_baggage_travels_with_the_trace_context() -> None:
    token = context.attach(baggage.set_baggage("tenant", "depot-7"))
    try:
        carrier = inject_context({})
    finally:
        context.detach(token)
    assert baggage.get_baggage("tenant", extract_context(carrier)) == "depot-7"


def test_traceparent_is_w3c_shaped_inside_a_span_and_absent_outside() -> None:
    assert current_traceparent() is None
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("step") as s:
        tp = current_traceparent()
    ctx = s.get_span_context()
    assert tp == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    assert ctx.trace_flags.sampled


def test_headers_without_context_give_a_new_root() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("root", context=extract_context([("other", b"x")])) as root:
        assert root.parent is None
    with tracer.start_as_current_span("root", context=extract_context(None)) as root:
        assert root.parent is None
