"""What balancing spends to bring a microgrid's telemetry up to date after a report: read back from the
tables (the baseline: `load_telemetry_part`, what every report cost the next cycle until issue 13's
thirteenth round) or applied in memory from the write itself (`telemetry_after`, what the state cache
does now), each followed by the same derivation of the cycle's telemetry inputs and their canonical text.

Not a test: prints figures with the machine and settings. Needs the local stack (`mgrid stack up`, then
`eval "$(./mgrid stack env)"`). Run from the repo root:

    .venv/bin/python benchmarks/telemetry_refresh.py [--reports 200] [--nodes 311:200]

A schema of its own with balancing's tables (dropped at the end) holds one depot's telemetry: a reading
per node and a demand per connector (the fleet benchmark's depot: 311 nodes, 200 connectors). Each
report renews every record; after it, both paths run, in alternating order, on the same state, and the
process's CPU time (and the Postgres backend's, from /proc) is taken around each. The two results are
checked equal on every report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.toast_compression import backend_cpu_s  # noqa: E402
from contracts.records import ConnectorDemandRecord, TelemetryReadingRecord  # noqa: E402
from libs.platform.db import create_pool, migrate  # noqa: E402
from services.balancing.adapters import read_models  # noqa: E402
from services.balancing.adapters.state_cache import CachedTelemetry  # noqa: E402

MIGRATIONS = Path(__file__).resolve().parent.parent / "services" / "balancing" / "migrations"


def report(nodes: list[uuid.UUID], connectors: list[uuid.UUID], at: datetime, i: int) -> tuple[list, list]:
    readings = [TelemetryReadingRecord(node_id=n, measured_demand_watts=1_000 + (i + k) % 5_000, observed_at=at)
                for k, n in enumerate(nodes)]
    demands = [ConnectorDemandRecord(node_id=c, requested_watts=7_000 + (i * k) % 4_000, min_watts=1_000,
                                     observed_at=at) for k, c in enumerate(connectors)]
    return readings, demands


def report_args(description: str) -> tuple[argparse.Namespace, int, int]:
    """The telemetry benchmarks' options: how many reports, and the depot's nodes:connectors."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--reports", type=int, default=200)
    parser.add_argument("--nodes", default="311:200", help="nodes:connectors (readings:demands per report)")
    args = parser.parse_args()
    size, width = (int(x) for x in args.nodes.split(":"))
    return args, size, width


@contextlib.asynccontextmanager
async def balancing_schema() -> AsyncIterator[asyncpg.Pool]:
    """A pool on a schema of its own with balancing's tables, dropped at the end."""
    dsn = os.environ.get("MGRID_POSTGRES_OWNER_DSN") or os.environ["MGRID_POSTGRES_DSN"]
    schema = f"telemetry_bench_{uuid.uuid4().hex[:8]}"
    pool = await create_pool(dsn, schema)
    try:
        await migrate(pool, schema, MIGRATIONS)
        yield pool
    finally:
        async with pool.acquire() as conn:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await pool.close()


async def backend_pid_with_machine_line(conn: asyncpg.Connection) -> int:
    """Prints the machine line; the connection's backend pid (its CPU is read from /proc)."""
    print(f"machine: {platform.machine()} cpus={os.cpu_count()} python={platform.python_version()} "
          f"postgres {await conn.fetchval('SHOW server_version')}, load average {os.getloadavg()[0]:.1f}")
    return int(await conn.fetchval("SELECT pg_backend_pid()"))


async def main() -> None:
    args, size, width = report_args(__doc__.splitlines()[0])
    async with balancing_schema() as pool:
        microgrid_id = uuid.uuid4()
        nodes = [uuid.uuid4() for _ in range(size)]
        connectors = nodes[:width]
        t0 = datetime(2030, 1, 1, tzinfo=UTC)
        async with pool.acquire() as conn:
            pid = await backend_pid_with_machine_line(conn)
            print(f"settings: {size} readings + {width} demands per report, {args.reports} reports, both paths "
                  "after each, alternating which goes first")
            async with conn.transaction():
                await read_models.save_telemetry(conn, microgrid_id, *report(nodes, connectors, t0, 0))
            part = await read_models.load_telemetry_part(conn, microgrid_id)
            cpu: dict[str, list[float]] = {"read back": [], "in memory": []}
            db: dict[str, list[float]] = {"read back": [], "in memory": []}
            for i in range(1, args.reports + 1):
                async with conn.transaction():
                    saved = await read_models.save_telemetry(
                        conn, microgrid_id, *report(nodes, connectors, t0 + timedelta(seconds=i), i))
                assert saved is not None
                results = {}
                for name in (("read back", "in memory") if i % 2 else ("in memory", "read back")):
                    start, start_db = time.process_time(), backend_cpu_s(pid)
                    if name == "read back":
                        after = await read_models.load_telemetry_part(conn, microgrid_id)
                    else:
                        after = read_models.telemetry_after(part, saved)  # type: ignore[assignment]
                    CachedTelemetry.of(after)  # the inputs derived again, as the cache does either way
                    cpu[name].append(time.process_time() - start)
                    db[name].append(backend_cpu_s(pid) - start_db)
                    results[name] = after
                assert results["read back"] == results["in memory"], "the two paths disagree"
                part = results["read back"]
        base = statistics.median(cpu["read back"]) + statistics.mean(db["read back"])
        print(f"{'path':<10} {'service CPU (median)':>21} {'backend CPU (mean)':>19} {'together':>9} "
              f"{'vs read back':>13}")
        for name in ("read back", "in memory"):
            service, backend = statistics.median(cpu[name]), statistics.mean(db[name])
            print(f"{name:<10} {service * 1000:>18.2f} ms {backend * 1000:>16.2f} ms"
                  f" {(service + backend) * 1000:>6.2f} ms {(service + backend) / base:>12.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
