"""The HTTP door's results are read from microgrid.cycle_completed only while a request of this process
waits for one (cycle_result_reader.py): the fleet's other cycles are not fetched at all."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from contracts.enums import CycleOutcome, RebalanceSource
from contracts.events import CycleCompleted
from contracts.records import AllocationSummaryRecord, CycleAuditRecord, CycleResultRecord
from services.compatibility_adapter.cycle_result_reader import CycleResultReader
from tests.integration.compatibility_adapter.conftest import Adapter, known_site, play_balancing
from tests.support import TopicReader, eventually
from tests.support_services import auth_headers

pytestmark = pytest.mark.integration


def _reader(adapter: Adapter) -> CycleResultReader:
    reader = adapter.service.ctx.memory
    assert isinstance(reader, CycleResultReader)
    return reader


async def _someone_elses_cycle(adapter: Adapter) -> CycleCompleted:
    """A cycle of another door (a scheduler's), as balancing publishes every cycle of the fleet."""
    now = datetime.now(UTC)
    cycle = CycleResultRecord(
        cycle_id=uuid.uuid4(), microgrid_id=uuid.uuid4(), topology_version=1, started_at=now, ended_at=now,
        outcome=CycleOutcome.APPLIED, reason_codes=[],
        allocation_summary=AllocationSummaryRecord(total_allocated_watts=0, total_requested_watts=0),
        audit=CycleAuditRecord(actor="scheduler", source=RebalanceSource.SCHEDULER, correlation_id="c",
                               request_key=f"scheduler:{uuid.uuid4()}", inputs_digest="sha256:test"),
    )
    message = CycleCompleted.create(cycle, producer="balancing", occurred_at=now)
    async with TopicReader(adapter.settings, "microgrid.cycle_completed") as on_topic:
        await adapter.send(message)
        await on_topic.wait_for(lambda rs: any(r.value == message.to_bytes() for r in rs))
    return message


async def test_no_cycle_result_is_fetched_while_no_http_request_waits(
    adapter: Adapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = _reader(adapter)
    consumer = adapter.service.runtime.consumer
    assert consumer is not None
    assert "microgrid.cycle_completed" not in consumer._models  # noqa: SLF001 - the group reads no cycle
    for key in reader.watched():  # the package's earlier tests' requests: none waits any more
        reader.forget(key)
    await eventually(lambda: asyncio.sleep(0, result=not reader.reading))
    read = reader.records_read
    await _someone_elses_cycle(adapter)
    assert (reader.records_read, reader.reading) == (read, False)
    assert len(reader.paused()) >= 1  # every partition of the topic, none fetched

    # A request is read for while it waits, then the reader pauses again once its watch ends.
    monkeypatch.setattr(adapter.service.ctx.settings, "compat_result_watch_s", 0.5)
    site = await known_site(adapter)
    url = f"/api/circuit/{site.circuit_id}/rebalance_load"
    call = asyncio.create_task(adapter.service.client.post(url, headers=auth_headers("integration:write"), timeout=30))
    await play_balancing(adapter, site.circuit_id)
    assert (await call).status_code == 200
    assert reader.records_read > read
    await eventually(lambda: asyncio.sleep(0, result=not reader.reading))
    read = reader.records_read
    await _someone_elses_cycle(adapter)
    assert reader.records_read == read


async def test_a_repeat_after_the_watch_ended_finds_the_result_from_the_requests_time(
    adapter: Adapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The result came while nobody read (the watch ended, as after a restart): the repeat with the same
    Idempotency-Key reads from when the request was recorded, keeps the result and answers with it."""
    reader = _reader(adapter)
    for key in reader.watched():  # the package's earlier tests' requests: none waits any more
        reader.forget(key)
    settings = adapter.service.ctx.settings
    monkeypatch.setattr(settings, "compat_rebalance_wait_s", 0.2)
    monkeypatch.setattr(settings, "compat_result_watch_s", 0.2)
    site = await known_site(adapter)
    headers = auth_headers("integration:write") | {"Idempotency-Key": "late-1"}
    url = f"/api/circuit/{site.circuit_id}/rebalance_load"

    pending = await adapter.service.client.post(url, headers=headers)
    assert pending.status_code == 202
    await eventually(lambda: asyncio.sleep(0, result=not reader.reading))
    request = await play_balancing(adapter, site.circuit_id)
    await _someone_elses_cycle(adapter)  # the result is on the topic before this one, and unread
    assert not reader.reading

    monkeypatch.setattr(settings, "compat_rebalance_wait_s", 15.0)
    done = await adapter.service.client.post(url, headers=headers)
    assert done.status_code == 200, done.text
    assert done.json()["result"]["audit"]["request_key"] == request.payload.request_key == pending.json()["request_key"]
