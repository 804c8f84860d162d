"""What balancing spends on a cycle's demand resolutions after the domain cycle: the stored output's JSON
and the `microgrid.demand_resolved` payload, written from records (the baseline, what the service did until
the twentieth round) or from the cycle's resolution columns (what it does now).

Not a test: prints figures with the machine and settings. Run from the repo root:

    .venv/bin/python benchmarks/cycle_output.py [--repeat 200]

The depot has the fleet benchmark's shape (`benchmarks/fleet.py`, mixed demand): 311 nodes, 200 connectors,
a fresh reading on every node, and 60 % of the connectors plugged in, so the other 80 are uncontrolled load
with a reading: ~110 demand resolutions a cycle, most of them fresh scopes. Each round runs a new cycle
(a result's records, once made, are kept), then, in turn:

- records (baseline): the resolution records made, the result encoded (`to_canonical_json`, each record
  through the codec's dataclass hook), the payload document read from the records and encoded;
- columns: the same two, both written from the resolution columns, no record made.

The two outputs are checked equal, byte for byte, on every round. CPU time of this process, one core, the
services' collector threshold; the ratio is taken within each round.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import platform
import random
import statistics
import sys
import time
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from domain_cycle import depot  # noqa: E402

from contracts.base import encode_json  # noqa: E402
from contracts.enums import SourceMode  # noqa: E402
from libs.domain.codec import to_canonical_json, to_jsonable  # noqa: E402
from libs.domain.cycle import run_balancing_cycle  # noqa: E402
from libs.domain.cycle_inputs import CycleInputs  # noqa: E402
from libs.domain.cycle_result import CycleResult  # noqa: E402
from libs.domain.demand import TelemetryReading  # noqa: E402
from libs.platform.settings import PlatformSettings  # noqa: E402
from services.balancing.cycle_records import demand_resolved_document  # noqa: E402


def fleet_depot(plugged_in: float = 0.6, seed: int = 3) -> CycleInputs:
    """The fleet benchmark's depot: every node reports, and only some connectors ask for power."""
    inputs = depot(111, 200)
    rng = random.Random(seed)
    reporting = {t.node_id for t in inputs.telemetry}
    more = tuple(
        TelemetryReading(n.node_id, inputs.now - timedelta(seconds=3), rng.randint(0, 9_000))
        for n in inputs.nodes
        if n.node_id not in reporting
    )
    demands = tuple(d for d in inputs.connector_demands if rng.random() < plugged_in)
    return dataclasses.replace(inputs, telemetry=inputs.telemetry + more, connector_demands=demands)


def from_records(result: CycleResult) -> tuple[bytes, bytes]:
    """The baseline: a record made per scope, the result encoded with them, the payload read from them."""
    result = dataclasses.replace(result, demand_resolutions=tuple(result.demand_resolutions))
    return to_canonical_json(result), encode_json(document_from_records(result))


def document_from_records(result: CycleResult) -> dict[str, Any]:
    """`demand_resolved_document` as it was before the twentieth round: read from the records."""
    used = [
        {
            "node_id": r.node_id or None,
            "source_mode": r.source_mode,
            "effective_demand_watts": r.effective_demand_watts,
            "measured_demand_watts": r.measured_watts,
            "observed_at": r.observed_at.astimezone(UTC) if r.observed_at is not None else None,
            "freshness_threshold_seconds": r.freshness_threshold_seconds,
            "fallback_inputs": {
                "role": r.role.value,
                "telemetry_state": r.telemetry_state.value,
                "age_seconds": r.age_seconds,
                "fallback_basis": r.fallback_basis.value if r.fallback_basis else None,
                "fallback_rule": to_jsonable(r.fallback_rule),
                "fail_safe_limit_watts": r.fail_safe_limit_watts,
            },
        }
        for r in result.demand_resolutions
    ]
    fallback = any(r.source_mode is SourceMode.FALLBACK_DERIVED for r in result.demand_resolutions)
    return {
        "microgrid_id": result.microgrid_id,
        "cycle_id": result.cycle_id,
        "source_mode": SourceMode.FALLBACK_DERIVED if fallback else SourceMode.MEASURED,
        "inputs_used": used,
    }


def from_columns(result: CycleResult) -> tuple[bytes, bytes]:
    return to_canonical_json(result), encode_json(demand_resolved_document(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    gc.set_threshold(PlatformSettings.model_fields["gc_gen0_threshold"].default, *gc.get_threshold()[1:])
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    inputs = fleet_depot()
    sample = run_balancing_cycle(inputs, digest="0" * 64)
    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}; "
          f"python {platform.python_version()}; load {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"depot: {len(inputs.nodes)} nodes, {len(inputs.connector_demands)} of 200 connectors plugged in, "
          f"{len(inputs.telemetry)} readings; {len(sample.demand_resolutions)} demand resolutions a cycle; "
          f"{args.repeat} rounds, one core")
    times: dict[str, list[float]] = {"records": [], "columns": []}
    for _ in range(args.repeat):
        outputs = []
        for name, write in (("records", from_records), ("columns", from_columns)):
            result = run_balancing_cycle(inputs, digest="0" * 64)
            start = time.process_time()
            outputs.append(write(result))
            times[name].append(time.process_time() - start)
        if outputs[0] != outputs[1]:
            raise SystemExit("the two writers disagree")
    base, new = (statistics.median(times[k]) * 1000 for k in ("records", "columns"))
    ratio = statistics.median(c / r for r, c in zip(times["records"], times["columns"], strict=True))
    print(f"output + demand_resolved payload, median ms a cycle: records (baseline) {base:.3f}, "
          f"columns {new:.3f} ({ratio:.2f}x)")


if __name__ == "__main__":
    main()
