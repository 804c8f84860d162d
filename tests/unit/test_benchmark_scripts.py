"""The benchmark scripts are not run by the suite (they print figures), but they must keep importing:
a refactor that breaks them should fail here, not the next time someone measures. The fleet benchmark's
accounting (what counts as lost, duplicated, its summary line) and its seeding are checked without a stack."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import socket
import sys
from pathlib import Path

import pytest

from benchmarks import fleet
from benchmarks.fleet_support import probes
from benchmarks.fleet_support.depots import (
    FLEET_LAYOUT,
    MIXED_REQUEST_WATTS,
    FleetDepot,
    setup_scenario,
    with_demand,
)
from contracts.enums import NodeType
from contracts.events import TelemetryReported
from simulator.actors import telemetry
from simulator.runner import ScenarioRun
from simulator.scenario import TelemetryAction
from simulator.transport import DryRunTransport

BENCHMARKS = sorted((Path(__file__).resolve().parents[2] / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("script", BENCHMARKS, ids=[p.stem for p in BENCHMARKS])
def test_benchmark_script_imports(script: Path) -> None:
    spec = importlib.util.spec_from_file_location(f"benchmark_{script.stem}", script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve a module's annotations through sys.modules
    spec.loader.exec_module(module)
    assert callable(getattr(module, "main", None))


# ---- benchmarks/fleet.py: the parts that decide its figures, without a stack ----------------------------

SUMMARY = re.compile(
    r"^fleet: depots=\d+ period_s=\S+ cycles_per_s=\d+\.\d p50_ms=\d+ p99_ms=\d+ lost=\d+ duplicated=\d+ "
    r"bare_hop_msgs_per_s=\d+$"
)


def test_fleet_depot_is_the_size_the_issue_names() -> None:
    nodes = FLEET_LAYOUT.nodes()
    assert len(nodes) == 311
    assert len(FLEET_LAYOUT.connectors()) == 200
    # One feeder circuit: a circuit-keyed trigger rebalances the whole depot.
    assert [n.name for n in FLEET_LAYOUT.managed_grid_connections()] == ["Feeder"]
    assert {p.node.type for p in nodes} == {NodeType.GRID_CONNECTION, NodeType.CIRCUIT, NodeType.CHARGE_POINT,
                                            NodeType.CONNECTOR}


def _dry_depot() -> FleetDepot:
    """The depot seeded through the simulator's runner on its dry-run transport (nothing is sent)."""
    run = ScenarioRun(setup_scenario(), DryRunTransport(), seed=3)
    result = asyncio.run(run.play())
    assert result.error is None, result.error
    template = telemetry.tick(run.state, run.chargers, run.clock, run.rng, TelemetryAction(),
                              correlation_id="t").message
    assert isinstance(template, TelemetryReported)
    return FleetDepot(0, run, template)


@pytest.mark.parametrize(("via", "topic"), [
    ("legacy_event", "load_balancer.rebalance_requested"),
    ("scheduler_circuit", "scheduler.rebalance_periodic"),
    ("scheduler_microgrid", "scheduler.rebalance_periodic"),
])
def test_each_trigger_carries_its_own_correlation_id(via: str, topic: str) -> None:
    depot = _dry_depot()
    first, second = depot.trigger(via, "c-1", "job"), depot.trigger(via, "c-2", "job")
    assert first.topic == second.topic == topic
    assert (first.message.correlation_id, second.message.correlation_id) == ("c-1", "c-2")
    assert first.message.event_id != second.message.event_id


def test_telemetry_is_restamped_not_rebuilt() -> None:
    depot = _dry_depot()
    again = depot.telemetry("tm-1").message
    assert isinstance(again, TelemetryReported)
    assert len(again.payload.demands) == 200
    assert {d.node_id for d in again.payload.demands} == {d.node_id for d in depot.telemetry_template.payload.demands}
    assert all(r.observed_at == again.occurred_at for r in again.payload.readings)


def _completed(correlation: str, cycle_id: str, request_key: str | None = None, breaches: int = 0) -> bytes:
    return json.dumps({"correlation_id": correlation, "payload": {
        "cycle_id": cycle_id, "outcome": "COMPLETED", "breaches": [{}] * breaches,
        "audit": {"correlation_id": correlation, "request_key": request_key}}}).encode()


def test_ledger_counts_lost_duplicated_and_redelivered_apart() -> None:
    ledger = fleet.CycleLedger()
    triggers = [fleet.Trigger(f"t{i}", 0, planned=float(i), measured=True) for i in range(4)]
    triggers[3].request_key = "legacy-event:abc"
    for t in triggers:
        ledger.expect(t)
    ledger.note(_completed("t0", "c0", breaches=2), 0.1)
    ledger.note(_completed("t0", "c0", breaches=2), 0.2)  # the same cycle read twice
    ledger.note(_completed("t1", "c1"), 1.3)
    ledger.note(_completed("t1", "c1b"), 1.4)  # a second cycle for one trigger
    ledger.note(_completed("someone-else", "c3", "legacy-event:abc"), 3.05)  # matched by request key
    ledger.note(_completed("not-ours", "cx"), 9.0)
    result = fleet.FleetResult(fleet.FleetOptions(depots=1), triggers, ledger.arrivals, window_s=2.0,
                               completed_in_window=3, max_send_delay_ms=0, max_lag={}, seeding_s=0,
                               redelivered=ledger.redelivered, breaches=ledger.breaches)
    assert (result.lost, result.duplicated, result.redelivered) == (1, 1, 1)
    assert ledger.breaches == 2  # a redelivered cycle's breaches are not counted again
    assert result.breaches_per_cycle == 0.5  # over the four cycles noted (c0, c1, c1b, c3)
    assert result.latencies_s == pytest.approx([0.1, 0.3, 0.05])
    assert result.cycles_per_s == 1.5


def test_summary_line_has_the_issue_format() -> None:
    line = fleet.summary_line(20, 1.0, 14.25, 80.4, 612.0, 0, 0, 19000.4)
    assert SUMMARY.match(line), line
    assert line == ("fleet: depots=20 period_s=1 cycles_per_s=14.2 p50_ms=80 p99_ms=612 lost=0 duplicated=0 "
                    "bare_hop_msgs_per_s=19000")


def test_replicas_start_more_processes_of_balancing_and_the_adapter_only() -> None:
    base = fleet.SimulatorSettings()
    started = fleet.StartedServices(base, {}, replicas=3)
    assert {s: len(ps) for s, ps in started.replicas.items()} == {"compatibility_adapter": 2, "balancing": 2}
    ports = [p.ports[s] for s, ps in started.replicas.items() for p in ps]
    assert len(set(ports)) == 4 and not set(ports) & {started.processes[s].ports[s] for s in fleet.SERVICES}
    assert fleet.parse_args(["--brokers", "3", "--replicas", "2"]).replicas == 2


def test_replicated_names_which_services_get_the_replicas() -> None:
    base = fleet.SimulatorSettings()
    started = fleet.StartedServices(base, {}, replicas=2, replicated=fleet.replicated_services("balancing"))
    assert {s: len(ps) for s, ps in started.replicas.items()} == {"balancing": 1}
    assert fleet.replicated_services(" balancing , compatibility_adapter") == ("balancing", "compatibility_adapter")
    for bad in ("", "topology", "balancing,balancing", "balancing,nope"):
        with pytest.raises(ValueError, match="--replicated takes"):
            fleet.replicated_services(bad)


def test_cpu_and_listener_probes_read_proc() -> None:
    assert (probes.cpu_seconds(os.getpid()) or 0) >= 0
    assert os.getpid() in probes.descendants(os.getpid())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert probes.listening_pid(s.getsockname()[1]) == os.getpid()
    assert probes.percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert probes.percentile([], 0.99) == 0.0


def test_the_machine_line_gives_each_kind_of_cpu_time_its_share_steal_included() -> None:
    assert set(probes.machine_cpu_seconds()) == set(probes.MACHINE_CPU_FIELDS)
    line = fleet.machine_cpu_line({"user": 30.0, "nice": 0.0, "system": 6.0, "idle": 12.0, "iowait": 0.0,
                                   "irq": 0.0, "softirq": 0.0, "steal": 12.0})
    assert line.split(None, 6)[-1] == "user 30.0 s (50 %), system 6.0 s (10 %), steal 12.0 s (20 %), idle 12.0 s (20 %)"


def test_the_latency_runs_timeline_is_the_median_of_its_legacy_trigger_traces() -> None:
    """fleet.py --latency: per step, the median start from the adapter's consumer span and duration,
    over the traces of legacy triggers; steps in under half of them (a rare retry) are left out."""
    from benchmarks.fleet_support.trace_hops import hop_timeline
    from libs.platform.observability.trace_store import SpanRecord

    def span(trace: str, service: str, name: str, start_ms: float, ms: float) -> SpanRecord:
        start = int(start_ms * 1e6)
        return SpanRecord(trace, f"{trace}{name}", None, name, "INTERNAL", service, start, start + int(ms * 1e6))

    spans = []
    for i, (hop, cycle) in enumerate([(6.0, 5.0), (8.0, 7.0), (10.0, 9.0)]):
        t, base = f"t{i}", 1000.0 * i
        spans += [
            span(t, "compatibility_adapter", "run1.load_balancer.rebalance_requested process", base, 1.5),
            span(t, "balancing", "run1.microgrid.rebalance_requested process", base + hop, cycle + 2),
            span(t, "balancing", "balancing_cycle", base + hop + 1, cycle),
        ]
    spans.append(span("t0", "balancing", "a retry", 50.0, 1.0))  # one trace in three
    spans.append(span("other", "balancing", "balancing_cycle", 0.0, 99.0))  # not a legacy trigger's trace
    steps = hop_timeline(spans, "run1.")
    assert [(s.service, s.name, s.start_ms, s.duration_ms, s.traces) for s in steps] == [
        ("compatibility_adapter", "load_balancer.rebalance_requested process", 0.0, 1.5, 3),
        ("balancing", "microgrid.rebalance_requested process", 8.0, 9.0, 3),
        ("balancing", "balancing_cycle", 9.0, 7.0, 3),
    ]


def _seeded_chargers(seed: int):  # noqa: ANN202
    run = ScenarioRun(setup_scenario(), DryRunTransport(), seed=seed)
    asyncio.run(run.play())
    return run


def test_mixed_demand_frees_some_connectors_and_keeps_every_charge_point_within_its_cap() -> None:
    import random

    run = _seeded_chargers(3)
    peak = {name: s.requested_watts for name, s in run.chargers.sessions.items()}
    assert len(peak) == 200 and set(peak.values()) == {22_000}  # the setup: every connector at full power
    with_demand(run.chargers, "peak", random.Random(1))
    assert {name: s.requested_watts for name, s in run.chargers.sessions.items()} == peak

    with_demand(run.chargers, "mixed", random.Random(1))
    mixed = {name: s.requested_watts for name, s in run.chargers.sessions.items()}
    assert 90 <= len(mixed) <= 150 and set(mixed.values()) == {MIXED_REQUEST_WATTS}
    per_charge_point: dict[str, int] = {}
    for placed in run.state.layout.connectors():
        parent = placed.parent or ""
        per_charge_point[parent] = per_charge_point.get(parent, 0) + mixed.get(placed.node.name, 0)
    assert max(per_charge_point.values()) <= 22_000

    again = _seeded_chargers(3)
    with_demand(again.chargers, "mixed", random.Random(1))  # the same seed, the same depot
    assert {name: s.requested_watts for name, s in again.chargers.sessions.items()} == mixed
    with pytest.raises(ValueError, match="demand is one of"):
        with_demand(again.chargers, "rush", random.Random(1))
