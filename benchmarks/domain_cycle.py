"""Balancing-cycle timings on depot-shaped trees, and the speed ratio against the LP reference.

Not a test: prints figures with the machine and settings. Run from the repo root:

    .venv/bin/python benchmarks/domain_cycle.py [--repeat 15] [--lp-max-nodes 100]

Trees: grid connections (one per ~2,500 nodes) -> circuits (~10 charge points each) -> charge
points -> 2 connectors each. Caps on every grid connection (about 40% of what is requested below
it), circuit and charge point, plus an aggregate cap; fresh telemetry on grid connections,
circuits and connectors; every connector requests 7-22 kW, half with a 4.2 kW minimum. Everything
is derived from a fixed seed, so runs are comparable.

Figures: the whole `run_balancing_cycle` (topology check, demand, constraints, breaches,
allocation, result records and the sha256 inputs digest) and its parts, median of the repeats,
one process on one core. The LP reference (`tests/unit/domain/lp_reference.py`, HiGHS, repeated
LPs for lexicographic max-min) solves the same allocation problem where that is feasible in time.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts.enums import AssetType, ConstraintType, LimitSourceType, NodeType  # noqa: E402
from libs.domain.allocation import allocate  # noqa: E402
from libs.domain.codec import inputs_digest, to_canonical_json  # noqa: E402
from libs.domain.cycle import allocation_problem, run_balancing_cycle  # noqa: E402
from libs.domain.cycle_inputs import ConnectorDemand, CycleInputs  # noqa: E402
from libs.domain.demand import TelemetryReading  # noqa: E402
from libs.domain.limits import AggregateCap, NodeLimit  # noqa: E402
from libs.domain.physical_view import PhysicalView  # noqa: E402
from libs.domain.topology import Microgrid, MicrogridNode, TopologyIndex  # noqa: E402

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MG = "mg-bench"


def depot(size: int, seed: int = 7) -> CycleInputs:
    rng = random.Random(seed)
    nodes: list[MicrogridNode] = []
    limits: list[NodeLimit] = []
    telemetry: list[TelemetryReading] = []
    demands: list[ConnectorDemand] = []

    def add(node_id: str, parent: str | None, kind: NodeType, asset: str | None = None) -> str:
        nodes.append(MicrogridNode(node_id, MG, parent, node_id, kind, AssetType.CIRCUIT if asset else None, asset))
        return node_id

    def cap(node_id: str, watts: int) -> None:
        limits.append(
            NodeLimit(f"nl-{node_id}", MG, node_id, ConstraintType.CONSUMPTION_CAP, watts, LimitSourceType.MANUAL)
        )

    gc_count = max(1, size // 2500)
    gcs = [add(f"gc{g:02d}", None, NodeType.GRID_CONNECTION, f"feeder-{g}") for g in range(gc_count)]
    circuit_no = cp_no = 0
    circuit = None
    while len(nodes) < size:
        if circuit is None or cp_no >= 10 * circuit_no:
            circuit = add(f"c{circuit_no:05d}", gcs[circuit_no % gc_count], NodeType.CIRCUIT)
            circuit_no += 1
            cap(circuit, 150_000)
            telemetry.append(TelemetryReading(circuit, NOW - timedelta(seconds=5), rng.randint(0, 20_000)))
            continue
        cp = add(f"cp{cp_no:05d}", circuit, NodeType.CHARGE_POINT)
        cp_no += 1
        cap(cp, 30_000)
        for k in range(2):
            if len(nodes) >= size:
                break
            con = add(f"{cp}-k{k}", cp, NodeType.CONNECTOR)
            demands.append(ConnectorDemand(con, rng.randint(7_000, 22_000), 4_200 if rng.random() < 0.5 else 0))
            telemetry.append(TelemetryReading(con, NOW - timedelta(seconds=2), rng.randint(0, 7_000)))
    requested = sum(d.requested_watts for d in demands)
    for gc in gcs:
        cap(gc, max(10_000, int(requested * 0.4 / gc_count)))
        telemetry.append(TelemetryReading(gc, NOW - timedelta(seconds=1), requested // 3 // gc_count))
    return CycleInputs(
        cycle_id=f"bench-{size}",
        microgrid=Microgrid(MG, "depot-bench", 1),
        nodes=tuple(nodes),
        now=NOW,
        node_limits=tuple(limits),
        aggregate_caps=(AggregateCap("cp-lb", int(requested * 0.35)),),
        telemetry=tuple(telemetry),
        connector_demands=tuple(demands),
    )


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds over ``repeat`` runs (after one warm-up)."""
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:9.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--lp-max-nodes", type=int, default=100, help="largest tree the LP reference is run on")
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 100, 250, 1_000, 10_000])
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the targets are stated
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
        f"python={platform.python_version()} {platform.platform()}"
    )
    print(f"settings: repeat={args.repeat} (median), pinned to one core, lp-max-nodes={args.lp_max_nodes}")
    print(
        f"{'nodes':>6} {'conns':>6} {'cycle ms':>9} {'no-digest':>9} {'digest':>9} {'allocate':>9} "
        f"{'result json':>11} {'LP ms':>10} {'LP/alloc':>9}"
    )
    for size in args.sizes:
        inputs = depot(size)
        index = TopologyIndex(inputs.microgrid, inputs.nodes)
        view = PhysicalView(inputs, index, index.position.keys())
        problem = allocation_problem(view, 0, len(index.order))
        headroom = problem.headroom
        result = run_balancing_cycle(inputs)
        cycle = timed(lambda: run_balancing_cycle(inputs), args.repeat)  # noqa: B023
        digest = timed(lambda: inputs_digest(inputs), args.repeat)  # noqa: B023
        known = inputs_digest(inputs)
        given_digest = timed(lambda: run_balancing_cycle(inputs, digest=known), args.repeat)  # noqa: B023
        alloc = timed(
            lambda: allocate(problem.parent, problem.subtree_end, headroom, problem.requests),  # noqa: B023
            args.repeat,
        )
        as_json = timed(lambda: to_canonical_json(result), max(3, args.repeat // 3))  # noqa: B023
        lp_text, ratio_text = f"{'-':>10}", f"{'-':>9}"
        if size <= args.lp_max_nodes:
            from tests.unit.domain.lp_reference import lp_max_min

            outcome = allocate(problem.parent, problem.subtree_end, headroom, problem.requests)
            spec = [
                (
                    r.node,
                    r.min_watts if s.value in ("ALLOCATED", "CURTAILED") else 0,
                    r.requested_watts if s.value in ("ALLOCATED", "CURTAILED") else 0,
                    r.weight,
                )
                for r, s in zip(problem.requests, outcome.states, strict=True)
            ]
            lp = timed(lambda: lp_max_min(problem.parent, problem.subtree_end, headroom, spec), 1)  # noqa: B023
            reference = lp_max_min(problem.parent, problem.subtree_end, headroom, spec)
            worst = max((abs(a - b) for a, b in zip(outcome.watts, reference, strict=True)), default=0)
            lp_text, ratio_text = ms(lp) + " ", f"{lp / alloc:8.0f}x"
            ratio_text += f" (max |diff| {worst:.2f} W)"
        print(
            f"{size:>6} {len(problem.requests):>6} {ms(cycle)} {ms(given_digest)} {ms(digest)} {ms(alloc)} "
            f"{ms(as_json):>11} {lp_text}{ratio_text}"
        )
    print("cycle = run_balancing_cycle incl. the inputs digest; no-digest = the same with the digest passed in")
    print("(as a service that already serialised the inputs for its audit does); allocate = water-filling only;")
    print("result json = to_canonical_json(result) (not part of the cycle); LP = lexicographic max-min by HiGHS.")


if __name__ == "__main__":
    main()
