"""Balancing-cycle timings on depot-shaped trees, against a naive water-fill of the same instance.

Not a test: prints figures with the machine and settings. Run from the repo root:

    .venv/bin/python benchmarks/domain_cycle.py [--repeat 15] [--sizes 250 10000] [--lp-max-nodes 100]

Trees: grid connections (one per ~2,500 nodes) -> circuits (~10 charge points each) -> charge
points -> connectors (the 250-node depot has 800, the 10,000-node tree 30,000). Caps on every grid
connection (about 40% of what is requested below
it), circuit and charge point, plus an aggregate cap; fresh telemetry on grid connections,
circuits and connectors; every connector requests 7-22 kW, half with a 4.2 kW minimum. Everything
is derived from a fixed seed, so runs are comparable.

Figures, median of the rounds (each round runs every column in turn, once to warm up and once timed), one
process pinned to one core, the cycle collector's young-generation threshold and the freed memory the
allocator keeps as the services set them (`--malloc-keep-bytes 0`: glibc's defaults):

- water-fill: the baseline, measured in the same run: a naive pure-Python hierarchical water-fill of
  the cycle's allocation problem (equal weights, no minimums or priorities, float levels): for each
  capped node bottom-up whose requests exceed its cap, sort the levels below it and clamp them;
- allocate: the engine's allocator alone on the same problem;
- demand: the cycle's demand resolution alone (`PhysicalView`: effective constraints, then one walk
  over every node and connector record of the inputs). It is a floor under the whole cycle: it reads
  every input record, which the water-fill (given the problem ready-made) never does;
- cycle: the whole `run_balancing_cycle` (topology check, demand, constraints, breaches,
  allocation, reason codes, result records) with the inputs digest passed in, as the balancing
  service does (it hashes the one serialisation of the inputs it stores anyway);
- +digest: the same, computing the digest from the inputs itself (what a caller without the
  serialisation pays; each input record's canonical text is kept from its first encoding, so this
  is the cost for records already seen: sorting, joining and hashing their texts);
- +output: the cycle and the canonical JSON of its result, as the balancing service writes it on
  every cycle (the per-node, breach and constraint JSON is written straight from the cycle's columns
  and kept texts, without building the records);
- ratios are against the water-fill; targets (issue 12): cycle <= 1.5x, <= 1 ms at 250 nodes,
  <= 25 ms at 10,000 nodes.

The LP reference (`tests/unit/domain/lp_reference.py`, HiGHS, repeated LPs for lexicographic
max-min) solves the same allocation problem where that is feasible in time.
"""

from __future__ import annotations

import argparse
import gc
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
from libs.domain.gc_pause import collector_paused  # noqa: E402
from libs.domain.limits import AggregateCap, NodeLimit  # noqa: E402
from libs.domain.physical_view import PhysicalView  # noqa: E402
from libs.domain.topology import Microgrid, MicrogridNode, TopologyIndex  # noqa: E402
from libs.platform.allocator import keep_freed_memory  # noqa: E402
from libs.platform.settings import PlatformSettings  # noqa: E402

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MG = "mg-bench"


def depot(size: int, connectors: int, seed: int = 7) -> CycleInputs:
    """``size`` nodes above the connectors (grid connections, circuits, charge points), and
    ``connectors`` connectors shared as evenly as possible among the charge points."""
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
    circuit_no = 0
    points: list[str] = []
    circuit = None
    while len(nodes) < size:
        if circuit is None or len(points) >= 10 * circuit_no:
            circuit = add(f"c{circuit_no:05d}", gcs[circuit_no % gc_count], NodeType.CIRCUIT)
            circuit_no += 1
            cap(circuit, 150_000)
            telemetry.append(TelemetryReading(circuit, NOW - timedelta(seconds=5), rng.randint(0, 20_000)))
            continue
        cp = add(f"cp{len(points):05d}", circuit, NodeType.CHARGE_POINT)
        points.append(cp)
        cap(cp, 30_000)
    for c in range(connectors):
        cp = points[c * len(points) // connectors]
        con = add(f"{cp}-k{c}", cp, NodeType.CONNECTOR)
        demands.append(ConnectorDemand(con, rng.randint(7_000, 22_000), 4_200 if rng.random() < 0.5 else 0))
        telemetry.append(TelemetryReading(con, NOW - timedelta(seconds=2), rng.randint(0, 7_000)))
    requested = sum(d.requested_watts for d in demands)
    for grid_connection in gcs:
        cap(grid_connection, max(10_000, int(requested * 0.4 / gc_count)))
        telemetry.append(TelemetryReading(grid_connection, NOW - timedelta(seconds=1), requested // 3 // gc_count))
    return CycleInputs(
        cycle_id=f"bench-{size}-{connectors}",
        microgrid=Microgrid(MG, "depot-bench", 1),
        nodes=tuple(nodes),
        now=NOW,
        node_limits=tuple(limits),
        aggregate_caps=(AggregateCap("cp-lb", int(requested * 0.35)),),
        telemetry=tuple(telemetry),
        connector_demands=tuple(demands),
    )


def water_fill(parent: list[int], subtree_end: list[int], headroom: list[int | None], requests: list) -> list[float]:
    """Naive hierarchical water-fill (the reference): every request rises together; a capped node
    whose subtree asks more than its cap clamps the levels below it to the one that fills it."""
    n = len(parent)
    k = len(requests)
    order = sorted(range(k), key=lambda r: requests[r].node)
    nodes = [requests[r].node for r in order]
    level = [float(requests[r].requested_watts) for r in order]
    first = [0] * (n + 1)
    for node in nodes:
        first[node + 1] += 1
    for i in range(n):
        first[i + 1] += first[i]
    asked = [0.0] * n
    for node, lv in zip(nodes, level, strict=True):
        asked[node] += lv
    for i in range(n - 1, -1, -1):
        cap = headroom[i]
        if cap is not None and asked[i] > cap:
            lo, hi = first[i], first[subtree_end[i]]
            tops = sorted(level[lo:hi])
            budget, left, lam = max(0.0, float(cap)), len(tops), 0.0
            for t in tops:
                if t * left > budget:
                    lam = budget / left
                    break
                budget -= t
                left -= 1
            for j in range(lo, hi):
                if level[j] > lam:
                    level[j] = lam
            asked[i] = float(max(0, cap))
        if parent[i] >= 0:
            asked[parent[i]] += asked[i]
    out = [0.0] * k
    for r, lv in zip(order, level, strict=True):
        out[r] = lv
    return out


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median CPU seconds of this process over ``repeat`` runs (after one warm-up): CPU time, not wall
    time, so other processes sharing the core do not count."""
    return statistics.median(interleaved({"": fn}, repeat)[""])


def interleaved(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    """CPU seconds of each function over ``repeat`` rounds. A round runs each function in turn, twice:
    once to warm the caches and the allocator for it (what ran before it leaves them cold), once timed.
    Taken in turn, so a ratio of two of them is formed within a round: a neighbour slowing the shared
    machine for a while slows both sides of it alike."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            fn()
            start = time.process_time()
            fn()
            samples[name].append(time.process_time() - start)
    return samples


def median_ratio(samples: dict[str, list[float]], name: str, reference: str) -> float:
    """The median over rounds of one function's time over the reference's in the same round."""
    return statistics.median(a / b for a, b in zip(samples[name], samples[reference], strict=True))


def paused_view(inputs: CycleInputs, index: TopologyIndex) -> PhysicalView:
    """Demand resolution alone, with the collector paused as the cycle pauses it."""
    with collector_paused():
        return PhysicalView(inputs, index, None)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:9.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--lp-max-nodes", type=int, default=100, help="largest tree the LP reference is run on")
    parser.add_argument(
        "--sizes", nargs="*", default=["250:800", "10000:30000"], help="nodes:connectors (nodes above the connectors)"
    )
    parser.add_argument(
        "--gc-threshold",
        type=int,
        default=PlatformSettings.model_fields["gc_gen0_threshold"].default,
        help="young-generation threshold of the cycle collector (default: the services' gc_gen0_threshold; "
        "700 is CPython's own)",
    )
    parser.add_argument(
        "--malloc-keep-bytes",
        type=int,
        default=PlatformSettings.model_fields["malloc_keep_bytes"].default,
        help="freed memory the allocator keeps (default: the services' malloc_keep_bytes; 0 is glibc's own)",
    )
    args = parser.parse_args()
    # As the services run (libs.platform.runtime.tune_collector); both sides of every ratio run under it.
    gc.set_threshold(args.gc_threshold, *gc.get_threshold()[1:])
    kept = keep_freed_memory(args.malloc_keep_bytes)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the targets are stated
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
        f"python={platform.python_version()} {platform.platform()}"
    )
    print(
        f"settings: repeat={args.repeat} rounds (median CPU time, columns interleaved), pinned to one core, "
        f"lp-max-nodes={args.lp_max_nodes}, collector young-generation threshold {gc.get_threshold()[0]:,}, "
        f"freed memory kept {f'{args.malloc_keep_bytes:,} bytes' if kept else 'as glibc defaults'}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'nodes':>6} {'conns':>6} {'water-fill':>10} {'allocate':>9} {'ratio':>6} {'demand':>9} {'ratio':>6} "
        f"{'cycle':>9} {'ratio':>6} "
        f"{'+digest':>9} {'digest':>9} {'+output':>9} {'ratio':>6} {'LP ms':>10} {'LP/alloc':>9}"
    )
    for spec_text in args.sizes:
        size, connectors = (int(x) for x in spec_text.split(":"))
        inputs = depot(size, connectors)
        index = TopologyIndex(inputs.microgrid, inputs.nodes)
        view = PhysicalView(inputs, index, None)
        problem = allocation_problem(view, 0, len(index.order))
        headroom = problem.headroom
        requests = problem.requests  # built once: the water-fill and the allocator are timed, not this
        known = inputs_digest(inputs)

        # Two groups, each with the water-fill: the serialising columns allocate hundreds of MB at the
        # large size, and kept apart they leave the cycle's group (and its ratio) untouched by that.
        def fill_once() -> object:
            return water_fill(problem.parent, problem.subtree_end, headroom, requests)  # noqa: B023

        samples = interleaved(
            {
                "fill": fill_once,
                "alloc": lambda: allocate(problem.parent, problem.subtree_end, headroom, requests),  # noqa: B023
                "demand": lambda: paused_view(inputs, index),  # noqa: B023
                "cycle": lambda: run_balancing_cycle(inputs, digest=known),  # noqa: B023
            },
            args.repeat,
        )
        serialising = interleaved(
            {
                "fill": fill_once,
                "with_digest": lambda: run_balancing_cycle(inputs),  # noqa: B023
                "digest": lambda: inputs_digest(inputs),  # noqa: B023
                "output": lambda: to_canonical_json(run_balancing_cycle(inputs, digest=known)),  # noqa: B023
            },
            args.repeat,
        )
        fill, alloc, demand, cycle = (statistics.median(samples[name]) for name in ("fill", "alloc", "demand", "cycle"))
        with_digest, digest, output = (
            statistics.median(serialising[name]) for name in ("with_digest", "digest", "output")
        )
        alloc_ratio, demand_ratio, cycle_ratio = (
            median_ratio(samples, name, "fill") for name in ("alloc", "demand", "cycle")
        )
        output_ratio = median_ratio(serialising, "output", "fill")
        lp_text, ratio_text = f"{'-':>10}", f"{'-':>9}"
        if size <= args.lp_max_nodes:
            from tests.unit.domain.lp_reference import lp_max_min

            outcome = allocate(problem.parent, problem.subtree_end, headroom, requests)
            spec = [
                (
                    r.node,
                    r.min_watts if s.value in ("ALLOCATED", "CURTAILED") else 0,
                    r.requested_watts if s.value in ("ALLOCATED", "CURTAILED") else 0,
                    r.weight,
                )
                for r, s in zip(requests, outcome.states, strict=True)
            ]
            lp = timed(lambda: lp_max_min(problem.parent, problem.subtree_end, headroom, spec), 1)  # noqa: B023
            reference = lp_max_min(problem.parent, problem.subtree_end, headroom, spec)
            worst = max((abs(a - b) for a, b in zip(outcome.watts, reference, strict=True)), default=0)
            lp_text, ratio_text = ms(lp) + " ", f"{lp / alloc:8.0f}x"
            ratio_text += f" (max |diff| {worst:.2f} W)"
        print(
            f"{size:>6} {connectors:>6} {ms(fill):>10} {ms(alloc)} {alloc_ratio:5.2f}x {ms(demand)} "
            f"{demand_ratio:5.2f}x {ms(cycle)} {cycle_ratio:5.2f}x {ms(with_digest)} {ms(digest)} {ms(output)} "
            f"{output_ratio:5.2f}x "
            f"{lp_text}{ratio_text}"
        )
    print("times in ms (median CPU time); ratio = median over rounds of the time over the water-fill's in the")
    print("same round (each round runs every column in turn, once to warm up and once timed, on the same instance).")
    print("cycle = run_balancing_cycle with the caller's inputs digest (the service path); +digest = computing")
    print("it from the inputs; digest = inputs_digest alone; +output = cycle and to_canonical_json of its result;")
    print("LP = lexicographic max-min by HiGHS.")


if __name__ == "__main__":
    main()
