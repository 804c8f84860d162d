"""`mgrid outbox parked|requeue` on a service's parked pack (libs/platform/messaging/outbox_pack.py): the
operator sees that the row is a pack, how many messages it holds and why it was parked, and can requeue it."""

from __future__ import annotations

import asyncio
import uuid

from typer.testing import CliRunner

from libs.platform.settings import PlatformSettings
from tests.support import eventually
from tests.support_services import RunningService
from tools.dlq_cli import outbox_app


async def test_a_parked_pack_is_listed_as_one_with_its_reason_and_can_be_requeued(
    service: RunningService, settings: PlatformSettings, monkeypatch
) -> None:
    pool = service.ctx.pool
    row_id = await pool.fetchval(
        "INSERT INTO outbox (event_id, topic, key, value, headers, messages)"
        " VALUES ($1, $2, 'k', 'not a pack', '{}', 3) RETURNING id",
        uuid.uuid4(), settings.topic("microgrid.cycle_completed"),
    )

    async def parked() -> bool:
        return bool(await pool.fetchval("SELECT parked_at IS NOT NULL FROM outbox WHERE id = $1", row_id))

    try:
        await eventually(parked)
        monkeypatch.setenv("MGRID_TOPIC_PREFIX", settings.topic_prefix)
        # The command runs its own event loop, so it runs in a thread beside this test's loop.
        listed = await asyncio.to_thread(CliRunner().invoke, outbox_app, ["parked", "balancing"])
        assert listed.exit_code == 0, listed.output
        line = next(line for line in listed.output.splitlines() if line.strip().startswith(str(row_id)))
        assert "a pack of 3 messages" in line, listed.output
        assert "ValueError: not an outbox pack" in listed.output
        requeued = await asyncio.to_thread(CliRunner().invoke, outbox_app, ["requeue", "balancing", str(row_id)])
        assert requeued.exit_code == 0 and "1 row(s) requeued" in requeued.output, requeued.output
        await eventually(parked)  # still not a pack: the relay parks it again, and the rest flows on
    finally:
        await pool.execute("DELETE FROM outbox WHERE id = $1", row_id)
        if service.runtime.relay is not None:  # readiness reads the backlog: no parked row left behind
            await service.runtime.relay.read_backlog()
