"""`mgrid chaos`: the fault suite by hand (issue 15). Starts the four services as processes on a private
topic prefix and free ports, runs each fault once under steady legacy load, prints the table, exits 1
when a run lost, duplicated or silently skipped anything, or a service was not ready 30 s after a fault.

Faults on Kafka, Postgres and Redis run on a stack of the run's own (started in a temporary directory on
free ports, deleted at the end), never on the shared one (`mgrid stack up`), which the others use.

    mgrid chaos                                     # every fault once, 300 events each at 10/s (as CI)
    mgrid chaos --fault broker-kill                 # on a stack of three brokers of its own (not in the default set)
    mgrid chaos --fault broker-and-replica-kill     # the same, and a second replica of balancing killed with the broker
    mgrid chaos --fault service-kill --fault poison # these two only: on the shared stack
    mgrid chaos --events 20000 --rate 20 --every 30 # large: one run, a fault every 30 s, in turn
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from libs.platform.messaging.topics_admin import provision
from libs.platform.settings import PlatformSettings
from simulator.chaos import ALL_FAULTS, BROKER_FAULTS, FAULTS, HEADER, STACK_FAULTS, private_services, run_suite
from simulator.chaos_stack import OwnStack


def chaos(
    fault: Annotated[list[str], typer.Option(help=f"one of {', '.join(ALL_FAULTS)}; repeatable")] = [],  # noqa: B006
    events: Annotated[int, typer.Option(help="distinct legacy events per run")] = 300,
    rate: Annotated[float, typer.Option(help="events per second")] = 10.0,
    every: Annotated[float | None, typer.Option(help="one run, a fault every N seconds (the faults in turn)")] = None,
    seed: Annotated[int, typer.Option()] = 7,
    keep: Annotated[bool, typer.Option(help="keep the run dir (service and stack logs); kept on failure")] = False,
) -> None:
    """Run faults under load against the four services; print sent/once/lost/duplicated per run."""
    # By default every fault but the cluster ones (they need a cluster of three brokers, a fifth process).
    faults = fault or [f for f in FAULTS + STACK_FAULTS if every is None or f not in ("none", "duplicate", "poison")]
    unknown = sorted(set(faults) - set(ALL_FAULTS))
    if unknown:
        raise typer.BadParameter(f"unknown fault(s) {', '.join(unknown)}; one of {', '.join(ALL_FAULTS)}")
    run_dir = Path(tempfile.mkdtemp(prefix="mgrid-chaos-"))
    brokers = 3 if set(faults) & set(BROKER_FAULTS) else 1
    stack = OwnStack(run_dir / "stack", brokers=brokers) if set(faults) & {*STACK_FAULTS, *BROKER_FAULTS} else None
    try:
        if stack is not None:
            typer.echo(f"starting a stack of this run's own in {stack.root} (Kafka :{stack.kafka_port}, "
                       f"Postgres :{stack.postgres_port}, Redis :{stack.redis_port})", err=True)
            stack.up()
        processes, settings = private_services(run_dir / "services",
                                               stack.settings() if stack is not None else PlatformSettings())
        try:
            asyncio.run(provision(settings))  # topics and their ACLs, as the admin: services may not create them
            processes.start()
            runs = asyncio.run(run_suite(settings, processes, faults=faults, events=events, rate_per_s=rate,
                                         seed=seed, stack=stack, every_s=every))
        finally:
            processes.stop()
    finally:
        if stack is not None:
            stack.down(purge=not keep)  # always stopped; with --keep its data and logs stay
    typer.echo(HEADER)
    for run in runs:
        problems = [*run.over_limit[:3], *([f"not ready: {run.not_ready[:2]}"] if run.not_ready else [])]
        typer.echo(run.row() + ("" if run.passed else "  FAIL " + "; ".join(problems)))
    if keep or not all(r.passed for r in runs):
        typer.echo(f"run dir (service logs): {run_dir}", err=True)
        raise typer.Exit(0 if all(r.passed for r in runs) else 1)
    shutil.rmtree(run_dir, ignore_errors=True)
