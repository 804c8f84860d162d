"""Balancing's telemetry read model: the newest reading and demand per node, whatever order reports come in.

A report is written in one statement per table (issue 13); these hold that it keeps what a row-by-row
upsert kept: a node reported twice in one report, a late older report, an equal instant (the later wins).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from contracts.records import ConnectorDemandRecord, TelemetryReadingRecord
from services.balancing.adapters import read_models
from services.balancing.adapters.state_cache import MicrogridStateCache, preflight
from tests.integration.balancing.conftest import T0
from tests.support_services import RunningService

pytestmark = pytest.mark.integration


async def _state(service: RunningService, microgrid_id: uuid.UUID) -> read_models.MicrogridState:
    async with service.ctx.pool.acquire() as conn:
        return await read_models.load_microgrid_state(conn, microgrid_id)


@pytest.mark.req("FR-004")
async def test_a_report_keeps_the_newest_reading_and_demand_per_node(service: RunningService) -> None:
    microgrid_id, meter, connector = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    older, newer, later = T0 - timedelta(seconds=10), T0, T0 + timedelta(seconds=1)
    readings = [
        TelemetryReadingRecord(node_id=meter, measured_demand_watts=5_000, observed_at=newer),
        TelemetryReadingRecord(node_id=meter, measured_demand_watts=1_000, observed_at=older),  # same report, older
        TelemetryReadingRecord(node_id=connector, measured_demand_watts=700, observed_at=newer),
    ]
    demands = [
        ConnectorDemandRecord(node_id=connector, requested_watts=11_000, observed_at=newer),
        ConnectorDemandRecord(node_id=connector, requested_watts=7_400, observed_at=newer),  # equal instant: later
    ]
    async with service.ctx.pool.acquire() as conn, conn.transaction():
        await read_models.save_telemetry(conn, microgrid_id, readings, demands)
    state = await _state(service, microgrid_id)
    assert {r.node_id: r.measured_demand_watts for r in state.readings} == {meter: 5_000, connector: 700}
    assert [(d.node_id, d.requested_watts) for d in state.demands] == [(connector, 7_400)]

    # A late report older than what is kept changes nothing; a newer one replaces it.
    async with service.ctx.pool.acquire() as conn, conn.transaction():
        await read_models.save_telemetry(
            conn,
            microgrid_id,
            [TelemetryReadingRecord(node_id=meter, measured_demand_watts=9_999, observed_at=older)],
            [ConnectorDemandRecord(node_id=connector, requested_watts=22_000, observed_at=later)],
        )
    state = await _state(service, microgrid_id)
    assert {r.node_id: r.measured_demand_watts for r in state.readings} == {meter: 5_000, connector: 700}
    assert [(d.node_id, d.requested_watts) for d in state.demands] == [(connector, 22_000)]

    # The instants are compared to the microsecond (the records go to Postgres as JSON text).
    tick = timedelta(microseconds=1)
    for watts, at in ((4_000, newer - tick), (6_000, newer + tick)):
        async with service.ctx.pool.acquire() as conn, conn.transaction():
            reading = TelemetryReadingRecord(node_id=meter, measured_demand_watts=watts, observed_at=at)
            await read_models.save_telemetry(conn, microgrid_id, [reading], [])
    state = await _state(service, microgrid_id)
    assert {r.node_id: r.measured_demand_watts for r in state.readings} == {meter: 6_000, connector: 700}


def _reports(nodes: list[uuid.UUID]) -> list[tuple[list[TelemetryReadingRecord], list[ConnectorDemandRecord]]]:
    """Reports as a depot sends them and worse: all nodes, a few nodes, late older ones, equal instants,
    one node twice in a report, readings without demands and demands without readings."""
    at = [T0 + timedelta(seconds=s) for s in range(6)]
    first, rest = nodes[:3], nodes[3:]
    return [
        ([TelemetryReadingRecord(node_id=n, measured_demand_watts=100 + i, observed_at=at[1])
          for i, n in enumerate(nodes)],
         [ConnectorDemandRecord(node_id=n, requested_watts=7_000 + i, observed_at=at[1]) for i, n in enumerate(rest)]),
        ([TelemetryReadingRecord(node_id=n, measured_demand_watts=200, observed_at=at[2]) for n in first], []),
        ([TelemetryReadingRecord(node_id=n, measured_demand_watts=999, observed_at=at[0]) for n in nodes], []),  # late
        ([], [ConnectorDemandRecord(node_id=n, requested_watts=11_000, observed_at=at[1]) for n in rest]),  # equal
        ([TelemetryReadingRecord(node_id=nodes[0], measured_demand_watts=300, observed_at=at[3]),
          TelemetryReadingRecord(node_id=nodes[0], measured_demand_watts=250, observed_at=at[2])],
         [ConnectorDemandRecord(node_id=n, requested_watts=5_000, min_watts=1_000, observed_at=at[4]) for n in first]),
    ]


async def test_a_telemetry_write_applied_in_memory_reads_as_the_tables_do(service: RunningService) -> None:
    """The state cache brings a microgrid's telemetry up to date from the write itself instead of reading it
    back (issue 13): after every report, what it computes equals what a load reads, record for record and in
    order, under the same stamp; so a cycle's inputs and their digest are the same either way."""
    microgrid_id = uuid.uuid4()
    nodes = sorted(uuid.uuid4() for _ in range(8))[::-1]  # sent in an order other than the load's
    async with service.ctx.pool.acquire() as conn:
        part = await read_models.load_telemetry_part(conn, microgrid_id)
        assert part.stamp is None
        for readings, demands in _reports(nodes):
            async with conn.transaction():
                saved = await read_models.save_telemetry(conn, microgrid_id, readings, demands)
            assert saved is not None and saved.previous_stamp == part.stamp
            in_memory = read_models.telemetry_after(part, saved) if part.stamp is not None else None
            part = await read_models.load_telemetry_part(conn, microgrid_id)
            if in_memory is not None:
                assert in_memory == part
        # A part that is not the state the write was made on is never brought forward.
        async with conn.transaction():
            saved = await read_models.save_telemetry(conn, microgrid_id, *_reports(nodes)[1])
        assert saved is not None
        stale = read_models.TelemetryPart(saved.previous_stamp - 1, part.readings, part.demands)  # type: ignore[operator]
        assert read_models.telemetry_after(stale, saved) is None
        assert await read_models.save_telemetry(conn, microgrid_id, [], []) is None  # nothing written or stamped


async def test_the_state_cache_serves_a_committed_telemetry_write_without_reading_it_back(
    service: RunningService, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[uuid.UUID] = []
    load = read_models.load_telemetry_part

    async def counted(conn, microgrid_id):  # noqa: ANN001, ANN202
        reads.append(microgrid_id)
        return await load(conn, microgrid_id)

    monkeypatch.setattr(read_models, "load_telemetry_part", counted)
    microgrid_id = uuid.uuid4()
    nodes = sorted(uuid.uuid4() for _ in range(8))
    reports = _reports(nodes)
    cache = MicrogridStateCache()
    async with service.ctx.pool.acquire() as conn:
        async with conn.transaction():
            await read_models.save_telemetry(conn, microgrid_id, *reports[0])
        await cache.state(conn, microgrid_id, await preflight(conn, microgrid_id, "k"))
        for readings, demands in reports[1:]:
            async with conn.transaction():
                saved = await read_models.save_telemetry(conn, microgrid_id, readings, demands)
            assert saved is not None
            cache.telemetry_saved(microgrid_id, saved)  # as the handler's on-commit callback does
            before = len(reads)
            cached = await cache.state(conn, microgrid_id, await preflight(conn, microgrid_id, "k"))
            assert len(reads) == before  # served from memory: the telemetry not read again
            fresh = await MicrogridStateCache().state(conn, microgrid_id, await preflight(conn, microgrid_id, "k"))
            assert cached.telemetry.part == fresh.telemetry.part
            assert cached.telemetry.encoded == fresh.telemetry.encoded  # the same text, the same digests
