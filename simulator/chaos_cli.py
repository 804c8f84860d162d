"""`mgrid chaos`: the fault suite by hand (issue 15). Starts the four services as processes on a private
topic prefix and free ports against the stack (`mgrid stack up`), runs each fault once under steady
legacy load, prints the table, exits 1 when a run lost, duplicated or silently skipped anything.

    mgrid chaos                                     # every fault, 300 events each at 10/s (what CI runs)
    mgrid chaos --events 20000 --rate 30 --fault service-kill
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from libs.platform.settings import PlatformSettings
from simulator.chaos import FAULTS, HEADER, private_services, run_suite


def chaos(
    fault: Annotated[list[str], typer.Option(help=f"one of {', '.join(FAULTS)}; repeatable")] = [],  # noqa: B006
    events: Annotated[int, typer.Option(help="distinct legacy events per fault")] = 300,
    rate: Annotated[float, typer.Option(help="events per second")] = 10.0,
    seed: Annotated[int, typer.Option()] = 7,
) -> None:
    """Run faults under load against the four services; print sent/once/lost/duplicated per fault."""
    processes, settings = private_services(Path(tempfile.mkdtemp(prefix="mgrid-chaos-")), PlatformSettings())
    try:
        processes.start()
        runs = asyncio.run(run_suite(settings, processes, faults=fault or list(FAULTS), events=events,
                                     rate_per_s=rate, seed=seed))
    finally:
        processes.stop()
    typer.echo(HEADER)
    for run in runs:
        typer.echo(run.row() + ("" if run.passed else "  FAIL " + "; ".join(run.over_limit[:3])))
    if not all(r.passed for r in runs):
        raise typer.Exit(1)
