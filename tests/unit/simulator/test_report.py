"""The report: one self-contained HTML file with the plots embedded, and the terminal summary."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from simulator.cli import dry_run
from simulator.report import render_html, summary_table, write_html
from simulator.runner import Sample
from simulator.scenario import load_scenario

pytestmark = pytest.mark.req("FR-017")


async def test_html_report_is_one_self_contained_file(tmp_path: Path) -> None:
    result, _ = await dry_run(load_scenario("edge-aggregate-breach"))
    result.samples.extend(Sample(t=float(i), grid_connection=gc, requested_watts=300000, measured_watts=250000,
                                 allocated_watts=200000, limit_watts=200000, outcome="CURTAILED",
                                 reason_codes=("AGGREGATE_CAP_EXCEEDED",))
                          for i in range(3) for gc in ("Feeder North", "Feeder South"))
    path = write_html([result], tmp_path)
    html = path.read_text()
    assert path.parent == tmp_path and path.suffix == ".html"
    assert "data:image/png;base64," in html
    assert "src='http" not in html and 'src="http' not in html  # nothing fetched from elsewhere
    assert "edge-aggregate-breach" in html and "FR-003" in html


async def test_summary_table_lists_each_scenario() -> None:
    result, _ = await dry_run(load_scenario("compat-legacy-event"))
    console = Console(record=True, width=200)
    console.print(summary_table([result]))
    text = console.export_text()
    assert "compat-legacy-event" in text and "DRY RUN" in text
    assert "No cycles to plot" in render_html([result])
