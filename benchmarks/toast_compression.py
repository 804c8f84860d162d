"""What Postgres's backend spends to store a cycle's large values, compressed with pglz (Postgres's default)
or lz4 (what the services' roles now use, libs/platform/db_roles.py), as bytea, jsonb or json.

Not a test: prints figures with the machine and settings. Needs the local stack (`mgrid stack up`, then
`eval "$(./mgrid stack env)"`). Run from the repo root:

    .venv/bin/python benchmarks/toast_compression.py [--inserts 300] [--nodes 110:200]

The value is a real one: the canonical output of one balancing cycle of a depot (`domain_cycle.depot`, by
default 110 nodes above 200 connectors, the fleet benchmark's depot size), as the `cycles.output` column
(bytea) and as a JSON document: jsonb (how `cycles.result` was stored until migration 007) and json (how
it is stored since: the text as written, validated, not decomposed). Each (type, compression) pair inserts the
same value ``--inserts`` times into a table of its own, in a schema of its own (dropped at the end), and
reads the backend's CPU time (utime + stime from /proc) around them; pairs run interleaved in rounds, so a
neighbour on the shared machine slows both sides of a ratio alike. pglz is the baseline, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg  # noqa: E402

from benchmarks.domain_cycle import depot  # noqa: E402
from libs.domain.codec import to_canonical_json  # noqa: E402
from libs.domain.cycle import run_balancing_cycle  # noqa: E402

PAIRS = [("bytea", "pglz"), ("bytea", "lz4"), ("jsonb", "pglz"), ("jsonb", "lz4"), ("json", "pglz"), ("json", "lz4")]


def backend_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inserts", type=int, default=300, help="inserts per pair and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", default="110:200", help="nodes:connectors of the depot whose output is stored")
    args = parser.parse_args()
    dsn = os.environ.get("MGRID_POSTGRES_OWNER_DSN") or os.environ["MGRID_POSTGRES_DSN"]
    size, connectors = (int(x) for x in args.nodes.split(":"))
    value = to_canonical_json(run_balancing_cycle(depot(size, connectors)))
    schema = f"toast_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"; SET search_path = "{schema}"')
        for kind, method in PAIRS:
            await conn.execute(f"CREATE TABLE {kind}_{method} (v {kind} COMPRESSION {method})")
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        print(f"machine: {platform.machine()} cpus={os.cpu_count()} python={platform.python_version()} "
              f"postgres {await conn.fetchval('SHOW server_version')}, load average {os.getloadavg()[0]:.1f}")
        print(f"settings: value {len(value):,} B (canonical output of one cycle, {size} nodes + {connectors} "
              f"connectors), {args.inserts} inserts per pair and round, {args.rounds} rounds, interleaved")
        cpu: dict[tuple[str, str], list[float]] = {pair: [] for pair in PAIRS}
        wall: dict[tuple[str, str], list[float]] = {pair: [] for pair in PAIRS}
        for _ in range(args.rounds):
            for kind, method in PAIRS:
                statement = f"INSERT INTO {kind}_{method} VALUES ($1{'' if kind == 'bytea' else '::' + kind})"
                arg = value if kind == "bytea" else value.decode()
                for _ in range(20):  # warm the plan and the backend
                    await conn.execute(statement, arg)
                start_cpu, start = backend_cpu_s(pid), time.perf_counter()
                for _ in range(args.inserts):
                    await conn.execute(statement, arg)
                cpu[(kind, method)].append((backend_cpu_s(pid) - start_cpu) / args.inserts)
                wall[(kind, method)].append((time.perf_counter() - start) / args.inserts)
        print(f"{'column':<8} {'compression':<12} {'backend CPU/insert':>19} {'vs pglz':>8} {'wall/insert':>12} "
              f"{'stored':>10}")
        for kind, method in PAIRS:
            size_bytes = await conn.fetchval(f"SELECT avg(pg_column_size(v))::bigint FROM {kind}_{method}")
            base = statistics.median(cpu[(kind, "pglz")])
            mine = statistics.median(cpu[(kind, method)])
            print(f"{kind:<8} {method:<12} {mine * 1000:16.3f} ms {mine / base:7.2f}x "
                  f"{statistics.median(wall[(kind, method)]) * 1000:9.3f} ms {size_bytes:>8,} B")
        jsonb, as_json = (statistics.median(cpu[(kind, "lz4")]) for kind in ("jsonb", "json"))
        print(f"the record as json instead of jsonb (lz4): {as_json * 1000:.3f} ms vs {jsonb * 1000:.3f} ms of backend "
              f"CPU an insert ({as_json / jsonb:.2f}x)")
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
