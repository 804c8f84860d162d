"""Structured logs: JSON lines on stderr, each naming the service, trace, span, correlation and microgrid.

structlog renders; stdlib logging (uvicorn, aiokafka, asyncpg, httpx) is routed through the same
processors by structlog's ProcessorFormatter, so every line of a service has one shape.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, Any

import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

_correlation_id: ContextVar[str | None] = ContextVar("mgrid_correlation_id", default=None)
_microgrid_id: ContextVar[str | None] = ContextVar("mgrid_microgrid_id", default=None)

# Loggers that libraries configure with their own handlers and propagate=False; handed back to root.
_LIBRARY_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "aiokafka",
    "asyncpg",
    "httpx",
)


@contextmanager
def bind_context(
    *, correlation_id: object | None = None, microgrid_id: object | None = None
) -> Iterator[None]:
    """Within the block, every log line carries these ids (asyncio tasks started inside inherit them).
    An id left as None keeps the value bound by an outer block."""
    tokens = []
    if correlation_id is not None:
        tokens.append((_correlation_id, _correlation_id.set(str(correlation_id))))
    if microgrid_id is not None:
        tokens.append((_microgrid_id, _microgrid_id.set(str(microgrid_id))))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def add_trace_context(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    ctx = trace.get_current_span().get_span_context()
    event_dict["trace_id"] = format(ctx.trace_id, "032x") if ctx.is_valid else None
    event_dict["span_id"] = format(ctx.span_id, "016x") if ctx.is_valid else None
    return event_dict


def add_bound_ids(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    # setdefault: an id passed explicitly on the log call wins over the bound one
    event_dict.setdefault("correlation_id", _correlation_id.get())
    event_dict.setdefault("microgrid_id", _microgrid_id.get())
    return event_dict


def _add_service(service_name: str) -> Processor:
    def add_service(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service_name)
        return event_dict

    return add_service


def shared_processors(service_name: str) -> list[Processor]:
    """What every line gets, whether it came from structlog or from stdlib logging."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _add_service(service_name),
        add_trace_context,
        add_bound_ids,
    ]


def structlog_processors(service_name: str) -> list[Processor]:
    """For structlog loggers: the shared processors, then hand over to the stdlib handler to render."""
    return [
        structlog.stdlib.filter_by_level,
        *shared_processors(service_name),
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ]


def json_log_handler(service_name: str, stream: IO[str] | None = None) -> logging.Handler:
    """A stdlib handler writing the JSON line shape; used for the root logger."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared_processors(service_name), structlog.stdlib.ExtraAdder()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(default=str),
            ],
        )
    )
    return handler


def configure_logging(service_name: str, *, level: str | None = None, stream: IO[str] | None = None) -> None:
    """Process-wide: structlog and the stdlib root logger both write JSON lines to stderr.

    Run uvicorn with `log_config=None` so it keeps this configuration instead of installing its own.
    """
    level_name = (level or os.environ.get("MGRID_LOG_LEVEL") or "INFO").upper()
    structlog.configure(
        processors=structlog_processors(service_name),
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    root.handlers = [json_log_handler(service_name, stream)]
    root.setLevel(level_name)
    for name in _LIBRARY_LOGGERS:
        library_logger = logging.getLogger(name)
        library_logger.handlers.clear()
        library_logger.propagate = True
    logging.captureWarnings(True)


def get_logger(name: str | None = None, **initial: Any) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name, **initial)
