"""Log lines are JSON objects carrying service, trace, span, correlation and microgrid ids."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

from libs.platform.observability.logs import bind_context, json_log_handler, structlog_processors

tracer = TracerProvider().get_tracer("test")


@pytest.fixture
def buf() -> Iterator[io.StringIO]:
    """Captures what the JSON handler writes for a stdlib logger of our own (no global config touched)."""
    out = io.StringIO()
    stdlib_logger = logging.getLogger("test.observability")
    stdlib_logger.propagate = False
    stdlib_logger.setLevel(logging.INFO)
    stdlib_logger.addHandler(json_log_handler("balancing", out))
    yield out
    stdlib_logger.handlers.clear()


def _structlog_logger() -> structlog.stdlib.BoundLogger:
    # The processors setup_observability configures globally, on an explicit logger.
    return structlog.wrap_logger(
        logging.getLogger("test.observability"),
        processors=structlog_processors("balancing"),
        wrapper_class=structlog.stdlib.BoundLogger,
    )


def _lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_structlog_line_inside_a_span_has_trace_and_bound_ids(buf: io.StringIO) -> None:
    log = _structlog_logger()
    with (
        tracer.start_as_current_span("allocation") as span,
        bind_context(correlation_id="corr-1", microgrid_id="mg-1"),
    ):
        log.info("cycle_completed", outcome="APPLIED")
    (line,) = _lines(buf)
    ctx = span.get_span_context()
    assert line["event"] == "cycle_completed"
    assert line["level"] == "info"
    assert line["service"] == "balancing"
    assert line["trace_id"] == f"{ctx.trace_id:032x}"
    assert line["span_id"] == f"{ctx.span_id:016x}"
    assert (line["correlation_id"], line["microgrid_id"], line["outcome"]) == ("corr-1", "mg-1", "APPLIED")
    assert line["timestamp"].endswith("Z")


def test_outside_a_span_and_binding_the_ids_are_null_not_missing(buf: io.StringIO) -> None:
    _structlog_logger().warning("idle")
    (line,) = _lines(buf)
    assert {k: line[k] for k in ("trace_id", "span_id", "correlation_id", "microgrid_id")} == dict.fromkeys(
        ("trace_id", "span_id", "correlation_id", "microgrid_id")
    )


def test_bind_context_nests_and_restores(buf: io.StringIO) -> None:
    log = _structlog_logger()
    with bind_context(correlation_id="outer", microgrid_id="mg-1"):
        with bind_context(correlation_id="inner"):
            log.info("a")
        log.info("b")
    log.info("c")
    assert [(line["correlation_id"], line["microgrid_id"]) for line in _lines(buf)] == [
        ("inner", "mg-1"),
        ("outer", "mg-1"),
        (None, None),
    ]


def test_stdlib_library_logs_become_the_same_json_lines(buf: io.StringIO) -> None:
    library = logging.getLogger("test.observability")
    with tracer.start_as_current_span("consume") as span, bind_context(correlation_id="corr-2"):
        library.info("joined group %s", "balancing", extra={"partition": 3})
        try:
            raise ValueError("bad payload")
        except ValueError:
            library.exception("handler failed")
    first, second = _lines(buf)
    assert first["event"] == "joined group balancing"
    assert first["logger"] == "test.observability"
    assert first["level"] == "info" and first["service"] == "balancing" and first["partition"] == 3
    assert first["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert first["correlation_id"] == "corr-2"
    assert second["level"] == "error" and "ValueError: bad payload" in second["exception"]
