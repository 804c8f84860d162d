"""Run reports: a rich summary table in the terminal, and one self-contained HTML file per run.

The HTML embeds its plots as base64 PNGs (matplotlib), so it can be mailed or attached to a CI run
as a single file: per scenario, demand, draw, allocation and effective limit per grid connection over
time, every cycle's outcome and reason codes, and every expectation with what was seen.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from libs.platform.settings import REPO_ROOT
from simulator.runner import RunResult, Sample

REPORTS_DIR = REPO_ROOT / "reports"


# ---- terminal -------------------------------------------------------------------------------------


def summary_table(results: Iterable[RunResult], title: str = "depot simulator") -> Table:
    table = Table(title=title)
    for column in ("scenario", "requirements", "result", "checks", "cycles", "sent", "wall s"):
        table.add_column(column, overflow="fold")
    for r in results:
        failed = len(r.failures) + (1 if r.error else 0)
        verdict = "[green]PASS[/]" if r.passed else f"[red]FAIL ({failed})[/]"
        if not r.live:
            verdict = "[yellow]DRY RUN[/]"
        table.add_row(r.scenario.name, " ".join(r.scenario.requirements), verdict, str(r.checked),
                      str(len(r.contexts)), str(r.sent), f"{r.wall_s:.1f}")
    return table


def print_failures(console: Console, results: Iterable[RunResult]) -> None:
    for r in results:
        if r.error:
            console.print(f"[red]{r.scenario.name}: crashed[/] {r.error}", markup=True, highlight=False)
        for where, finding in r.failures:
            console.print(f"[red]{r.scenario.name}[/] / {where}: [bold]{finding.check}[/] expected "
                          f"{finding.expected}; saw {finding.observed}", highlight=False)


# ---- HTML -----------------------------------------------------------------------------------------


def write_html(results: list[RunResult], directory: Path = REPORTS_DIR, name: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    label = name or (results[0].scenario.name if len(results) == 1 else "library")
    path = directory / f"{stamp}-{label}.html"
    path.write_text(render_html(results))
    return path


def render_html(results: list[RunResult]) -> str:
    passed = sum(r.passed for r in results)
    rows = "".join(
        f"<tr class='{'ok' if r.passed else 'bad'}'><td><a href='#{r.scenario.name}'>{_e(r.scenario.name)}</a></td>"
        f"<td>{_e(' '.join(r.scenario.requirements))}</td><td>{'PASS' if r.passed else 'FAIL'}</td>"
        f"<td>{r.checked}</td><td>{len(r.contexts)}</td><td>{r.wall_s:.1f}</td></tr>"
        for r in results
    )
    sections = "".join(_scenario_section(r) for r in results)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>mgrid depot simulator report</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse;margin:.5em 0}}
td,th{{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top;font-size:90%}}
tr.ok td:nth-child(3){{color:#176317}} tr.bad td{{background:#fde8e8}} code{{font-size:90%}}
section{{border-top:2px solid #444;margin-top:2em}} .muted{{color:#666}}
</style></head><body>
<h1>Depot simulator report</h1>
<p>{passed}/{len(results)} scenarios passed, generated {datetime.now(UTC).isoformat(timespec="seconds")}.</p>
<table><tr><th>scenario</th><th>requirements</th><th>result</th><th>checks</th><th>cycles</th><th>wall s</th></tr>
{rows}</table>{sections}</body></html>"""


def _scenario_section(r: RunResult) -> str:
    s = r.scenario
    edge = f"<p><b>Edge case:</b> {_e(s.edge_case)}</p>" if s.edge_case else ""
    error = f"<pre class='bad'>{_e(r.error)}</pre>" if r.error else ""
    steps = "".join(
        f"<tr class='{'ok' if f.ok else 'bad'}'><td>{_e(t.title)}</td><td>{_e(f.check)}</td>"
        f"<td>{'ok' if f.ok else 'FAILED'}</td><td>{_e(f.expected)}</td><td>{_e(f.observed)}</td></tr>"
        for t in r.steps for f in t.findings
    ) + "".join(
        f"<tr class='{'ok' if f.ok else 'bad'}'><td>invariant</td><td>{_e(f.check)}</td>"
        f"<td>{'ok' if f.ok else 'FAILED'}</td><td>{_e(f.expected)}</td><td>{_e(f.observed)}</td></tr>"
        for f in r.invariants
    )
    timeline = "".join(
        f"<tr><td>{t.index + 1}</td><td>{_e(t.title)}</td><td>{t.offset_s:.1f}</td><td>{t.duration_s:.2f}</td>"
        f"<td>{_e('; '.join(t.notes))}</td></tr>" for t in r.steps
    )
    cycles = "".join(
        f"<tr><td>{c.cycle.at_s:.1f}</td><td><code>{str(c.cycle.result.cycle_id)[:8]}</code></td>"
        f"<td>{_e(str(c.cycle.result.audit.source))}</td><td>{_e(str(c.cycle.result.outcome))}</td>"
        f"<td>{_e(', '.join(str(x) for x in c.cycle.result.reason_codes))}</td>"
        f"<td>{c.cycle.result.allocation_summary.total_allocated_watts}</td>"
        f"<td>{c.cycle.result.allocation_summary.total_requested_watts}</td>"
        f"<td>{len(c.cycle.result.breaches)}</td></tr>" for c in r.contexts
    )
    plot = _plot(r.samples, r.time_axis if not any(t.action == "depot_day" for t in r.steps) else "depot time (h)")
    image = f"<img alt='power over time' src='data:image/png;base64,{plot}'>" if plot else \
        "<p class='muted'>No cycles to plot.</p>"
    letters = "".join(f"<li>{_e(str(d.dead_letter)[:600])}</li>" for d in r.dead_letters)
    return f"""<section id="{_e(s.name)}"><h2>{_e(s.name)}: {_e(s.title)} ({'PASS' if r.passed else 'FAIL'})</h2>
<p>{_e(s.description)}</p>{edge}<p><b>Requirements:</b> {_e(', '.join(s.requirements))}; depot
<code>{_e(s.depot)}</code>; seed {r.seed}; anchor {r.anchor.isoformat()}; {r.sent} calls and messages sent.</p>
{error}<h3>Expectations</h3><table><tr><th>step</th><th>check</th><th>result</th><th>expected</th><th>observed</th></tr>
{steps}</table><h3>Power per grid connection</h3>{image}
<h3>Cycles</h3><table><tr><th>t (s)</th><th>cycle</th><th>source</th><th>outcome</th><th>reason codes</th>
<th>allocated W</th><th>requested W</th><th>breaches</th></tr>{cycles}</table>
<h3>Steps</h3><table><tr><th>#</th><th>step</th><th>at (s)</th><th>took (s)</th><th>notes</th></tr>{timeline}</table>
{f"<h3>Dead letters</h3><ul>{letters}</ul>" if letters else ""}</section>"""


def _plot(samples: list[Sample], axis: str) -> str | None:
    if not samples:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gcs = sorted({s.grid_connection for s in samples})
    fig, axes = plt.subplots(len(gcs), 1, figsize=(9, 2.8 * len(gcs)), sharex=True, squeeze=False)
    for ax, gc in zip(axes[:, 0], gcs, strict=True):
        mine = [s for s in samples if s.grid_connection == gc]
        xs = list(range(len(mine))) if axis == "cycle" else [s.t for s in mine]
        ax.step(xs, [s.requested_watts / 1000 for s in mine], where="post", label="requested", color="#999")
        ax.step(xs, [s.measured_watts / 1000 for s in mine], where="post", label="drawn (before cycle)",
                color="#e69f00", linestyle=":")
        ax.step(xs, [s.allocated_watts / 1000 for s in mine], where="post", label="allocated", color="#0072b2")
        limits = [s.limit_watts / 1000 if s.limit_watts is not None else float("nan") for s in mine]
        ax.step(xs, limits, where="post", label="effective limit", color="#d55e00", linestyle="--")
        for x, s in zip(xs, mine, strict=True):
            if s.outcome != "APPLIED":
                ax.axvline(x, color="#d55e00" if s.outcome == "REJECTED" else "#f0e442", alpha=0.25, linewidth=3)
        ax.set_title(gc, fontsize=10)
        ax.set_ylabel("kW")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", fontsize=8, ncol=4)
    axes[-1, 0].set_xlabel(axis)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _e(text: object) -> str:
    return html.escape(str(text))
