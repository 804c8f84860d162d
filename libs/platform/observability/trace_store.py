"""The local trace store: finished spans as JSON lines, one file per service, and the reader for them.

Used when no OTLP collector is configured (MGRID_OTLP_ENDPOINT unset), so `mgrid trace` can follow one
trace across the four service processes on a single machine. The record mirrors OTLP/JSON field
names (hex ids, unix-nano times) so the files stay readable by other tools.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext

from libs.platform.settings import PlatformSettings


def trace_dir() -> Path:
    """MGRID_TRACE_FILE_DIR, else <stack dir>/traces (stack dir: MGRID_STACK_DIR, default <repo>/.stack)."""
    explicit = os.environ.get("MGRID_TRACE_FILE_DIR")
    if explicit:
        return Path(explicit)
    return PlatformSettings().stack_dir / "traces"


def _hex_trace_id(value: int) -> str:
    return format(value, "032x")


def _hex_span_id(value: int) -> str:
    return format(value, "016x")


def span_to_record(span: ReadableSpan) -> dict[str, Any]:
    """One finished span as a JSON-ready dict (the on-disk format)."""
    ctx: SpanContext = span.get_span_context()  # type: ignore[assignment]
    return {
        "trace_id": _hex_trace_id(ctx.trace_id),
        "span_id": _hex_span_id(ctx.span_id),
        "parent_span_id": _hex_span_id(span.parent.span_id) if span.parent is not None else None,
        "name": span.name,
        "kind": span.kind.name,
        "service.name": span.resource.attributes.get("service.name"),
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
        "start_time_unix_nano": span.start_time,
        "end_time_unix_nano": span.end_time,
        "attributes": dict(span.attributes or {}),
        "status": {"code": span.status.status_code.name, "message": span.status.description},
        "events": [
            {"name": e.name, "time_unix_nano": e.timestamp, "attributes": dict(e.attributes or {})}
            for e in span.events
        ],
        "links": [
            {
                "trace_id": _hex_trace_id(link.context.trace_id),
                "span_id": _hex_span_id(link.context.span_id),
                "attributes": dict(link.attributes or {}),
            }
            for link in span.links
        ],
    }


# A trace file is rotated past this size, keeping this many older files: a service's traces take at
# most (backups + 1) x max bytes on disk (default 4 x 64 MiB), however long it runs.
MAX_BYTES_ENV, BACKUPS_ENV = "MGRID_TRACE_FILE_MAX_BYTES", "MGRID_TRACE_FILE_BACKUPS"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_BACKUPS = 3


class JsonlSpanExporter(SpanExporter):
    """Appends each exported batch to <folder>/<service_name>.jsonl in one write, rotating by size.

    One append per batch keeps lines whole when several replicas of a service share the file
    (O_APPEND writes of one buffer are not interleaved on a local file system). When the file would
    pass `max_bytes` it becomes `<service>.1.jsonl` (older ones shift up to `<service>.<backups>.jsonl`,
    the oldest is deleted); rotated files keep the .jsonl suffix, so `mgrid trace` still reads them.
    """

    def __init__(self, path: Path, *, max_bytes: int | None = None, backups: int | None = None) -> None:
        self.path = path
        self.max_bytes = max_bytes if max_bytes is not None else int(os.environ.get(MAX_BYTES_ENV, DEFAULT_MAX_BYTES))
        self.backups = backups if backups is not None else int(os.environ.get(BACKUPS_ENV, DEFAULT_BACKUPS))
        self._closed = False

    def rotated(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.stem}.{n}{self.path.suffix}")

    def _rotate_if_full(self, adding: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0 or size + adding <= self.max_bytes:
            return
        if self.backups <= 0:
            self.path.unlink(missing_ok=True)
            return
        self.rotated(self.backups).unlink(missing_ok=True)
        for n in range(self.backups - 1, 0, -1):
            if self.rotated(n).exists():
                os.replace(self.rotated(n), self.rotated(n + 1))
        # a replica sharing the file may have rotated it a moment ago: then there is nothing to move
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.path, self.rotated(1))

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        if not spans:
            return SpanExportResult.SUCCESS
        # orjson: a cycle's spans are written from the export thread, which holds the GIL the service's
        # event loop needs (json.dumps was ~1.6 % of balancing's samples in a fleet run, issue 13).
        data = b"".join(orjson.dumps(span_to_record(s), default=str, option=orjson.OPT_APPEND_NEWLINE)
                        for s in spans)
        try:
            self._rotate_if_full(len(data))
            try:
                f = self.path.open("ab")
            except FileNotFoundError:  # the folder is made on first use (or again if removed), not per export
                self.path.parent.mkdir(parents=True, exist_ok=True)
                f = self.path.open("ab")
            with f:
                f.write(data)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._closed = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every export is written and closed at once; nothing is buffered here


@dataclass(frozen=True)
class SpanRecord:
    """A span read back from the store."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    service: str
    start_ns: int
    end_ns: int
    attributes: Mapping[str, Any] = field(default_factory=dict)
    status_code: str = "UNSET"
    status_message: str | None = None

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> SpanRecord:
        status = raw.get("status") or {}
        start = int(raw["start_time_unix_nano"])
        return cls(
            trace_id=str(raw["trace_id"]),
            span_id=str(raw["span_id"]),
            parent_span_id=raw.get("parent_span_id") or None,
            name=str(raw["name"]),
            kind=str(raw.get("kind", "INTERNAL")),
            service=str(raw.get("service.name") or "?"),
            start_ns=start,
            end_ns=int(raw.get("end_time_unix_nano") or start),
            attributes=raw.get("attributes") or {},
            status_code=str(status.get("code", "UNSET")),
            status_message=status.get("message"),
        )


@dataclass(frozen=True)
class StoredSpans:
    spans: tuple[SpanRecord, ...]
    files: tuple[Path, ...]
    unreadable_lines: int


def _records(path: Path) -> Iterator[SpanRecord | None]:
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                yield SpanRecord.from_json(json.loads(line))
            except (ValueError, KeyError, TypeError):
                yield None  # e.g. a line cut short by a killed process


def read_spans(folder: Path) -> StoredSpans:
    """Every span in every *.jsonl file of the folder; lines that do not parse are counted, not fatal."""
    files = tuple(sorted(folder.glob("*.jsonl"))) if folder.is_dir() else ()
    spans: list[SpanRecord] = []
    unreadable = 0
    for path in files:
        for record in _records(path):
            if record is None:
                unreadable += 1
            else:
                spans.append(record)
    return StoredSpans(spans=tuple(spans), files=files, unreadable_lines=unreadable)
