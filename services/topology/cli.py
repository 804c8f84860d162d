"""`mgrid topology ...`: operations on the topology service's own data."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import typer

app = typer.Typer(no_args_is_help=True, help="Topology service operations.")


@app.callback()
def topology() -> None:
    """Topology service operations (run against its own Postgres schema)."""


@app.command("rebuild-projection")
def rebuild_projection(
    microgrid_id: Annotated[
        UUID | None, typer.Option("--microgrid-id", help="Only this microgrid (default: every microgrid)")
    ] = None,
) -> None:
    """Rebuild the latest capability-status projection from the append-only status history."""
    from services.topology.rebuild_projection import main

    rows = main(microgrid_id)
    typer.echo(f"rebuilt {rows} capability status projection row(s)")
