"""`mgrid stack up|down|status|env`: the local Kafka, Postgres and Redis (see tools/stack.py)."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tools import stack

app = typer.Typer(no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


@app.callback()
def stack_group() -> None:
    """The project's own Kafka, Postgres and Redis as local processes (state in MGRID_STACK_DIR)."""


def _show(title: str, statuses: list[stack.ComponentStatus]) -> None:
    table = Table(title=title)
    for column in ("component", "state", "listens", "log file", "pid"):
        table.add_column(column, overflow="fold")
    for s in statuses:
        state = s.state.value if s.action is None else f"{s.state.value} ({s.action.value})"
        colour = "green" if s.state is stack.State.RUNNING else "yellow"
        table.add_row(s.name, f"[{colour}]{state}[/]", s.listens, str(s.log_file), str(s.pid or "-"))
    console.print(table)


def _guarded(title: str, action: Callable[[], list[stack.ComponentStatus]]) -> list[stack.ComponentStatus]:
    started = time.monotonic()
    try:
        statuses = action()
    except stack.StackError as exc:
        errors.print(str(exc), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    _show(f"{title} ({time.monotonic() - started:.1f} s)", statuses)
    return statuses


@app.command()
def up(
    brokers: Annotated[
        int | None, typer.Option("--brokers", help="Kafka nodes: 1, or 3 (RF 3, min ISR 2); kept until changed.")
    ] = None,
) -> None:
    """Install what is missing, start what is stopped, wait until every component answers."""
    _guarded("stack up", lambda: stack.up(brokers=brokers))
    for name, value in stack.endpoints().items():
        console.print(f"{name}={value}", highlight=False)


@app.command()
def down(
    purge: Annotated[bool, typer.Option("--purge", help="Also delete every data dir.")] = False,
) -> None:
    """Stop the processes this stack started (nothing else)."""
    _guarded("stack down", lambda: stack.down(purge=purge))


@app.command()
def status() -> None:
    """Show each component's state; exit code 1 unless all are running."""
    statuses = _guarded("stack status", stack.status)
    if any(s.state is not stack.State.RUNNING for s in statuses):
        raise typer.Exit(1)


@app.command()
def env(
    service: Annotated[str | None, typer.Option(help="print this service's own credentials instead")] = None,
) -> None:
    """Print the endpoints and tooling credentials as shell exports: `eval "$(mgrid stack env)"`."""
    values = stack.endpoints()
    if service is not None:
        values |= stack.credentials().service_env(service, values["MGRID_POSTGRES_DSN"])
    for name, value in values.items():
        typer.echo(f"export {name}={shlex.quote(value)}")


@app.command("compose-env")
def compose_env() -> None:
    """Print the generated passwords as docker-compose variables: `mgrid stack compose-env > .env`."""
    from libs.platform.stack_credentials import compose_env as variables

    for name, value in variables(stack.credentials()).items():
        typer.echo(f"{name}={value}")
