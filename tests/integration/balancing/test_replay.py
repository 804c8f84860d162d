"""Every stored cycle replays byte for byte from its stored inputs; `mgrid cycle` explains and replays one.

Runs after the package's other tests (file order), so it replays every cycle they stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import uuid

import asyncpg
import pytest

from services.balancing.adapters import cycles
from services.balancing.replay import replay_cycle
from tests.integration.balancing.conftest import T0, Feed
from tests.integration.balancing.depot import Depot
from tests.support_services import RunningService

pytestmark = pytest.mark.integration


async def mgrid_cycle(feed: Feed, *args: str) -> tuple[int, str]:
    s = feed.settings
    env = {**os.environ, "MGRID_TOPIC_PREFIX": s.topic_prefix, "MGRID_POSTGRES_DSN": s.postgres_dsn}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools.cli", "cycle", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


@pytest.mark.req("NFR-001", "NFR-003", "FR-012")
async def test_every_stored_cycle_replays_byte_for_byte(service: RunningService, feed: Feed) -> None:
    depot = Depot()
    depot.connector("K1", depot.grid_connection("GC", cap_watts=10_000))
    await feed.setup(depot)
    request = depot.rebalance(T0)
    await feed.send(request)
    await feed.cycle(request.payload.request_key)

    ids = [r["cycle_id"] for r in await service.ctx.pool.fetch("SELECT cycle_id FROM cycles ORDER BY seq")]
    assert ids
    for cycle_id in ids:
        stored = await cycles.cycle_by_id(service.ctx.pool, cycle_id)
        assert stored is not None
        report = replay_cycle(stored)
        assert report.identical, (cycle_id, report)


async def test_an_unchanged_tree_is_stored_once_and_every_cycle_still_replays(
    service: RunningService, feed: Feed
) -> None:
    """Inputs are stored as content-addressed parts: a second cycle on the same tree adds no tree part."""
    depot = Depot()
    gc = depot.grid_connection("GC", cap_watts=20_000)
    for name in ("K1", "K2", "K3"):
        depot.connector(name, gc)
    await feed.setup(depot)
    first = depot.rebalance(T0)
    await feed.send(first)
    await feed.cycle(first.payload.request_key)
    parts_after_first = await service.ctx.pool.fetchval("SELECT count(*) FROM cycle_input_parts")
    second = depot.rebalance(T0)
    await feed.send(second)
    await feed.cycle(second.payload.request_key)
    assert await service.ctx.pool.fetchval("SELECT count(*) FROM cycle_input_parts") == parts_after_first
    rows = await service.ctx.pool.fetch(
        "SELECT cycle_id, inputs->'$parts' AS parts FROM cycles WHERE request_key = ANY($1::text[])",
        [first.payload.request_key, second.payload.request_key],
    )
    assert len(rows) == 2 and rows[0]["parts"] == rows[1]["parts"], "both cycles name the same stored parts"
    for row in rows:
        stored = await cycles.cycle_by_id(service.ctx.pool, row["cycle_id"])
        assert stored is not None and replay_cycle(stored).identical


async def test_mgrid_cycle_explains_and_replays_a_stored_cycle(service: RunningService, feed: Feed) -> None:
    row = await service.ctx.pool.fetchrow("SELECT cycle_id, outcome FROM cycles ORDER BY seq DESC LIMIT 1")
    assert row is not None
    code, out = await mgrid_cycle(feed, "replay", str(row["cycle_id"]))
    assert code == 0 and out.strip().endswith("identical"), out
    code, out = await mgrid_cycle(feed, "explain", str(row["cycle_id"]))
    assert code == 0 and f"Cycle {row['cycle_id']}" in out and row["outcome"] in out, out

    # A cycle whose stored output no longer matches its inputs is reported, with exit status 1.
    stored = await cycles.cycle_by_id(service.ctx.pool, row["cycle_id"])
    assert stored is not None
    assert not replay_cycle(dataclasses.replace(stored, output=stored.output + b" ")).identical
    tampered = uuid.uuid4()
    await service.ctx.pool.execute(
        "INSERT INTO cycles (cycle_id, microgrid_id, node_id, request_key, request_event_id, topology_version,"
        " outcome, started_at, ended_at, result, inputs, output, inputs_digest, output_digest, missing_inputs,"
        " engine_version)"
        " SELECT $1, microgrid_id, node_id, $2, request_event_id, topology_version, outcome, started_at, ended_at,"
        " result, inputs, output || ' '::bytea, inputs_digest, output_digest, missing_inputs, engine_version"
        " FROM cycles WHERE cycle_id = $3",
        tampered, f"tampered:{tampered}", row["cycle_id"],
    )
    try:
        code, out = await mgrid_cycle(feed, "replay", str(tampered))
        assert code == 1 and "DIFFERENT" in out, out
    finally:
        await delete_cycle_as_owner(service, feed, tampered)


@pytest.mark.req("NFR-001", "NFR-003")
async def test_replay_of_a_cycle_made_by_an_older_engine_names_it_and_shows_what_changed(
    service: RunningService, feed: Feed
) -> None:
    from libs.domain import ENGINE_VERSION, decode_cycle_output, to_canonical_json
    from libs.domain.codec import canonical_bytes

    row = await service.ctx.pool.fetchrow(
        "SELECT cycle_id, output, engine_version FROM cycles WHERE outcome <> 'REJECTED' ORDER BY seq DESC LIMIT 1"
    )
    assert row is not None and row["engine_version"] == ENGINE_VERSION  # every new cycle records its engine
    # The same cycle as an older engine would have stored it: another version, the output in the record
    # layout (every record an object, as outputs were stored before the tabular one), one connector's watts off.
    output = json.loads(to_canonical_json(decode_cycle_output(bytes(row["output"]))))
    connector = next(n for n in output["allocation_summary"]["nodes"] if n["state"] is not None)
    connector["allocated_watts"] += 2
    older = uuid.uuid4()
    await service.ctx.pool.execute(
        "INSERT INTO cycles (cycle_id, microgrid_id, node_id, request_key, request_event_id, topology_version,"
        " outcome, started_at, ended_at, result, inputs, output, inputs_digest, output_digest, missing_inputs,"
        " rotation)"
        " SELECT $1, microgrid_id, node_id, $2, request_event_id, topology_version, outcome, started_at, ended_at,"
        " jsonb_set(result::jsonb, '{audit,policy_versions,engine_version}', '\"1\"')::json, inputs, $3,"
        " inputs_digest, output_digest, missing_inputs, rotation FROM cycles WHERE cycle_id = $4",
        older, f"older:{older}", canonical_bytes(output), row["cycle_id"],
    )
    try:
        assert await service.ctx.pool.fetchval("SELECT engine_version FROM cycles WHERE cycle_id = $1", older) == "1"
        code, out = await mgrid_cycle(feed, "replay", str(older))
        assert code == 1, out
        assert f"made by engine 1; replayed with engine {ENGINE_VERSION}" in out, out
        assert "allocations changed: 1" in out, out
        watts = connector["allocated_watts"]
        assert f"{connector['node_id']}: {watts} W {connector['state']} -> {watts - 2} W" in out, out
        assert out.strip().splitlines()[-1].startswith("DIFFERENT: made by engine 1"), out
    finally:
        await delete_cycle_as_owner(service, feed, older)


async def delete_cycle_as_owner(service: RunningService, feed: Feed, cycle_id: uuid.UUID) -> None:
    """The service's own role may not delete a cycle (append-only); the schema owner cleans up."""
    s = feed.settings
    owner = await asyncpg.connect(
        s.postgres_owner_dsn or s.postgres_dsn,
        server_settings={"search_path": f'"{service.runtime.definition.schema(s)}"'},
    )
    try:
        await owner.execute("DELETE FROM cycles WHERE cycle_id = $1", cycle_id)
    finally:
        await owner.close()
