"""Picking one trace out of stored spans and arranging it as a parent/child tree. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from libs.platform.observability.trace_store import SpanRecord

# Span attributes that carry the message envelope's correlation id: ours (set by `span(...)`),
# and the OpenTelemetry messaging conventions (other instrumentations) and our consumers.
CORRELATION_ATTRIBUTES = ("correlation.id", "messaging.correlation_id", "messaging.message.conversation_id")


def matching_trace_ids(spans: Iterable[SpanRecord], trace_or_correlation_id: str) -> list[str]:
    """Trace ids that are the given id, or that hold a span whose correlation attribute equals it.

    Ordered by each trace's first span start; several traces may share one correlation id
    (e.g. an HTTP request and a later scheduled evaluation).
    """
    wanted = trace_or_correlation_id.strip()
    first_start: dict[str, int] = {}
    matched: set[str] = set()
    for s in spans:
        first_start[s.trace_id] = min(first_start.get(s.trace_id, s.start_ns), s.start_ns)
        if s.trace_id == wanted.lower() or any(
            str(s.attributes.get(k)) == wanted for k in CORRELATION_ATTRIBUTES
        ):
            matched.add(s.trace_id)
    return sorted(matched, key=lambda t: (first_start[t], t))


@dataclass(frozen=True)
class SpanNode:
    span: SpanRecord
    children: tuple[SpanNode, ...]
    # True when the span names a parent that no stored file holds (an exporter that is off, or a
    # process killed before flushing): the reader should know the tree has a gap there.
    parent_missing: bool = False


def _by_start(spans: Iterable[SpanRecord]) -> list[SpanRecord]:
    return sorted(spans, key=lambda s: (s.start_ns, s.span_id))


def build_tree(trace_spans: Sequence[SpanRecord]) -> list[SpanNode]:
    """Roots of one trace, each with its descendants; siblings ordered by start time."""
    ids = {s.span_id for s in trace_spans}
    children: dict[str, list[SpanRecord]] = defaultdict(list)
    roots: list[SpanRecord] = []
    for s in trace_spans:
        if s.parent_span_id and s.parent_span_id in ids and s.parent_span_id != s.span_id:
            children[s.parent_span_id].append(s)
        else:
            roots.append(s)

    visited: set[str] = set()

    def node(s: SpanRecord) -> SpanNode:
        visited.add(s.span_id)
        kids = tuple(node(c) for c in _by_start(children[s.span_id]) if c.span_id not in visited)
        return SpanNode(
            span=s, children=kids, parent_missing=bool(s.parent_span_id) and s.parent_span_id not in ids
        )

    trees = [node(r) for r in _by_start(roots)]
    # Spans in a parent cycle (only possible with corrupt data) have no root: show them rather than drop them.
    trees += [node(s) for s in _by_start(trace_spans) if s.span_id not in visited]
    return trees
