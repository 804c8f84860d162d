"""What a cycle's stored output costs in the record layout (every record an object: the baseline, what
`cycles.output` held until the twenty-third round) and in the tabular layout (what it holds now,
`libs.domain.cycle_output`): balancing's CPU to write it and take its digest, its bytes, and what
Postgres's backend spends to store it (bytea, lz4, as `cycles.output`).

Not a test: prints figures with the machine and settings. The Postgres part needs the local stack
(`mgrid stack up`, then `eval "$(./mgrid stack env)"`; without it only the service's side is measured).
Run from the repo root:

    .venv/bin/python benchmarks/output_layout.py [--repeat 300] [--inserts 300]

The depot is the fleet benchmark's (`benchmarks/cycle_output.fleet_depot`: 311 nodes, 200 connectors, a
reading on every node, 60 % plugged in). Each round runs a new cycle per layout (a result's columns, once
made, are kept) and writes it, the two layouts in turn, alternating which goes first; the two outputs are
checked to decode to the same result. CPU time of this process, one core; the backend's from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg  # noqa: E402

from benchmarks.cycle_output import fleet_depot  # noqa: E402
from benchmarks.toast_compression import backend_cpu_s  # noqa: E402
from libs.domain import decode_cycle_output, encode_cycle_output, run_balancing_cycle  # noqa: E402

LAYOUTS = {"records": False, "tabular": True}


def written(tabular: bool, inputs) -> tuple[bytes, float]:  # noqa: ANN001
    """A new cycle's output in one layout, with its digest, and the CPU seconds that took."""
    result = run_balancing_cycle(inputs, digest="0" * 64)
    start = time.process_time()
    output = encode_cycle_output(result, tabular=tabular)
    hashlib.sha256(output).hexdigest()
    return output, time.process_time() - start


async def stored(outputs: dict[str, bytes], inserts: int) -> dict[str, tuple[float, int]] | None:
    """Backend CPU an insert and the stored size of each layout's bytes, or None without a stack."""
    dsn = os.environ.get("MGRID_POSTGRES_OWNER_DSN") or os.environ.get("MGRID_POSTGRES_DSN")
    if not dsn:
        return None
    schema = f"output_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"; SET search_path = "{schema}"')
        for name in outputs:
            await conn.execute(f"CREATE TABLE {name} (v bytea COMPRESSION lz4)")
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        cpu: dict[str, list[float]] = {name: [] for name in outputs}
        for round_ in range(4):
            for name in (list(outputs) if round_ % 2 else list(reversed(outputs))):
                statement = f"INSERT INTO {name} VALUES ($1)"
                for _ in range(10):  # warm the plan and the backend
                    await conn.execute(statement, outputs[name])
                start = backend_cpu_s(pid)
                for _ in range(inserts):
                    await conn.execute(statement, outputs[name])
                cpu[name].append((backend_cpu_s(pid) - start) / inserts)
        return {
            name: (statistics.median(cpu[name]),
                   int(await conn.fetchval(f"SELECT avg(pg_column_size(v))::bigint FROM {name}")))
            for name in outputs
        }
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--inserts", type=int, default=300, help="inserts per layout and round (Postgres)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    inputs = fleet_depot()
    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}; "
          f"python {platform.python_version()}; load {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"depot: {len(inputs.nodes)} nodes, {len(inputs.connector_demands)} of 200 connectors plugged in; "
          f"{args.repeat} rounds, one core, the layouts in turn")
    times: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    outputs: dict[str, bytes] = {}
    for i in range(args.repeat):
        for name in (list(LAYOUTS) if i % 2 else list(reversed(LAYOUTS))):
            outputs[name], seconds = written(LAYOUTS[name], inputs)
            times[name].append(seconds)
        if i == 0 and decode_cycle_output(outputs["records"]) != decode_cycle_output(outputs["tabular"]):
            raise SystemExit("the two layouts hold different results")
    base = statistics.median(times["records"])
    backend = asyncio.run(stored(outputs, args.inserts))
    print(f"{'layout':<8} {'write + sha256 (median)':>24} {'vs records':>11} {'bytes':>9}"
          + (f" {'backend CPU/insert':>19} {'stored (lz4)':>13}" if backend else ""))
    for name in LAYOUTS:
        mine = statistics.median(times[name])
        line = f"{name:<8} {mine * 1000:>21.3f} ms {mine / base:>10.2f}x {len(outputs[name]):>9,}"
        if backend:
            line += f" {backend[name][0] * 1000:>16.3f} ms {backend[name][1]:>11,} B"
        print(line)


if __name__ == "__main__":
    main()
