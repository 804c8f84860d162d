"""`mgrid trace <correlation_id or trace_id>`: one trace across the services, as a span tree.

Reads the local trace store (every *.jsonl in the trace folder, one file per service), so it works
without a tracing backend. With MGRID_OTLP_ENDPOINT set, spans go to the collector instead, and
this command only sees what was written before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from libs.platform.observability.trace_store import SpanRecord, read_spans, trace_dir
from tools.trace_tree import SpanNode, build_tree, matching_trace_ids

# Shown next to each span when present: enough to tell the steps of one cycle apart.
KEY_ATTRIBUTES = (
    "microgrid.id",
    "cycle.id",
    "correlation.id",
    "circuit.id",
    "node.id",
    "outcome",
    "reason_codes",
    "messaging.destination.name",
    "http.request.method",
    "http.method",
    "http.route",
    "http.response.status_code",
    "http.status_code",
)


def _attribute_text(attributes: Mapping[str, Any]) -> str:
    parts = []
    for key in KEY_ATTRIBUTES:
        if key in attributes:
            value = attributes[key]
            shown = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
            parts.append(f"{key}={shown}")
    return " ".join(parts)


def _span_label(node: SpanNode, trace_start_ns: int) -> Text:
    s = node.span
    label = Text()
    if node.parent_missing:
        label.append("… ", style="dim")  # its parent span was never written
    label.append(s.service, style="cyan")
    label.append("  ")
    label.append(s.name, style="bold red" if s.status_code == "ERROR" else "bold")
    label.append(f"  {s.duration_ms:.2f} ms  at +{(s.start_ns - trace_start_ns) / 1e6:.2f} ms", style="green")
    if s.status_code == "ERROR":
        label.append(f"  ERROR {s.status_message or ''}".rstrip(), style="red")
    attrs = _attribute_text(s.attributes)
    if attrs:
        label.append(f"  {attrs}", style="dim")
    return label


def _trace_tree(trace_id: str, spans: Sequence[SpanRecord]) -> Tree:
    """A rich Tree rather than a table: one line per span that wraps under its guide in a narrow terminal."""
    start = min(s.start_ns for s in spans)
    end = max(s.end_ns for s in spans)
    services = ", ".join(sorted({s.service for s in spans}))
    root = Tree(
        f"[bold]trace {trace_id}[/]  {len(spans)} spans, {(end - start) / 1e6:.2f} ms, services: {services}"
    )

    def add(parent: Tree, nodes: Sequence[SpanNode]) -> None:
        for node in nodes:
            add(parent.add(_span_label(node, start)), node.children)

    add(root, build_tree(spans))
    return root


def trace_app(
    trace_or_correlation_id: Annotated[
        str,
        typer.Argument(
            metavar="<correlation_id or trace_id>", help="A trace id (32 hex) or a correlation id."
        ),
    ],
    folder: Annotated[
        Path | None,
        typer.Option("--dir", help="Trace folder (default: MGRID_TRACE_FILE_DIR or <stack dir>/traces)."),
    ] = None,
) -> None:
    """Show one trace across services as a span tree, found by trace id or by correlation id."""
    folder = folder or trace_dir()
    stored = read_spans(folder)
    err = Console(stderr=True)
    if not stored.files:
        err.print(f"No trace files (*.jsonl) in {folder}. Are the services running with file export?")
        raise typer.Exit(code=1)
    trace_ids = matching_trace_ids(stored.spans, trace_or_correlation_id)
    if not trace_ids:
        err.print(
            f"No trace or correlation id '{trace_or_correlation_id}' in {len(stored.spans)} spans "
            f"from {len(stored.files)} files in {folder}."
        )
        raise typer.Exit(code=1)
    out = Console()
    for trace_id in trace_ids:
        out.print(_trace_tree(trace_id, [s for s in stored.spans if s.trace_id == trace_id]))
    if stored.unreadable_lines:
        err.print(f"({stored.unreadable_lines} unreadable lines skipped)")
