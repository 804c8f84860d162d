"""Capability status: append-only ingest, idempotent replay, latest-status projection, history, rebuild."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from contracts.events import CapabilityStatusRecorded
from services.topology.cli import app as topology_cli
from services.topology.rebuild_projection import rebuild
from tests.integration.topology.conftest import READ, START, WRITE, depot_with_feeders
from tests.support import TopicReader
from tests.support_services import auth_headers

pytestmark = pytest.mark.integration
INTEGRATION = auth_headers("integration:write", subject="oscp-adapter")


async def microgrid_with_control_points(topology, settings, kafka) -> dict[str, Any]:
    depot_id, body = await depot_with_feeders(topology, settings, kafka)
    mg = body["result"]["microgrid"]["microgrid_id"]
    gc = body["result"]["added_node_ids"][0]
    points = {"lb": uuid.uuid4(), "peak": uuid.uuid4()}
    for key, payload in (
        ("lb", {"capability_type": "LOAD_BALANCING", "state": "enabled", "control_source": "LOCAL"}),
        ("peak", {"capability_type": "PEAK_SHAVING", "state": "enabled", "control_source": "EXTERNAL", "node_id": gc}),
    ):
        r = await topology.client.post(f"/api/microgrid/{mg}/control-points/{points[key]}", headers=WRITE, json=payload)
        assert r.status_code == 200, r.text
    return {"depot": depot_id, "mg": mg, "gc": gc, **{k: str(v) for k, v in points.items()}}


def status(value: Any, observed_offset_s: int, ref: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "operational_status": value,
        "observed_at": (START + timedelta(seconds=observed_offset_s)).isoformat(),
        "source_event_ref": ref or str(uuid.uuid4()),
        **extra,
    }


async def post_status(topology, t: dict, point: str, body: dict, headers=INTEGRATION):
    return await topology.client.post(
        f"/api/microgrid/{t['mg']}/control-points/{point}/status-events", headers=headers, json=body
    )


async def projections(topology, mg: str) -> dict[str, dict]:
    listed = (await topology.client.get(f"/api/microgrid/{mg}/control-points", headers=READ)).json()["result"]
    return {p["control_point"]["control_point_id"]: p["status"] for p in listed["control_points"]}


@pytest.mark.req("FR-021", "FR-023", "FR-025", "NFR-008", "FR-020")
async def test_status_event_is_recorded_published_and_projected_with_freshness(
    topology, settings, kafka, clock
) -> None:
    t = await microgrid_with_control_points(topology, settings, kafka)
    clock.set(START + timedelta(seconds=10))
    r = await post_status(topology, t, t["peak"], status(True, 0, "oscp-evt-1", status_detail={"mode": "auto"}))
    assert r.status_code == 200, r.text
    event = r.json()["result"]["event"]
    assert r.json()["result"]["replayed"] is False
    # A raw controller boolean becomes ON, the raw value stays in status_detail; reported_by defaults to EXTERNAL.
    assert event["operational_status"] == "ON"
    assert event["status_detail"] == {"mode": "auto", "raw_operational_status": True}
    assert event["reported_by"] == "EXTERNAL" and event["capability_type"] == "PEAK_SHAVING"
    assert event["node_id"] == t["gc"] and event["ingested_at"].startswith("2030-01-01T12:00:10")

    clock.set(START + timedelta(seconds=95))  # freshness is computed at read time
    latest = (await projections(topology, t["mg"]))[t["peak"]]
    assert latest["latest_operational_status"] == "ON" and latest["freshness_seconds"] == 95
    assert latest["last_observed_at"].startswith("2030-01-01T12:00:00")
    assert (await projections(topology, t["mg"]))[t["lb"]] is None

    async with TopicReader(settings, "microgrid.capability_status.recorded") as reader:
        records = await reader.wait_for(lambda rs: any(str(uuid.UUID(t["mg"])) in r.value.decode() for r in rs))
    [recorded] = [CapabilityStatusRecorded.model_validate_json(r.value) for r in records if t["mg"] in r.value.decode()]
    assert str(recorded.payload.status_event_id) == event["status_event_id"]
    assert recorded.payload.source_event_ref == "oscp-evt-1" and recorded.payload.operational_status == "ON"

    # False -> OFF; a free-form string stays as it is.
    off = await post_status(topology, t, t["peak"], status(False, 20))
    assert off.json()["result"]["event"]["operational_status"] == "OFF"
    text = await post_status(topology, t, t["lb"], status("BALANCING", 20), headers=WRITE)
    assert text.json()["result"]["event"]["operational_status"] == "BALANCING"
    assert text.json()["result"]["event"]["reported_by"] == "LOCAL"


@pytest.mark.req("FR-023")
async def test_status_event_must_reference_an_active_control_point_of_the_same_microgrid(
    topology, settings, kafka
) -> None:
    t = await microgrid_with_control_points(topology, settings, kafka)
    other = await microgrid_with_control_points(topology, settings, kafka)
    for point in (str(uuid.uuid4()), other["peak"]):
        r = await post_status(topology, t, point, status("ON", 0))
        assert r.status_code == 422
        assert r.json()["violated_rule"] == "STATUS_EVENT_UNKNOWN_CONTROL_POINT"
    missing = await topology.client.post(
        f"/api/microgrid/{uuid.uuid4()}/control-points/{t['peak']}/status-events",
        headers=INTEGRATION,
        json=status("ON", 0),
    )
    assert missing.status_code == 404


@pytest.mark.req("NFR-009", "FR-024")
async def test_replayed_source_event_ref_returns_the_original_and_records_once(topology, settings, kafka) -> None:
    t = await microgrid_with_control_points(topology, settings, kafka)
    first = await post_status(topology, t, t["peak"], status("ON", 0, "ref-1"))
    # Sequential and concurrent replays (even with another body) all return the original event.
    replay = await post_status(topology, t, t["peak"], status("OFF", 5, "ref-1"))
    burst = await asyncio.gather(*(post_status(topology, t, t["peak"], status("OFF", 5, "ref-2")) for _ in range(4)))
    assert replay.status_code == 200 and replay.json()["result"]["replayed"] is True
    assert replay.json()["result"]["event"] == first.json()["result"]["event"]
    assert sorted(r.json()["result"]["replayed"] for r in burst) == [False, True, True, True]
    assert len({r.json()["result"]["event"]["status_event_id"] for r in burst}) == 1

    page = (
        await topology.client.get(f"/api/microgrid/{t['mg']}/control-points/{t['peak']}/status-events", headers=READ)
    ).json()["result"]
    assert [e["source_event_ref"] for e in page["events"]] == ["ref-1", "ref-2"]
    assert (await projections(topology, t["mg"]))[t["peak"]]["latest_operational_status"] == "OFF"


@pytest.mark.req("FR-024")
async def test_status_history_is_append_only_in_the_database(topology, settings, kafka) -> None:
    t = await microgrid_with_control_points(topology, settings, kafka)
    await post_status(topology, t, t["peak"], status("ON", 0))
    statements = (
        "UPDATE capability_status_event SET operational_status = 'OFF' WHERE microgrid_id = $1",
        "DELETE FROM capability_status_event WHERE microgrid_id = $1",
    )
    # The service's own role holds no UPDATE, DELETE or TRUNCATE on the history (docs/security.md)...
    async with topology.ctx.pool.acquire() as conn:
        for statement in statements:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement, uuid.UUID(t["mg"]))
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("TRUNCATE capability_status_event CASCADE")
    # ...and even the schema owner is stopped by the append-only trigger.
    owner = await asyncpg.connect(
        settings.postgres_owner_dsn or settings.postgres_dsn,
        server_settings={"search_path": f'"{topology.runtime.definition.schema(settings)}"'},
    )
    try:
        for statement in statements:
            with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
                await owner.execute(statement, uuid.UUID(t["mg"]))
        with pytest.raises(asyncpg.RestrictViolationError):
            await owner.execute("TRUNCATE capability_status_event CASCADE")
        count = await owner.fetchval(
            "SELECT count(*) FROM capability_status_event WHERE microgrid_id = $1", uuid.UUID(t["mg"])
        )
    finally:
        await owner.close()
    assert count == 1


@pytest.mark.req("FR-024")
async def test_history_reads_by_time_range_with_pagination(topology, settings, kafka) -> None:
    t = await microgrid_with_control_points(topology, settings, kafka)
    for offset in (50, 10, 40, 20, 30, 0):  # arrival order differs from observation order
        await post_status(topology, t, t["peak"], status(f"S{offset}", offset))
    url = f"/api/microgrid/{t['mg']}/control-points/{t['peak']}/status-events"
    params = {
        "from": (START + timedelta(seconds=10)).isoformat(),
        "to": (START + timedelta(seconds=50)).isoformat(),
        "limit": 3,
    }
    first = (await topology.client.get(url, headers=READ, params=params)).json()["result"]
    assert [e["operational_status"] for e in first["events"]] == ["S10", "S20", "S30"]
    second = (await topology.client.get(url, headers=READ, params=params | {"cursor": first["next_cursor"]})).json()
    assert [e["operational_status"] for e in second["result"]["events"]] == ["S40"]
    assert second["result"]["next_cursor"] is None
    bad = await topology.client.get(url, headers=READ, params={"cursor": "!!"})
    assert bad.status_code == 422 and bad.json()["violated_rule"] == "CURSOR_INVALID"
    other = await topology.client.get(
        f"/api/microgrid/{t['mg']}/control-points/{uuid.uuid4()}/status-events", headers=READ
    )
    assert other.status_code == 404


@pytest.mark.req("FR-025", "NFR-009", "FR-024")
async def test_projection_rebuilt_from_history_equals_the_live_projection(topology, settings, kafka, clock) -> None:
    t = await microgrid_with_control_points(topology, settings, kafka)
    # Out-of-order observations and a tie on observed_at: latest is by observed_at, then ingested_at, then arrival.
    for offset, value, point in (
        (30, "C", "peak"),
        (10, "A", "peak"),
        (30, "D", "peak"),
        (5, "X", "lb"),
        (1, "W", "lb"),
    ):
        clock.advance(timedelta(seconds=1))
        assert (await post_status(topology, t, t[point], status(value, offset))).status_code == 200
    live = await projections(topology, t["mg"])
    assert live[t["peak"]]["latest_operational_status"] == "D"
    assert live[t["lb"]]["latest_operational_status"] == "X"

    async with topology.ctx.pool.acquire() as conn:
        snapshot = await conn.fetch(
            "SELECT * FROM capability_status_projection WHERE microgrid_id = $1 ORDER BY control_point_id",
            uuid.UUID(t["mg"]),
        )
        await conn.execute("DELETE FROM capability_status_projection WHERE microgrid_id = $1", uuid.UUID(t["mg"]))
    assert (await projections(topology, t["mg"]))[t["peak"]] is None

    assert await rebuild(topology.ctx.pool, uuid.UUID(t["mg"])) == 2
    assert await projections(topology, t["mg"]) == live
    async with topology.ctx.pool.acquire() as conn:
        rebuilt = await conn.fetch(
            "SELECT * FROM capability_status_projection WHERE microgrid_id = $1 ORDER BY control_point_id",
            uuid.UUID(t["mg"]),
        )
    assert [dict(r) for r in rebuilt] == [dict(r) for r in snapshot]


@pytest.mark.req("FR-025")
async def test_rebuild_command_runs_against_the_service_schema(topology, settings, kafka, monkeypatch) -> None:
    t = await microgrid_with_control_points(topology, settings, kafka)
    await post_status(topology, t, t["lb"], status("ON", 0))
    before = await projections(topology, t["mg"])
    monkeypatch.setenv("MGRID_TOPIC_PREFIX", settings.topic_prefix)
    from typer.testing import CliRunner

    # The command runs its own event loop, so it runs in a thread beside this test's loop.
    result = await asyncio.to_thread(
        CliRunner().invoke, topology_cli, ["rebuild-projection", "--microgrid-id", t["mg"]]
    )
    assert result.exit_code == 0, result.output
    assert "rebuilt 1 capability status projection row(s)" in result.output
    assert await projections(topology, t["mg"]) == before


@pytest.mark.req("FR-021", "NFR-009")
async def test_depot_route_records_whole_microgrid_status(topology, settings, kafka) -> None:
    t = await microgrid_with_control_points(topology, settings, kafka)
    url = f"/api/depot/{t['depot']}/microgrid/capability-status-events"
    r = await topology.client.post(
        url, headers=INTEGRATION, json=status(True, 0, "depot-1") | {"capability_type": "LOAD_BALANCING"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["microgrid_id"] == t["mg"]
    assert r.json()["result"]["event"]["control_point_id"] == t["lb"]
    again = await topology.client.post(
        url, headers=INTEGRATION, json=status(True, 0, "depot-1") | {"control_point_id": t["lb"]}
    )
    assert again.json()["result"]["replayed"] is True
    # PEAK_SHAVING here is node-scoped only: no whole-microgrid control point to record against.
    r = await topology.client.post(url, headers=INTEGRATION, json=status("ON", 0) | {"capability_type": "PEAK_SHAVING"})
    assert r.status_code == 422 and r.json()["violated_rule"] == "STATUS_EVENT_UNKNOWN_CONTROL_POINT"
    r = await topology.client.post(url, headers=INTEGRATION, json=status("ON", 0) | {"control_point_id": t["peak"]})
    assert r.status_code == 422 and r.json()["violated_rule"] == "STATUS_EVENT_NOT_WHOLE_MICROGRID"
    r = await topology.client.post(url, headers=READ, json=status("ON", 0) | {"capability_type": "LOAD_BALANCING"})
    assert r.status_code == 403
    r = await topology.client.post(
        f"/api/depot/{uuid.uuid4()}/microgrid/capability-status-events",
        headers=INTEGRATION,
        json=status("ON", 0) | {"capability_type": "LOAD_BALANCING"},
    )
    assert r.status_code == 404


async def test_a_status_observed_beyond_the_clock_skew_is_refused_and_does_not_pin_the_status(
    topology, settings, kafka, clock
) -> None:
    # Issue 14: a status dated 2099 pinned the latest status; a real OFFLINE now changed nothing.
    t = await microgrid_with_control_points(topology, settings, kafka)
    far_future = {**status("ONLINE", 0), "observed_at": "2099-01-01T00:00:00+00:00"}
    just_beyond = status("ONLINE", 5 * 60 + 1)
    within = status("ONLINE", 5 * 60)

    for body in (far_future, just_beyond):
        r = await post_status(topology, t, t["peak"], body)
        assert r.status_code == 422, r.text
        assert r.json()["violated_rule"] == "STATUS_EVENT_OBSERVED_IN_FUTURE"
    r = await post_status(topology, t, t["peak"], within)
    assert r.status_code == 200, r.text

    clock.set(START + timedelta(minutes=10))
    r = await post_status(topology, t, t["peak"], status("OFFLINE", 6 * 60))
    assert r.status_code == 200, r.text
    assert (await projections(topology, t["mg"]))[t["peak"]]["latest_operational_status"] == "OFFLINE"
