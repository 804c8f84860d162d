"""Where a request's time goes between the services, read from the spans they wrote (the trace store).

For the single-request runs (`fleet.py --latency`): every legacy trigger is one trace from the adapter's
consumer span to balancing's `cycle_completed` publish. Per step, the median start (from the adapter
taking the trigger) and duration over the run's traces: the gaps between steps are the commit and relay
delay (a handler's end -> its events' publish) and the Kafka hop with the consumer's fetch (a publish ->
the next service's consumer span).
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from libs.platform.observability.trace_store import SpanRecord

ROOT = "load_balancer.rebalance_requested process"  # the adapter's consumer span for a legacy trigger


@dataclass(frozen=True)
class Step:
    service: str
    name: str  # without the run's topic prefix
    start_ms: float  # median, from the root span's start
    duration_ms: float  # median
    traces: int


def read_run_spans(folder: Path, prefix: str, since_s: float) -> list[SpanRecord]:
    """The spans of the traces that touched the run's topics, from files written since `since_s`."""
    files = [p for p in sorted(folder.glob("*.jsonl")) if p.stat().st_mtime >= since_s] if folder.is_dir() else []
    lines: list[str] = []
    traces: set[str] = set()
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                if '"trace_id":"' not in line:
                    continue
                lines.append(line)
                if prefix in line:
                    traces.add(_trace_id(line))
    spans = []
    for line in lines:
        if _trace_id(line) in traces:
            try:
                spans.append(SpanRecord.from_json(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a stopped process
    return spans


def _trace_id(line: str) -> str:
    at = line.index('"trace_id":"') + len('"trace_id":"')
    return line[at : line.index('"', at)]


def hop_timeline(spans: Iterable[SpanRecord], prefix: str) -> list[Step]:
    """The median timeline of the legacy-trigger traces: the steps seen in at least half of them."""
    by_trace: dict[str, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    offsets: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    roots = 0
    for trace in by_trace.values():
        root = [s for s in trace if s.name == prefix + ROOT]
        if not root:
            continue
        roots += 1
        t0 = min(s.start_ns for s in root)
        seen: set[tuple[str, str]] = set()
        for span in sorted(trace, key=lambda s: s.start_ns):
            key = (span.service, span.name.removeprefix(prefix))
            if key not in seen:  # the first of each step (a redelivery would be a second)
                seen.add(key)
                offsets[key].append(((span.start_ns - t0) / 1e6, span.duration_ms))
    steps = [
        Step(service, name, statistics.median(o for o, _ in v), statistics.median(d for _, d in v), len(v))
        for (service, name), v in offsets.items()
        if roots and len(v) * 2 >= roots
    ]
    return sorted(steps, key=lambda s: s.start_ms)
