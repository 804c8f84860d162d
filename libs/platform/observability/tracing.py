"""Tracer provider for one service, where its spans go, and the `span(...)` helper for domain steps."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from enum import Enum
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes, AttributeValue

from libs.platform.observability.trace_store import JsonlSpanExporter, trace_dir

INSTRUMENTATION_NAME = "mgrid"
# Short enough that a test polling the trace files sees a span within a fraction of a second.
SCHEDULE_DELAY_MILLIS = 200
# The SDK default queue (2048) dropped a third of the spans of a burst of 5,000 four-span cycles
# (~20k spans/s); these sizes kept all of 100k. A full queue holds memory only during a burst.
MAX_QUEUE_SIZE = 32768
MAX_EXPORT_BATCH_SIZE = 4096


# A database query with no request, message or job around it is a background poll (the outbox relay,
# the pending-request sweeper, the timer scheduler): each was its own root trace, ~0.9 MB of spans
# per 30 s while idle. They are sampled to this ratio (MGRID_TRACE_IDLE_QUERY_RATIO, default none).
IDLE_QUERY_RATIO_ENV = "MGRID_TRACE_IDLE_QUERY_RATIO"
_DB_SYSTEM_ATTRIBUTES = ("db.system", "db.system.name")


# The share of every other root trace kept (MGRID_TRACE_SAMPLE_RATIO, default 1: all). A trace is kept or
# dropped by its id, where it starts; every service after follows its parent's decision (the traceparent
# header), so a kept trace is whole from the legacy event to the cycle result. A fleet may keep a share.
SAMPLE_RATIO_ENV = "MGRID_TRACE_SAMPLE_RATIO"


# At most this many root traces a second are kept by each process (MGRID_TRACE_ROOTS_PER_S, default 20;
# a burst of as many at once is kept whole). At low load every trace is kept; a fleet's 100-300 cycles a
# second would otherwise record ~10 spans each in balancing and ~3 in the adapter, and recording and
# writing them cost 1-3 ms of CPU a cycle (docs/performance.md, sixteenth round). The cycle's record,
# its explanation and replay do not depend on it: every cycle is stored whatever its trace.
ROOTS_PER_S_ENV = "MGRID_TRACE_ROOTS_PER_S"
DEFAULT_ROOTS_PER_S = 20.0
_MAX_ROOTS_PER_S = 1_000_000.0


class RootRateLimit:
    """A token bucket: `per_second` roots a second, up to `per_second` (at least one) at once."""

    def __init__(self, per_second: float, clock: Any = time.monotonic) -> None:
        self.per_second = per_second
        self._capacity = max(1.0, per_second) if per_second > 0 else 0.0
        self._tokens = self._capacity
        self._clock = clock
        self._at = clock()
        self._lock = threading.Lock()  # roots start on the event loop, but also on a thread pool's threads

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._at) * self.per_second)
            self._at = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True


class IdlePollingSampler(Sampler):
    """For root spans: a database client span (a query outside any traced work) is sampled to a
    trickle; every other root (an HTTP request, a consumed message, a publish) is kept, or `sample_ratio`
    of them, and of those at most `roots_per_s` a second."""

    def __init__(
        self, idle_query_ratio: float = 0.0, sample_ratio: float = 1.0, roots_per_s: float | None = None
    ) -> None:
        self._ratio = idle_query_ratio
        self._idle = TraceIdRatioBased(idle_query_ratio)
        self._sample_ratio = sample_ratio
        self._roots = ALWAYS_ON if sample_ratio >= 1.0 else TraceIdRatioBased(sample_ratio)
        self._limit = RootRateLimit(roots_per_s) if roots_per_s is not None else None

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        if kind is SpanKind.CLIENT and attributes and any(a in attributes for a in _DB_SYSTEM_ATTRIBUTES):
            if self._ratio <= 0.0:
                return SamplingResult(Decision.DROP)
            return self._idle.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        result = self._roots.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        if self._limit is not None and result.decision is Decision.RECORD_AND_SAMPLE and not self._limit.take():
            return SamplingResult(Decision.DROP)
        return result

    def get_description(self) -> str:
        limit = "none" if self._limit is None else self._limit.per_second
        return (
            f"IdlePollingSampler{{idle_query_ratio={self._ratio}, sample_ratio={self._sample_ratio}, "
            f"roots_per_s={limit}}}"
        )


def sampler() -> Sampler:
    """Children follow their parent; roots through IdlePollingSampler."""
    return ParentBased(root=IdlePollingSampler(
        _ratio(IDLE_QUERY_RATIO_ENV, 0.0), _ratio(SAMPLE_RATIO_ENV, 1.0), roots_per_s(os.environ)
    ))


def roots_per_s(environ: Mapping[str, str]) -> float | None:
    """MGRID_TRACE_ROOTS_PER_S in `environ`: a number of roots a second (0 keeps none), or None for
    `unlimited`; unset, the default."""
    text = environ.get(ROOTS_PER_S_ENV, "").strip()
    if text.lower() == "unlimited":
        return None
    try:
        value = float(text) if text else DEFAULT_ROOTS_PER_S
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= _MAX_ROOTS_PER_S:
        raise ValueError(f"{ROOTS_PER_S_ENV}={text!r}: a number of traces a second from 0 to 1000000, or 'unlimited'")
    return value


def _ratio(name: str, default: float) -> float:
    text = os.environ.get(name, "")
    try:
        value = float(text) if text else default
    except ValueError:
        raise ValueError(f"{name}={text!r}: a ratio from 0 to 1 is expected") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={text!r}: a ratio from 0 to 1 is expected")
    return value


def service_resource(service_name: str) -> Resource:
    # Resource.create also merges OTEL_RESOURCE_ATTRIBUTES and the SDK's own attributes.
    return Resource.create({"service.name": service_name, "service.namespace": "mgrid"})


def span_exporter(service_name: str) -> tuple[SpanExporter, str]:
    """OTLP/HTTP when MGRID_OTLP_ENDPOINT is set, else the local JSON-lines store; with where it goes."""
    endpoint = os.environ.get("MGRID_OTLP_ENDPOINT")
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # Accept the collector's base address (http://host:4318) as well as the full traces URL.
        url = endpoint if endpoint.rstrip("/").endswith("/v1/traces") else endpoint.rstrip("/") + "/v1/traces"
        return OTLPSpanExporter(endpoint=url), url
    path = trace_dir() / f"{service_name}.jsonl"
    return JsonlSpanExporter(path), str(path)


def build_tracer_provider(
    service_name: str, exporter: SpanExporter, *, schedule_delay_millis: int = SCHEDULE_DELAY_MILLIS
) -> TracerProvider:
    provider = TracerProvider(resource=service_resource(service_name), sampler=sampler())
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter,
            schedule_delay_millis=schedule_delay_millis,
            max_queue_size=MAX_QUEUE_SIZE,
            max_export_batch_size=MAX_EXPORT_BATCH_SIZE,
        )
    )
    return provider


_TRACER: tuple[trace.TracerProvider, trace.Tracer] | None = None


def get_tracer() -> trace.Tracer:
    """The project's tracer on the process-wide provider (a no-op one until setup_observability runs).

    Kept per provider: a provider makes a new tracer on every call, and a cycle opens several spans."""
    global _TRACER
    provider = trace.get_tracer_provider()
    if _TRACER is None or _TRACER[0] is not provider:
        _TRACER = (provider, provider.get_tracer(INSTRUMENTATION_NAME))
    return _TRACER[1]


def attribute_key(name: str) -> str:
    """`microgrid_id` -> `microgrid.id`: keyword names cannot hold dots, span attribute names do."""
    return name[: -len("_id")] + ".id" if name.endswith("_id") and len(name) > 3 else name


def attribute_value(value: Any) -> AttributeValue | None:
    """OTel accepts str/bool/int/float and homogeneous sequences; anything else becomes text."""
    if value is None:
        return None
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(str(attribute_value(v)) for v in value)  # sorted: a set has no order to keep
    if isinstance(value, list | tuple):
        return [str(attribute_value(v)) for v in value]
    return str(value)


def span_attributes(attributes: Mapping[str, Any] | None = None, **attrs: Any) -> dict[str, AttributeValue]:
    """Explicit (dotted) names as given; keyword names through `attribute_key`; None values dropped."""
    out: dict[str, AttributeValue] = {}
    for key, raw in [*(attributes or {}).items(), *((attribute_key(k), v) for k, v in attrs.items())]:
        value = attribute_value(raw)
        if value is not None:
            out[key] = value
    return out


@contextmanager
def span(name: str, /, attributes: Mapping[str, Any] | None = None, **attrs: Any) -> Iterator[trace.Span]:
    """A child span of the current one for a domain step, e.g.
    `with span("allocation", microgrid_id=mg, cycle_id=cid) as s: ...; s.set_attribute("outcome", ...)`.
    An exception escaping the block is recorded on the span and marks it as an error."""
    with get_tracer().start_as_current_span(name, attributes=span_attributes(attributes, **attrs)) as current:
        yield current


def set_span_attributes(attributes: Mapping[str, Any] | None = None, **attrs: Any) -> None:
    """Add attributes known only at the end of a step (outcome, reason_codes) to the current span."""
    trace.get_current_span().set_attributes(span_attributes(attributes, **attrs))
