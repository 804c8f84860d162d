"""`mgrid dlq list|show|replay <group>` and `mgrid outbox parked|requeue <service>`: what an operator
uses to see and bring back what the system set aside (docs/operations.md).

<group> / <service> is the service name (topology, envelope_lifecycle, balancing,
compatibility_adapter); MGRID_TOPIC_PREFIX selects a prefixed deployment, as for every command.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import asyncpg
import typer

from libs.platform.messaging.dead_letter_replay import Letter, read_letters, replay, select_letters, with_original
from libs.platform.messaging.kafka import create_producer
from libs.platform.messaging.unit_of_work import NOTIFY_OUTBOX
from libs.platform.settings import PlatformSettings

T = TypeVar("T")

dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters of a consumer group: list, show, replay.")
outbox_app = typer.Typer(no_args_is_help=True, help="Outbox rows the relay parked: list and requeue.")

Group = Annotated[str, typer.Argument(help="the consumer group: a service name, e.g. balancing")]


def _schema(settings: PlatformSettings, service: str) -> str:
    from tools.run_cli import load_definition

    return load_definition(service).schema(settings)


async def _with_conn(service: str, work: Callable[[PlatformSettings, asyncpg.Connection], Awaitable[T]]) -> T:
    settings = PlatformSettings()
    conn = await asyncpg.connect(
        settings.postgres_dsn, server_settings={"search_path": f'"{_schema(settings, service)}"'}
    )
    try:
        return await work(settings, conn)
    except asyncpg.UndefinedTableError as exc:
        typer.echo(f"{service}: {exc} (has the service run against this database?)", err=True)
        raise typer.Exit(2) from exc
    finally:
        await conn.close()


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def _line(letter: Letter) -> str:
    replays = f"  replayed x{letter.replays}" if letter.replays else ""
    replays += "  (excerpt: the original stays on its topic)" if letter.excerpted else ""
    return (
        f"{letter.position:>8}  {_when(letter.timestamp_ms)}  {letter.reason:<22} from {letter.original_position}"
        f"  event {letter.event_id or '-'}{replays}\n          {letter.error[:160]}"
    )


@dlq_app.command("list")
def list_letters(group: Group) -> None:
    """Every letter: position, when, reason, original topic/partition/offset, event id, replays."""
    letters = asyncio.run(_with_conn(group, lambda s, c: read_letters(s, group, c)))
    if not letters:
        typer.echo(f"no dead letters for {group}")
        return
    for letter in letters:
        typer.echo(_line(letter))
    typer.echo(f"{len(letters)} letter(s), {sum(1 for x in letters if x.replays)} replayed")


@dlq_app.command()
def show(
    group: Group, letter: Annotated[str, typer.Argument(help="the letter's <partition>:<offset> from `list`")]
) -> None:
    """One letter in full: every header and the original message (pretty JSON when it is JSON)."""
    letters = asyncio.run(_with_conn(group, lambda s, c: read_letters(s, group, c)))
    found = [x for x in letters if x.position == letter]
    if not found:
        typer.echo(f"no letter {letter} for {group}", err=True)
        raise typer.Exit(2)
    x = found[0]
    typer.echo(_line(x))
    typer.echo(f"attempts: {x.attempts}\nkey: {x.key!r}\nheaders:")
    for k, v in x.headers:
        typer.echo(f"  {k}: {v.decode(errors='replace')[:500]}")
    body: Any
    try:
        body = json.dumps(json.loads(x.value), indent=2)
    except ValueError:
        body = repr(x.value[:2000])
    if len(body) > 20_000:
        body = body[:20_000] + f"\n... ({len(x.value)} bytes in all)"
    typer.echo(f"value:\n{body}")


@dlq_app.command("replay")
def replay_letters(
    group: Group,
    letter: Annotated[list[str], typer.Option("--letter", help="<partition>:<offset>; repeatable")] = [],  # noqa: B006
    every: Annotated[bool, typer.Option("--all", help="every letter not replayed yet")] = False,
    reason: Annotated[str | None, typer.Option(help="only letters dead-lettered for this reason")] = None,
    include_invalid: Annotated[bool, typer.Option(help="also INVALID_MESSAGE letters (fail again)")] = False,
    again: Annotated[bool, typer.Option(help="also letters replayed before")] = False,
    actor: Annotated[str, typer.Option(help="who replays, for the audit")] = "",
) -> None:
    """Send letters back to their original topic through the normal idempotent path; audited."""
    if not letter and not every:
        typer.echo("name letters with --letter <partition>:<offset>, or --all", err=True)
        raise typer.Exit(2)
    who = actor or getpass.getuser()

    async def work(settings: PlatformSettings, conn: asyncpg.Connection) -> int:
        letters = await read_letters(settings, group, conn)
        chosen = select_letters(
            letters, positions=letter, every=every, reason=reason, include_invalid=include_invalid, again=again
        )
        # a letter too big to dead-letter whole holds an excerpt: send the original record back
        chosen = [await with_original(settings, x) for x in chosen]
        for x in chosen:
            typer.echo(f"replaying {x.position} ({x.reason}) to {x.original_topic}")
        producer = create_producer(settings, "mgrid-dlq-replay")
        await producer.start()
        try:
            return await replay(conn, producer, group, chosen, actor=who)
        finally:
            await producer.stop()

    done = asyncio.run(_with_conn(group, work))
    typer.echo(f"{done} letter(s) replayed by {who}")


@outbox_app.command()
def parked(service: Group) -> None:
    """Rows the relay could not publish, with the reason."""

    async def work(_: PlatformSettings, conn: asyncpg.Connection) -> list[asyncpg.Record]:
        return await conn.fetch(
            "SELECT id, event_id, topic, length(value) AS bytes, messages, parked_at, parked_reason FROM outbox"
            " WHERE parked_at IS NOT NULL AND published_at IS NULL ORDER BY id"
        )

    rows = asyncio.run(_with_conn(service, work))
    for r in rows:
        # A pack (libs/platform/messaging/outbox_pack.py) names its first message; requeue sends them all.
        packed = f"  a pack of {r['messages']} messages, the first" if r["messages"] > 1 else ""
        typer.echo(
            f"{r['id']:>10}  {r['parked_at'].isoformat(timespec='seconds')}  {r['topic']}  {r['bytes']} bytes"
            f"{packed}  event {r['event_id']}\n            {r['parked_reason']}"
        )
    typer.echo(f"{len(rows)} parked row(s)")


@outbox_app.command()
def requeue(
    service: Group,
    row_id: Annotated[list[int], typer.Argument(help="outbox ids from `parked`")],
) -> None:
    """Put parked rows back in the relay's queue (after fixing the cause, e.g. the broker's size limit)."""

    async def work(_: PlatformSettings, conn: asyncpg.Connection) -> str:
        status: str = await conn.execute(
            "UPDATE outbox SET parked_at = NULL, parked_reason = NULL"
            " WHERE id = ANY($1::bigint[]) AND parked_at IS NOT NULL AND published_at IS NULL",
            row_id,
        )
        await conn.execute(f"SELECT {NOTIFY_OUTBOX}")  # wake the relay
        return status

    status = asyncio.run(_with_conn(service, work))
    typer.echo(f"{status.split()[-1]} row(s) requeued")
