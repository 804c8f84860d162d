"""`mgrid cycle explain|replay <cycle_id>`: why a stored cycle ended as it did, and proof it replays exactly."""

from __future__ import annotations

import asyncio
from typing import Annotated
from uuid import UUID

import asyncpg
import typer

from services.balancing.adapters.cycles import StoredCycle, cycle_by_id

app = typer.Typer(no_args_is_help=True, help="Balancing cycles: explain and replay stored cycles.")

CycleId = Annotated[UUID, typer.Argument(help="The cycle_id of a stored cycle")]


async def _load(cycle_id: UUID) -> StoredCycle | None:
    from services.balancing.bootstrap import DEFINITION
    from services.balancing.settings import BalancingSettings

    settings = BalancingSettings()  # schema "balancing", or prefixed by MGRID_TOPIC_PREFIX
    conn = await asyncpg.connect(
        settings.postgres_dsn, server_settings={"search_path": f'"{DEFINITION.schema(settings)}"'}
    )
    try:
        return await cycle_by_id(conn, cycle_id)
    finally:
        await conn.close()


def _stored(cycle_id: UUID) -> StoredCycle:
    stored = asyncio.run(_load(cycle_id))
    if stored is None:
        typer.echo(f"cycle {cycle_id} not found", err=True)
        raise typer.Exit(2)
    return stored


@app.command()
def explain(cycle_id: CycleId) -> None:
    """Print why the cycle ended as it did (outcome, reason codes, breaches, bindings, fallbacks)."""
    from services.balancing.replay import explain_stored_cycle

    typer.echo(explain_stored_cycle(_stored(cycle_id)))


@app.command()
def replay(cycle_id: CycleId) -> None:
    """Recompute the cycle from its stored inputs and compare the output bytes; exit 1 when they differ
    (then it names the engine version that made the cycle and lists the allocations that changed)."""
    from services.balancing.replay import replay_cycle, replay_lines

    report = replay_cycle(_stored(cycle_id))
    for line in replay_lines(report):
        typer.echo(line)
    if not report.identical:
        raise typer.Exit(1)
