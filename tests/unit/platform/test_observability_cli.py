"""`mgrid trace <id>` prints one trace's span tree across services from the trace files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tools.observability_cli import trace_app

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER_TRACE = "00f067aa0ba902b7a3ce929d0e0e4736"
T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def _span(
    service: str,
    span_id: str,
    parent: str | None,
    name: str,
    start_ms: float,
    end_ms: float,
    trace_id: str = TRACE,
    **attributes: object,
) -> dict:
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent,
        "name": name,
        "kind": "INTERNAL",
        "service.name": service,
        "start_time_unix_nano": T0 + int(start_ms * MS),
        "end_time_unix_nano": T0 + int(end_ms * MS),
        "attributes": attributes,
        "status": {"code": "UNSET", "message": None},
        "links": [],
    }


@pytest.fixture
def trace_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    files = {
        "compatibility_adapter": [
            _span(
                "compatibility_adapter",
                "a000000000000001",
                None,
                "on_legacy_rebalance_requested",
                0,
                9,
                **{"correlation.id": "corr-42", "circuit.id": "C-1"},
            ),
            _span(
                "compatibility_adapter",
                "a000000000000002",
                "a000000000000001",
                "publish microgrid.rebalance_requested",
                5,
                8,
            ),
        ],
        "balancing": [
            # written out of order on purpose: the tree orders siblings by start time
            _span(
                "balancing",
                "b000000000000003",
                "b000000000000001",
                "allocation",
                14,
                15.5,
                outcome="CURTAILED",
                reason_codes=["NODE_CAP_EXCEEDED"],
            ),
            _span(
                "balancing",
                "b000000000000001",
                "a000000000000002",
                "on_rebalance_requested",
                10,
                20,
                **{"microgrid.id": "mg-1", "cycle.id": "cy-9"},
            ),
            _span("balancing", "b000000000000002", "b000000000000001", "constraint_evaluation", 11, 13),
            _span("balancing", "c000000000000001", None, "unrelated", 0, 1, trace_id=OTHER_TRACE),
        ],
    }
    for service, spans in files.items():
        (tmp_path / f"{service}.jsonl").write_text("".join(json.dumps(s) + "\n" for s in spans))
    monkeypatch.setenv("MGRID_TRACE_FILE_DIR", str(tmp_path))
    return tmp_path


def _run(*args: str):
    app = typer.Typer()
    app.command()(trace_app)
    # wide terminal so rich keeps each row on one line
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "220"})


def _span_rows(output: str) -> list[str]:
    """The output lines that show a span (the others are the trace headers)."""
    return [line for line in output.splitlines() if " ms  at +" in line]


@pytest.mark.parametrize("wanted", ["corr-42", TRACE])
def test_prints_the_tree_across_services_by_correlation_or_trace_id(trace_folder: Path, wanted: str) -> None:
    result = _run(wanted)
    assert result.exit_code == 0, result.output
    assert TRACE in result.output
    rows = _span_rows(result.output)
    order = [
        "on_legacy_rebalance_requested",
        "publish microgrid.rebalance_requested",
        "on_rebalance_requested",
        "constraint_evaluation",
        "allocation",
    ]  # the unrelated trace is not shown
    assert [next(name for name in order if f"  {name}  " in row) for row in rows] == order
    # children are indented under their parents
    indents = [row.index("compatibility_adapter" if i < 2 else "balancing") for i, row in enumerate(rows)]
    assert indents[0] < indents[1] < indents[2] < indents[3] == indents[4]
    # duration and offset from trace start, in ms, and key attributes
    assert "10.00 ms  at +10.00 ms" in rows[2] and "microgrid.id=mg-1" in rows[2]
    assert "1.50 ms  at +14.00 ms" in rows[4] and "reason_codes=NODE_CAP_EXCEEDED" in rows[4]
    assert "correlation.id=corr-42" in rows[0]


def test_unknown_id_exits_non_zero_and_says_why(trace_folder: Path) -> None:
    result = _run("no-such-id")
    assert result.exit_code == 1
    assert "No trace or correlation id 'no-such-id'" in result.stderr


def test_missing_trace_folder_exits_non_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MGRID_TRACE_FILE_DIR", str(tmp_path / "absent"))
    result = _run("corr-42")
    assert result.exit_code == 1
    assert "No trace files" in result.stderr
