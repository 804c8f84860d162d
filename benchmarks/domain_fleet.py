"""The domain cycle's cost per depot when a process balances a fleet, its depots visited in turn.

Not a test: prints figures with the machine and settings. Run from the repo root:

    .venv/bin/python benchmarks/domain_fleet.py [--fleets 1 30 60 300] [--rounds 5] [--depot 311:200]

A scheduler triggers every depot of a fleet once per control period, so one balancing process runs the
cycles of many microgrids in turn. The domain remembers per microgrid what unchanged inputs give again
(the compiled topology, the resolved baseline limits: `libs/domain/memo.py`); a memo smaller than the
fleet misses on every cycle, because the least recently used depot is always the next one due. This
prints the median CPU time of one cycle (`run_balancing_cycle`, digest passed in, as the service runs
it) per fleet size, each depot its own microgrid with the fleet benchmark's shape (311 nodes, 200
connectors: `benchmarks/fleet.py`), next to the baseline measured in the same run: one depot cycled alone
(fleet 1), which always hits. One core, the services' collector threshold.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from domain_cycle import depot  # noqa: E402

from contracts.enums import CycleOutcome  # noqa: E402
from libs.domain.cycle import run_balancing_cycle  # noqa: E402
from libs.domain.cycle_inputs import CycleInputs  # noqa: E402
from libs.domain.memo import ENTRIES_KEPT, NODES_KEPT  # noqa: E402
from libs.platform.allocator import keep_freed_memory  # noqa: E402
from libs.platform.settings import PlatformSettings  # noqa: E402


def fleet_of(template: CycleInputs, size: int) -> list[CycleInputs]:
    """``size`` depots of the template's shape, each its own microgrid (its own memo entries)."""
    fleet = []
    for i in range(size):
        microgrid_id = f"{i:08x}-0000-4000-8000-000000000000"
        fleet.append(
            replace(
                template,
                microgrid=replace(template.microgrid, microgrid_id=microgrid_id),
                nodes=tuple(replace(x, microgrid_id=microgrid_id) for x in template.nodes),
                node_limits=tuple(replace(x, microgrid_id=microgrid_id) for x in template.node_limits),
            )
        )
    return fleet


CYCLES_PER_ROUND = 300


def per_cycle_ms(fleet: list[CycleInputs], rounds: int) -> float:
    """Median over ``rounds`` of the CPU time per cycle, each round passing over the fleet in turn (~300
    cycles), after one warm pass."""
    for inputs in fleet:
        outcome = run_balancing_cycle(inputs, digest="0" * 64).outcome
        if outcome is CycleOutcome.REJECTED:  # a depot the engine refuses would time the refusal
            raise SystemExit(f"a depot of the fleet was rejected: {outcome}")
    passes = max(1, CYCLES_PER_ROUND // len(fleet))  # every round times as many cycles, whatever the fleet
    samples = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(passes):
            for inputs in fleet:
                run_balancing_cycle(inputs, digest="0" * 64)
        samples.append((time.process_time() - started) / (passes * len(fleet)) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fleets", nargs="*", type=int, default=[1, 30, 60, 300], help="fleet sizes (depots)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--depot", default="311:200", help="nodes:connectors of each depot")
    args = parser.parse_args()
    # As the services run (libs.platform.runtime.tune_collector).
    gc.set_threshold(PlatformSettings.model_fields["gc_gen0_threshold"].default, *gc.get_threshold()[1:])
    keep_freed_memory(PlatformSettings.model_fields["malloc_keep_bytes"].default)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    nodes, connectors = (int(x) for x in args.depot.split(":"))
    template = depot(nodes, connectors)
    print(
        f"machine: {platform.machine()} cpus={os.cpu_count()} python={platform.python_version()} "
        f"{platform.platform()}, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"settings: depot {nodes} nodes / {connectors} connectors ({len(template.nodes)} records), "
        f"{args.rounds} rounds (median CPU time), one core; memos keep {NODES_KEPT:,} nodes, "
        f"{ENTRIES_KEPT:,} microgrids"
    )
    baseline = per_cycle_ms(fleet_of(template, 1), args.rounds)
    print(f"baseline (one depot alone): {baseline:.3f} ms/cycle")
    for size in args.fleets:
        cost = per_cycle_ms(fleet_of(template, size), args.rounds)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"fleet {size:>5} depots in turn: {cost:.3f} ms/cycle ({cost / baseline:.2f}x the baseline), "
            f"process max RSS {rss:,.0f} MB (the fleet's inputs included)"
        )


if __name__ == "__main__":
    main()
