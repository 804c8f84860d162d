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
