"""Trace files stay bounded (issue 15, defect 6): idle polling makes no spans, and the file exporter
rotates by size with a cap."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.instrumentation.asyncpg import _hydrate_span_from_args
from opentelemetry.trace import SpanKind

from libs.platform.observability.trace_store import JsonlSpanExporter, read_spans
from libs.platform.observability.tracing import (
    IDLE_QUERY_RATIO_ENV,
    ROOTS_PER_S_ENV,
    SAMPLE_RATIO_ENV,
    RootRateLimit,
    build_tracer_provider,
)


class _Connection:
    """What the asyncpg instrumentation reads off a connection to name the span's attributes."""

    _addr = ("127.0.0.1", 55432)

    class _params:  # noqa: N801 - asyncpg's attribute name
        database, user = "mgrid", "mgrid"


def _poll_query(tracer) -> None:
    """A span as the asyncpg instrumentation starts it for one query (attributes known at start)."""
    attributes = _hydrate_span_from_args(_Connection(), "SELECT id FROM outbox", None)
    with tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT, attributes=attributes):
        pass


def test_idle_polling_queries_make_no_spans_and_queries_inside_work_are_kept(tmp_path: Path) -> None:
    provider = build_tracer_provider("balancing", JsonlSpanExporter(tmp_path / "balancing.jsonl"))
    tracer = provider.get_tracer("opentelemetry.instrumentation.asyncpg")
    for _ in range(100):  # the relay and the sweeper polling an empty table
        _poll_query(tracer)
    with tracer.start_as_current_span("POST /rebalance", kind=SpanKind.SERVER):
        _poll_query(tracer)
    with tracer.start_as_current_span("microgrid.rebalance_requested process", kind=SpanKind.CONSUMER):
        _poll_query(tracer)
    provider.shutdown()
    names = sorted(s.name for s in read_spans(tmp_path).spans)
    assert names == ["POST /rebalance", "SELECT", "SELECT", "microgrid.rebalance_requested process"]


def test_idle_queries_can_be_sampled_to_a_trickle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(IDLE_QUERY_RATIO_ENV, "0.1")
    provider = build_tracer_provider("balancing", JsonlSpanExporter(tmp_path / "balancing.jsonl"))
    tracer = provider.get_tracer("t")
    for _ in range(1000):
        _poll_query(tracer)
    provider.shutdown()
    assert 40 <= len(read_spans(tmp_path).spans) <= 200


def test_a_share_of_root_traces_is_kept_and_each_kept_trace_is_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fleet may keep a share of its traces (MGRID_TRACE_SAMPLE_RATIO): kept or dropped where the trace
    starts, every span under a kept root is kept and none under a dropped one."""
    monkeypatch.setenv(SAMPLE_RATIO_ENV, "0.25")
    monkeypatch.setenv(ROOTS_PER_S_ENV, "unlimited")  # this test's 1,000 roots start within a second
    provider = build_tracer_provider("compatibility_adapter", JsonlSpanExporter(tmp_path / "a.jsonl"))
    tracer = provider.get_tracer("t")
    for _ in range(1000):
        with tracer.start_as_current_span("load_balancer.rebalance_requested process", kind=SpanKind.CONSUMER):
            with tracer.start_as_current_span("microgrid.rebalance_requested publish", kind=SpanKind.PRODUCER):
                pass
    provider.shutdown()
    spans = read_spans(tmp_path).spans
    by_trace: dict[str, set[str]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, set()).add(span.name)
    assert 150 <= len(by_trace) <= 350
    assert all(len(names) == 2 for names in by_trace.values())


def _traces(tmp_path: Path) -> dict[str, set[str]]:
    by_trace: dict[str, set[str]] = {}
    for span in read_spans(tmp_path).spans:
        by_trace.setdefault(span.trace_id, set()).add(span.name)
    return by_trace


def test_at_most_the_set_number_of_root_traces_a_second_is_kept_each_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fleet's burst of roots keeps MGRID_TRACE_ROOTS_PER_S of them, whole; the rest leave no span."""
    monkeypatch.setenv(ROOTS_PER_S_ENV, "5")
    provider = build_tracer_provider("compatibility_adapter", JsonlSpanExporter(tmp_path / "a.jsonl"))
    tracer = provider.get_tracer("t")
    for _ in range(300):  # well within a second on any machine: at most 5 more tokens come meanwhile
        with tracer.start_as_current_span("load_balancer.rebalance_requested process", kind=SpanKind.CONSUMER):
            with tracer.start_as_current_span("microgrid.rebalance_requested publish", kind=SpanKind.PRODUCER):
                pass
    provider.shutdown()
    by_trace = _traces(tmp_path)
    assert 5 <= len(by_trace) <= 10
    assert all(len(names) == 2 for names in by_trace.values())


def test_a_trace_kept_upstream_is_kept_whatever_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The limit is applied where a trace starts: a service continuing a kept trace keeps its spans."""
    monkeypatch.setenv(ROOTS_PER_S_ENV, "0")
    upstream = build_tracer_provider("compatibility_adapter", JsonlSpanExporter(tmp_path / "up.jsonl"))
    monkeypatch.setenv(ROOTS_PER_S_ENV, "unlimited")
    kept_upstream = build_tracer_provider("legacy", JsonlSpanExporter(tmp_path / "legacy.jsonl"))
    with kept_upstream.get_tracer("t").start_as_current_span("legacy publish", kind=SpanKind.PRODUCER):
        with upstream.get_tracer("t").start_as_current_span("process", kind=SpanKind.CONSUMER):
            pass
    with upstream.get_tracer("t").start_as_current_span("a root of its own", kind=SpanKind.CONSUMER):
        pass
    upstream.shutdown()
    kept_upstream.shutdown()
    assert sorted(s.name for s in read_spans(tmp_path).spans) == ["legacy publish", "process"]


def test_the_root_limit_refills_with_time_and_holds_a_second_s_worth() -> None:
    now = [0.0]
    limit = RootRateLimit(4, clock=lambda: now[0])
    assert [limit.take() for _ in range(6)] == [True] * 4 + [False] * 2
    now[0] += 0.5
    assert [limit.take() for _ in range(3)] == [True, True, False]
    now[0] += 60  # idle for a minute: a second's worth at most, not a minute's
    assert sum(limit.take() for _ in range(100)) == 4
    assert RootRateLimit(0, clock=lambda: now[0]).take() is False


@pytest.mark.parametrize("value", ["-1", "half", "2000000"])
def test_a_roots_per_second_that_is_not_a_rate_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(ROOTS_PER_S_ENV, value)
    with pytest.raises(ValueError, match=ROOTS_PER_S_ENV):
        build_tracer_provider("balancing", JsonlSpanExporter(Path("/nonexistent/never-written.jsonl")))


@pytest.mark.parametrize("value", ["1.5", "-0.1", "half"])
def test_a_sample_ratio_outside_0_to_1_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(SAMPLE_RATIO_ENV, value)
    with pytest.raises(ValueError, match=SAMPLE_RATIO_ENV):
        build_tracer_provider("balancing", JsonlSpanExporter(Path("/nonexistent/never-written.jsonl")))


def test_the_trace_file_rotates_by_size_and_keeps_a_capped_number_of_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ROOTS_PER_S_ENV, "unlimited")  # 200 roots at once
    exporter = JsonlSpanExporter(tmp_path / "balancing.jsonl", max_bytes=4000, backups=2)
    provider = build_tracer_provider("balancing", exporter, schedule_delay_millis=1)
    tracer = provider.get_tracer("t")
    for i in range(200):
        with tracer.start_as_current_span(f"cycle {i}"):
            pass
        provider.force_flush()
    provider.shutdown()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["balancing.1.jsonl", "balancing.2.jsonl", "balancing.jsonl"]
    assert all((tmp_path / f).stat().st_size <= 4000 for f in files)
    stored = read_spans(tmp_path)  # `mgrid trace` still reads the rotated files
    assert stored.unreadable_lines == 0
    names = {s.name for s in stored.spans}
    assert "cycle 199" in names and "cycle 0" not in names
