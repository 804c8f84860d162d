"""Spans written by the JSON-lines exporter come back as one tree across services."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from contracts.enums import CycleOutcome, ReasonCode
from libs.platform.observability.propagation import PROPAGATOR
from libs.platform.observability.trace_store import JsonlSpanExporter, read_spans, trace_dir
from libs.platform.observability.tracing import build_tracer_provider, span_attributes
from tools.trace_tree import SpanNode, build_tree, matching_trace_ids


def _rows(nodes: list[SpanNode] | tuple[SpanNode, ...], depth: int = 0) -> list[tuple[int, str, str]]:
    rows = []
    for n in nodes:
        rows.append((depth, n.span.name, n.span.service))
        rows += _rows(n.children, depth + 1)
    return rows


def _two_service_trace(folder: Path) -> str:
    """compatibility_adapter publishes, balancing consumes and runs a cycle; returns the trace id."""
    adapter = build_tracer_provider(
        "compatibility_adapter", JsonlSpanExporter(folder / "compatibility_adapter.jsonl")
    )
    balancing = build_tracer_provider("balancing", JsonlSpanExporter(folder / "balancing.jsonl"))
    a, b = adapter.get_tracer("t"), balancing.get_tracer("t")
    with a.start_as_current_span("translate circuit alias", attributes={"correlation.id": "corr-1"}) as root:
        with a.start_as_current_span("publish microgrid.rebalance_requested", kind=SpanKind.PRODUCER):
            headers: dict[str, str] = {}
            PROPAGATOR.inject(headers)
    with b.start_as_current_span("consume", context=PROPAGATOR.extract(headers), kind=SpanKind.CONSUMER):
        with b.start_as_current_span("demand_resolution"):
            pass
        with b.start_as_current_span(
            "allocation",
            attributes=span_attributes(
                outcome=CycleOutcome.CURTAILED, reason_codes=[ReasonCode.NODE_CAP_EXCEEDED]
            ),
        ) as alloc:
            alloc.set_status(StatusCode.ERROR, "cap exceeded")
    # shutdown flushes the batch processors: nothing is lost at service stop
    adapter.shutdown()
    balancing.shutdown()
    return f"{root.get_span_context().trace_id:032x}"


def test_exported_spans_rebuild_into_one_tree_across_services(tmp_path: Path) -> None:
    trace_id = _two_service_trace(tmp_path)
    stored = read_spans(tmp_path)

    assert {p.name for p in stored.files} == {"compatibility_adapter.jsonl", "balancing.jsonl"}
    assert stored.unreadable_lines == 0
    rows = _rows(build_tree(stored.spans))
    assert rows == [
        (0, "translate circuit alias", "compatibility_adapter"),
        (1, "publish microgrid.rebalance_requested", "compatibility_adapter"),
        (2, "consume", "balancing"),
        (3, "demand_resolution", "balancing"),
        (3, "allocation", "balancing"),
    ]
    assert {s.trace_id for s in stored.spans} == {trace_id}
    allocation = next(s for s in stored.spans if s.name == "allocation")
    assert allocation.attributes["reason_codes"] == ["NODE_CAP_EXCEEDED"]
    assert allocation.attributes["outcome"] == "CURTAILED"
    assert (allocation.status_code, allocation.status_message) == ("ERROR", "cap exceeded")
    assert allocation.end_ns >= allocation.start_ns


def test_each_line_is_one_otlp_like_json_object(tmp_path: Path) -> None:
    _two_service_trace(tmp_path)
    lines = (tmp_path / "balancing.jsonl").read_text().splitlines()
    assert len(lines) == 3
    record = json.loads(lines[0])
    assert {
        "trace_id",
        "span_id",
        "parent_span_id",
        "name",
        "kind",
        "service.name",
        "start_time_unix_nano",
        "end_time_unix_nano",
        "attributes",
        "status",
        "links",
    } <= record.keys()
    assert len(record["trace_id"]) == 32 and len(record["span_id"]) == 16


def test_trace_is_found_by_trace_id_or_by_correlation_id(tmp_path: Path) -> None:
    trace_id = _two_service_trace(tmp_path)
    spans = read_spans(tmp_path).spans
    assert matching_trace_ids(spans, trace_id) == [trace_id]
    assert matching_trace_ids(spans, trace_id.upper()) == [trace_id]
    assert matching_trace_ids(spans, "corr-1") == [trace_id]
    assert matching_trace_ids(spans, "corr-unknown") == []


def test_a_cut_line_is_counted_and_the_rest_still_read(tmp_path: Path) -> None:
    _two_service_trace(tmp_path)
    with (tmp_path / "balancing.jsonl").open("a") as f:
        f.write('{"trace_id": "ab')  # a process killed mid-write
    stored = read_spans(tmp_path)
    assert stored.unreadable_lines == 1
    assert len(stored.spans) == 5


def test_a_span_whose_parent_was_never_written_is_a_marked_root(tmp_path: Path) -> None:
    _two_service_trace(tmp_path)
    (tmp_path / "compatibility_adapter.jsonl").unlink()
    roots = build_tree(read_spans(tmp_path).spans)
    assert [(r.span.name, r.parent_missing) for r in roots] == [("consume", True)]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MGRID_TRACE_FILE_DIR": "/x/traces-here"}, Path("/x/traces-here")),
        ({"MGRID_STACK_DIR": "/y/stack"}, Path("/y/stack/traces")),
    ],
)
def test_trace_folder_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict, expected: Path
) -> None:
    monkeypatch.delenv("MGRID_TRACE_FILE_DIR", raising=False)
    monkeypatch.delenv("MGRID_STACK_DIR", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert trace_dir() == expected


def test_trace_folder_defaults_to_the_repo_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MGRID_TRACE_FILE_DIR", raising=False)
    monkeypatch.delenv("MGRID_STACK_DIR", raising=False)
    assert trace_dir() == Path(__file__).resolve().parents[3] / ".stack" / "traces"
