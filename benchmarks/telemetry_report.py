"""What balancing spends on one telemetry report: the message parsed, the newest record per node saved, and
its in-memory copy brought up to date with the cycle inputs derived from it. As it was until the
twenty-third round (the baseline, reproduced here) and as the service does it now, on the same Postgres.

Not a test: prints figures with the machine and settings. Needs the local stack (`mgrid stack up`, then
`eval "$(./mgrid stack env)"`). Run from the repo root:

    .venv/bin/python benchmarks/telemetry_report.py [--reports 200] [--nodes 311:200]

A schema of its own with balancing's tables (dropped at the end) holds two depots of the fleet benchmark's
shape (311 nodes, 200 connectors), one per path, so both write the same amount. Each report renews every
record of both depots (a depot reports all its meters and chargers at once); the two paths run in turn,
alternating which goes first. Each path's CPU time is taken around it, in this process and in its
Postgres backend (from /proc). What the baseline changed, and what each path keeps:

- saving: the baseline wrote each record's JSON text (`model_dump_json` per record) and arrays of the ids
  and instants; now one JSON array for the whole report (`TypeAdapter.dump_json`) goes to Postgres, which
  takes it apart;
- the newest record per node and the in-memory merge: keyed by the UUID (hashed and compared in Python)
  in the baseline, by its integer now;
- the cycle inputs: each node id formatted by `str(UUID)` in the baseline, remembered by its integer now.

After every report each path's in-memory copy is checked equal to what a load of its depot reads.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.telemetry_refresh import backend_pid_with_machine_line, balancing_schema, report, report_args  # noqa: E402
from benchmarks.toast_compression import backend_cpu_s  # noqa: E402
from contracts.events import TelemetryReported, TelemetryReportedPayload  # noqa: E402
from contracts.records import ConnectorDemandRecord, TelemetryReadingRecord  # noqa: E402
from libs.domain import ConnectorDemand, TelemetryReading  # noqa: E402
from services.balancing.adapters import read_models  # noqa: E402
from services.balancing.adapters.read_models import TelemetryPart, TelemetrySaved  # noqa: E402
from services.balancing.adapters.state_cache import _TELEMETRY_FIELDS, CachedTelemetry, _encoded  # noqa: E402
from services.balancing.cycle_inputs import TelemetryCycleInputs  # noqa: E402

# ---- the baseline: the code as it was before the twenty-third round ------------------------------------


async def save_before(conn: Any, microgrid_id: uuid.UUID, readings: list, demands: list) -> TelemetrySaved:
    newest_readings, newest_demands = _newest_before(readings), _newest_before(demands)
    for table, newest in (("telemetry_readings", newest_readings), ("connector_demands", newest_demands)):
        await conn.execute(
            f"INSERT INTO {table} (node_id, microgrid_id, record, observed_at)"
            f" SELECT n, $2, r::jsonb, o FROM unnest($1::uuid[], $3::text[], $4::timestamptz[]) AS u(n, r, o)"
            f" ON CONFLICT (node_id) DO UPDATE SET microgrid_id = EXCLUDED.microgrid_id,"
            f"  record = EXCLUDED.record, observed_at = EXCLUDED.observed_at"
            f" WHERE {table}.observed_at <= EXCLUDED.observed_at",
            [r.node_id for r in newest],
            microgrid_id,
            [r.model_dump_json() for r in newest],
            [r.observed_at for r in newest],
        )
    previous = await conn.fetchval(read_models._PREVIOUS_TELEMETRY_STAMP_SQL, microgrid_id)  # noqa: SLF001
    stamped = await conn.fetchval(read_models._STAMP_TELEMETRY_SQL, microgrid_id)  # noqa: SLF001
    return TelemetrySaved(previous, stamped, newest_readings, newest_demands)


def _newest_before(records: list) -> list:
    newest: dict[uuid.UUID, Any] = {}
    for r in records:
        seen = newest.get(r.node_id)
        if seen is None or seen.observed_at <= r.observed_at:
            newest[r.node_id] = r
    return list(newest.values())


def _upserted_before(rows: list, newest: list) -> list:
    by_node = {r.node_id: r for r in rows}
    for r in newest:
        seen = by_node.get(r.node_id)
        if seen is None or seen.observed_at <= r.observed_at:
            by_node[r.node_id] = r
    return [by_node[node_id] for node_id in sorted(by_node)]


def refresh_before(part: TelemetryPart, saved: TelemetrySaved) -> CachedTelemetry:
    after = TelemetryPart(saved.stamp, _upserted_before(part.readings, saved.readings),
                          _upserted_before(part.demands, saved.demands))
    inputs = TelemetryCycleInputs(
        telemetry=tuple(_reading_before(r) for r in after.readings),
        connector_demands=tuple(ConnectorDemand(str(d.node_id), d.requested_watts, d.min_watts, d.priority, d.weight)
                                for d in after.demands),
    )
    return CachedTelemetry(after, inputs, _encoded(inputs, _TELEMETRY_FIELDS))


def _reading_before(r: TelemetryReadingRecord) -> TelemetryReading:
    measured_nothing = r.measured_demand_watts is None and r.measured_generation_watts is None
    return TelemetryReading(
        node_id=str(r.node_id),
        observed_at=r.observed_at,
        measured_watts=r.measured_demand_watts or 0,
        generation_watts=r.measured_generation_watts or 0,
        valid=r.valid and not measured_nothing,
    )


# ---- now: the service's own code --------------------------------------------------------------------


async def save_now(conn: Any, microgrid_id: uuid.UUID, readings: list, demands: list) -> TelemetrySaved:
    saved = await read_models.save_telemetry(conn, microgrid_id, readings, demands)
    assert saved is not None
    return saved


def refresh_now(part: TelemetryPart, saved: TelemetrySaved) -> CachedTelemetry:
    after = read_models.telemetry_after(part, saved)
    assert after is not None
    return CachedTelemetry.of(after)


PATHS = {"before": (save_before, refresh_before), "now": (save_now, refresh_now)}


def message(microgrid_id: uuid.UUID, readings: list[TelemetryReadingRecord], demands: list[ConnectorDemandRecord],
            at: datetime) -> bytes:
    payload = TelemetryReportedPayload(microgrid_id=microgrid_id, readings=readings, demands=demands)
    return TelemetryReported.create(payload, producer="telemetry-bench", occurred_at=at).to_bytes()


async def main() -> None:
    args, size, width = report_args(__doc__.splitlines()[0])
    async with balancing_schema() as pool:
        t0 = datetime(2030, 1, 1, tzinfo=UTC)
        depots = {name: (uuid.uuid4(), [uuid.uuid4() for _ in range(size)]) for name in PATHS}
        parts: dict[str, TelemetryPart] = {}
        async with pool.acquire() as conn:
            pid = await backend_pid_with_machine_line(conn)
            print(f"settings: {size} readings + {width} demands per report, {args.reports} reports per path, the "
                  "two paths in turn, alternating which goes first")
            for name, (microgrid_id, nodes) in depots.items():
                async with conn.transaction():
                    await read_models.save_telemetry(conn, microgrid_id, *report(nodes, nodes[:width], t0, 0))
                parts[name] = await read_models.load_telemetry_part(conn, microgrid_id)
            cpu: dict[str, list[float]] = {name: [] for name in PATHS}
            db: dict[str, list[float]] = {name: [] for name in PATHS}
            for i in range(1, args.reports + 1):
                at = t0 + timedelta(seconds=i)
                for name in (tuple(PATHS) if i % 2 else tuple(reversed(PATHS))):
                    microgrid_id, nodes = depots[name]
                    raw = message(microgrid_id, *report(nodes, nodes[:width], at, i), at)
                    save, refresh = PATHS[name]
                    start, start_db = time.process_time(), backend_cpu_s(pid)
                    payload = TelemetryReported.model_validate_json(raw).payload
                    async with conn.transaction():
                        saved = await save(conn, microgrid_id, payload.readings, payload.demands)
                    cached = refresh(parts[name], saved)
                    cpu[name].append(time.process_time() - start)
                    db[name].append(backend_cpu_s(pid) - start_db)
                    parts[name] = await read_models.load_telemetry_part(conn, microgrid_id)
                    assert cached.part == parts[name], f"{name}: the in-memory copy differs from the tables"
                    assert cached.inputs.telemetry == CachedTelemetry.of(parts[name]).inputs.telemetry
        base = statistics.median(cpu["before"]) + statistics.mean(db["before"])
        print(f"{'path':<8} {'service CPU (median)':>21} {'backend CPU (mean)':>19} {'together':>9} {'vs before':>10}")
        for name in PATHS:
            service, backend = statistics.median(cpu[name]), statistics.mean(db[name])
            print(f"{name:<8} {service * 1000:>18.2f} ms {backend * 1000:>16.2f} ms"
                  f" {(service + backend) * 1000:>6.2f} ms {(service + backend) / base:>9.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
