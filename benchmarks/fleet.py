"""Fleet throughput: N depots, each rebalanced once per control period through the real trigger path.

Not a test: prints figures with the machine and settings, beside a bare Kafka hop measured in the same
run. Needs the local stack (`./mgrid stack up`); run from the repo root:

    .venv/bin/python benchmarks/fleet.py --depots 20 --period 1 --duration 30
    .venv/bin/python benchmarks/fleet.py --latency            # single-request latency at 1 event/s

What it does:
1. the bare hop: aiokafka, acks=all, idempotent, on the same broker (one at a time p50, a burst msgs/s);
2. starts the four services as processes on a private topic prefix and free ports, as the system
   tests do (simulator.service_processes), or uses running ones (--running, MGRID_TOPIC_PREFIX and
   MGRID_<SERVICE>_URL say where);
3. seeds the fleet the simulator's way (benchmarks/fleet_support/depots.py): per depot ~200
   connectors / 311 nodes, legacy circuit records, resync, tree, limits, control point, telemetry;
   what the chargers ask for all run long is `--demand`: peak (every connector 22 kW, 112 breaches a
   cycle) or mixed (60 % plugged in at 11 kW, ~5 breaches a cycle);
4. drives the periodic trigger path open-loop: depot i fires at t0 + k * period + i * period / N,
   whether or not earlier cycles are done, as a scheduler does; each trigger carries its own
   correlation id (legacy `load_balancer.rebalance_requested` by default, or the scheduler job,
   both through the compatibility adapter); telemetry every --telemetry-every seconds per depot;
5. reads `microgrid.cycle_completed` and matches each cycle to its trigger (correlation id, or the
   adapter's request key); samples consumer lag of the adapter and balancing groups every second and
   CPU time (/proc) of the service processes, their Postgres backends, Kafka, Postgres and Redis.

Latency is measured from the trigger's planned instant (open loop: a late send counts against the
system, no coordinated omission). A trigger with no cycle once the system has gone quiet is lost;
one with two different cycles is duplicated.
The last line is machine-readable:
    fleet: depots=<n> period_s=<p> cycles_per_s=<x> p50_ms=<a> p99_ms=<b> lost=<l> duplicated=<d>
    bare_hop_msgs_per_s=<h>  (one line)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import orjson  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402

from benchmarks.fleet_support import bare_hop, trace_hops  # noqa: E402
from benchmarks.fleet_support.depots import DEMANDS, TRIGGERS, FleetDepot, seed_fleet  # noqa: E402
from benchmarks.fleet_support.probes import (  # noqa: E402
    CpuGroup,
    CpuMeter,
    LagSampler,
    Storage,
    descendants,
    listening_pid,
    machine,
    percentile,
    storage,
)
from contracts.events import TelemetryReported  # noqa: E402
from contracts.topics import topic_for  # noqa: E402
from libs.platform.auth import Grant, Scope, issue_token  # noqa: E402
from libs.platform.messaging.kafka import client_options  # noqa: E402
from libs.platform.messaging.topics_admin import provision  # noqa: E402
from libs.platform.observability.trace_store import trace_dir  # noqa: E402
from libs.platform.observability.tracing import ROOTS_PER_S_ENV, roots_per_s  # noqa: E402
from simulator.service_processes import ServiceProcesses  # noqa: E402
from simulator.transport import SimulatorSettings  # noqa: E402
from tools.run_cli import SERVICES  # noqa: E402

ADAPTER, BALANCING = "compatibility_adapter", "balancing"
APP_NAME_PREFIX = "fleet-bench"  # Postgres application_name of the started services' connections


@dataclass(frozen=True)
class FleetOptions:
    depots: int = 10
    period_s: float = 1.0
    duration_s: float = 30.0
    warmup_s: float = 5.0
    trigger: str = "legacy_event"
    demand: str = "peak"  # what the chargers ask for (benchmarks/fleet_support/depots.py, DEMANDS)
    telemetry_every_s: float = 10.0
    drain_s: float = 300.0
    seed: int = 1
    seed_workers: int = 4
    # Ports of the replicas beyond the first, per service (their CPU counts with the service's).
    replica_ports: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class Trigger:
    correlation_id: str
    depot: int
    planned: float  # perf_counter instant it was due
    sent: float = 0.0
    request_key: str | None = None
    measured: bool = False  # planned inside the measured window (after warm-up)


@dataclass
class FleetResult:
    options: FleetOptions
    triggers: list[Trigger]
    arrivals: dict[str, list[tuple[float, str, str]]]  # correlation id -> [(arrived, cycle_id, outcome)]
    window_s: float
    completed_in_window: int
    max_send_delay_ms: float
    max_lag: dict[str, int]
    seeding_s: float
    cpu: dict[str, float] = field(default_factory=dict)  # group name -> CPU seconds in the window
    cpu_shared: dict[str, bool] = field(default_factory=dict)
    cpu_wait: dict[str, float] = field(default_factory=dict)  # group name -> s runnable but waiting for a CPU
    machine_cpu: dict[str, float] = field(default_factory=dict)  # the machine's CPU seconds by kind (/proc/stat)
    redelivered: int = 0
    breaches: int = 0  # over every cycle noted
    stored: tuple[Storage, Storage] | None = None

    @property
    def latencies_s(self) -> list[float]:
        out = []
        for t in self.triggers:
            got = self.arrivals.get(t.correlation_id)
            if t.measured and got:
                out.append(min(a for a, _, _ in got) - t.planned)
        return out

    @property
    def lost(self) -> int:
        return sum(1 for t in self.triggers if not self.arrivals.get(t.correlation_id))

    @property
    def duplicated(self) -> int:
        return sum(1 for t in self.triggers if len({c for _, c, _ in self.arrivals.get(t.correlation_id, [])}) > 1)

    @property
    def cycles_per_s(self) -> float:
        return self.completed_in_window / self.window_s if self.window_s > 0 else 0.0

    @property
    def breaches_per_cycle(self) -> float:
        """Over every cycle noted (a redelivered record is not a second cycle), as `breaches` is counted."""
        return self.breaches / max(1, sum(len(got) for got in self.arrivals.values()))

    @property
    def outcomes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for got in self.arrivals.values():
            for _, _, outcome in got[:1]:
                counts[outcome] = counts.get(outcome, 0) + 1
        return counts


def summary_line(depots: int, period_s: float, cycles_per_s: float, p50_ms: float, p99_ms: float, lost: int,
                 duplicated: int, bare_hop_msgs_per_s: float) -> str:
    return (f"fleet: depots={depots} period_s={period_s:g} cycles_per_s={cycles_per_s:.1f} p50_ms={p50_ms:.0f} "
            f"p99_ms={p99_ms:.0f} lost={lost} duplicated={duplicated} "
            f"bare_hop_msgs_per_s={bare_hop_msgs_per_s:.0f}")


# ---- reading cycle_completed ------------------------------------------------------------------------


class CycleLedger:
    """Cycles noted under the trigger that asked for them; pure, so the accounting is unit-tested."""

    def __init__(self) -> None:
        self.arrivals: dict[str, list[tuple[float, str, str]]] = {}  # correlation id -> [(at, cycle, outcome)]
        self.by_request_key: dict[str, str] = {}  # the adapter's request key -> the trigger's correlation id
        self.last_arrival = 0.0
        self.redelivered = 0
        self.breaches = 0  # over the cycles noted: what the demand makes each cycle publish
        self._cycle_ids: set[str] = set()

    def expect(self, trigger: Trigger) -> None:
        self.arrivals.setdefault(trigger.correlation_id, [])
        if trigger.request_key:
            self.by_request_key[trigger.request_key] = trigger.correlation_id

    def note(self, raw: bytes, now: float) -> None:
        # orjson, not the contract model (validating 300-node allocations) nor the json module (~2 ms for a
        # curtailed depot's 120 KB): the driver shares the machine's two cores with what it measures.
        message = orjson.loads(raw)
        payload = message["payload"]
        audit = payload.get("audit") or {}
        candidates = (message.get("correlation_id"), audit.get("correlation_id"),
                      self.by_request_key.get(audit.get("request_key") or ""))
        key = next((c for c in candidates if c and c in self.arrivals), None)
        if key is None:
            return  # not ours (seeding, another run on the same topics)
        cycle_id = payload["cycle_id"]
        if cycle_id in self._cycle_ids:  # the same cycle read twice (a relay redelivery): not a second cycle
            self.redelivered += 1
            return
        self._cycle_ids.add(cycle_id)
        self.breaches += payload.get("breaches_total") or len(payload.get("breaches") or ())
        self.arrivals[key].append((now, cycle_id, payload.get("outcome", "?")))
        self.last_arrival = now

    def done(self, trigger: Trigger) -> bool:
        return bool(self.arrivals.get(trigger.correlation_id))


class CycleWatcher:
    """Reads microgrid.cycle_completed from its end as it is now, into a ledger."""

    def __init__(self, settings: SimulatorSettings) -> None:
        self.topic = settings.topic("microgrid.cycle_completed")
        self.ledger = CycleLedger()
        self._consumer = AIOKafkaConsumer(**client_options(settings), group_id=None,
                                          enable_auto_commit=False, fetch_max_wait_ms=20,
                                          client_id="fleet-bench-watcher")
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        await self._consumer._client.force_metadata_update()  # noqa: SLF001 - as simulator.transport does
        tps = [TopicPartition(self.topic, p) for p in sorted(self._consumer.partitions_for_topic(self.topic) or ())]
        self._consumer.assign(tps)
        await self._consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the seek now: every cycle from here on is seen
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batch.values():
                for r in records:
                    self.ledger.note(r.value, now)


# ---- the services -----------------------------------------------------------------------------------


def free_port(taken: set[int] | None = None) -> int:
    """A port free now and not in ``taken`` (added to it): once a probe's socket is closed the kernel may
    hand the same port out again, so ports meant for different processes are drawn against each other."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if taken is None:
            return port
        if port not in taken:
            taken.add(port)
            return port


def with_application_name(dsn: str, name: str) -> str:
    """asyncpg passes unknown DSN query parameters to the server as settings: names our backends."""
    return f"{dsn}{'&' if '?' in dsn else '?'}application_name={name}"


# The services on the trigger path; `--replicas N` runs N processes of each in its one consumer group
# (`--replicated` names fewer: the one process that bounds the run, not its neighbours on the same cores).
SCALED_SERVICES = ("compatibility_adapter", "balancing")


def replicated_services(names: str) -> tuple[str, ...]:
    """`--replicated`'s comma list, checked: each a service on the trigger path, none twice."""
    chosen = tuple(n.strip() for n in names.split(",") if n.strip())
    unknown = [n for n in chosen if n not in SCALED_SERVICES]
    if unknown or not chosen or len(set(chosen)) != len(chosen):
        raise ValueError(f"--replicated takes one or more of {', '.join(SCALED_SERVICES)}, each once; "
                         f"got {names!r}")
    return chosen


class StartedServices:
    """The four services as processes on a private prefix and free ports (as tests/system/conftest.py),
    one ServiceProcesses per service so each gets its own Postgres application_name; with `replicas` > 1,
    that many processes of each of `replicated` (by default balancing and the adapter; the others stay at one)."""

    def __init__(self, base: SimulatorSettings, service_env: dict[str, str], replicas: int = 1,
                 replicated: tuple[str, ...] = SCALED_SERVICES) -> None:
        self.prefix = f"fleet{uuid.uuid4().hex[:8]}."
        self.run_dir = Path(tempfile.mkdtemp(prefix="mgrid-fleet-"))
        taken: set[int] = set()
        ports = {s: free_port(taken) for s in SERVICES}
        common = {"MGRID_KAFKA_BOOTSTRAP": base.kafka_bootstrap, "MGRID_REDIS_URL": base.redis_url,
                  "MGRID_TOPIC_PREFIX": self.prefix, **service_env}

        def processes(service: str, replica: int) -> ServiceProcesses:
            port = ports[service] if replica == 1 else free_port(taken)
            return ServiceProcesses(
                run_dir=self.run_dir if replica == 1 else self.run_dir / f"replica{replica}",
                ports={**ports, service: port}, services=(service,), env={
                    **common,
                    "MGRID_POSTGRES_DSN": with_application_name(base.postgres_dsn, f"{APP_NAME_PREFIX}-{service}"),
                })

        self.processes = {s: processes(s, 1) for s in SERVICES}
        # Replicas beyond the first: same group, same schema, ports of their own (the URLs name the first).
        self.replicas = {s: [processes(s, i) for i in range(2, replicas + 1)] for s in replicated}
        self.settings = SimulatorSettings.model_validate({
            **base.model_dump(include={"kafka_security_protocol", "kafka_sasl_mechanism", "kafka_sasl_username",
                                       "kafka_sasl_password", "kafka_replication_factor", "postgres_owner_dsn"}),
            "kafka_bootstrap": base.kafka_bootstrap, "postgres_dsn": base.postgres_dsn, "redis_url": base.redis_url,
            "topic_prefix": self.prefix, **{f"{s}_url": self.processes[s].url(s) for s in SERVICES}})

    def all_processes(self) -> list[ServiceProcesses]:
        return [*self.processes.values(), *(p for ps in self.replicas.values() for p in ps)]

    def replica_ports(self) -> dict[str, list[int]]:
        return {s: [p.ports[s] for p in ps] for s, ps in self.replicas.items()}

    async def start(self) -> None:
        await provision(self.settings)  # topics and their ACLs, as the admin: services may not create them
        await asyncio.gather(*(asyncio.to_thread(p.start) for p in self.all_processes()))

    def stop(self) -> None:
        for p in self.all_processes():
            p.stop()

    async def clean_up(self) -> None:
        """Drop the run's schemas, topics and ACLs (the services are stopped: nothing writes to them)."""
        import asyncpg

        from libs.platform.messaging.topics_admin import retire

        conn = await asyncpg.connect(self.settings.postgres_dsn)
        try:
            for service in SERVICES:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{service_schema(self.settings, service)}" CASCADE')
        finally:
            await conn.close()
        await retire(self.settings, self.prefix)  # the topics and their ACLs


def service_schema(settings: SimulatorSettings, service: str) -> str:
    """As libs.platform.runtime.ServiceDefinition.schema names it."""
    return "".join(c if c.isalnum() else "_" for c in settings.topic_prefix.lower()) + service


# ---- CPU groups -------------------------------------------------------------------------------------


def _port(url: str) -> int:
    parsed = urlparse(url if "://" in url else f"tcp://{url}")
    assert parsed.port is not None, url
    return parsed.port


async def postgres_backends(dsn: str, application_prefix: str) -> dict[str, set[int]]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT pid, application_name FROM pg_stat_activity WHERE application_name LIKE $1",
                                f"{application_prefix}%")
    finally:
        await conn.close()
    out: dict[str, set[int]] = {}
    for r in rows:
        out.setdefault(r["application_name"].removeprefix(f"{application_prefix}-"), set()).add(int(r["pid"]))
    return out


async def cpu_groups(settings: SimulatorSettings, replica_ports: dict[str, list[int]] | None = None
                     ) -> list[CpuGroup]:
    """Service processes (found by the port each listens on, every replica's), their own Postgres backends
    (when started here, by application_name), and the stack's processes, which other work on this machine
    shares (with several brokers, every broker's)."""
    groups = []
    for service in SERVICES:
        ports = [_port(settings.service_url(service)), *(replica_ports or {}).get(service, [])]
        pids = {pid for pid in (listening_pid(port) for port in ports) if pid is not None}
        if pids:
            groups.append(CpuGroup(service, False, {d for pid in pids for d in descendants(pid)}))
    backends = await postgres_backends(settings.postgres_dsn, APP_NAME_PREFIX)
    ours: set[int] = set()
    for service, pids in sorted(backends.items()):
        groups.append(CpuGroup(f"postgres backends of {service}", False, pids))
        ours |= pids
    stack = (("kafka", settings.kafka_bootstrap.split(",")), ("postgres (other processes)", [settings.postgres_dsn]),
             ("redis", [settings.redis_url]))
    for name, urls in stack:
        pids = {pid for pid in (listening_pid(_port(url)) for url in urls) if pid is not None}
        if pids:
            groups.append(CpuGroup(name, True, {d for pid in pids for d in descendants(pid)} - ours))
    groups.append(CpuGroup("this benchmark (driver)", False, {os.getpid()}))
    return groups


# ---- the run ----------------------------------------------------------------------------------------


async def run_fleet(settings: SimulatorSettings, options: FleetOptions, *, log=print,  # noqa: ANN001
                    depots: list[FleetDepot] | None = None) -> FleetResult:
    """Seed the fleet on running services (unless given seeded depots), drive it open-loop, collect what came
    back."""
    if options.trigger not in TRIGGERS:
        raise ValueError(f"--trigger is one of {', '.join(TRIGGERS)}")
    if depots is None:
        depots = await seed(settings, options, log)
        seeding_s = depots[0].seeded_in_s if depots else 0.0
    else:
        depots, seeding_s = depots[:options.depots], 0.0
    return await drive(settings, options, depots, seeding_s, log)


async def seed(settings: SimulatorSettings, options: FleetOptions, log) -> list[FleetDepot]:  # noqa: ANN001
    t_seed = time.perf_counter()
    seeded = 0

    def progress(depot: FleetDepot) -> None:
        nonlocal seeded
        seeded += 1
        if seeded == 1:
            log(f"  first depot seeded: {depot.setup_notes}")
        if seeded % 10 == 0 or seeded == options.depots:
            log(f"  seeded {seeded}/{options.depots} depots ({time.perf_counter() - t_seed:.0f} s)")

    depots = await seed_fleet(settings, options.depots, seed=options.seed, workers=options.seed_workers,
                              on_done=progress, demand=options.demand)
    for depot in depots:
        depot.seeded_in_s = time.perf_counter() - t_seed
    return depots


async def drive(settings: SimulatorSettings, options: FleetOptions, depots: list[FleetDepot], seeding_s: float,
                log) -> FleetResult:  # noqa: ANN001
    run_id = uuid.uuid4().hex[:8]
    producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True,
                                linger_ms=1, client_id="fleet-bench-scheduler")
    watcher = CycleWatcher(settings)
    groups = [settings.topic(ADAPTER), settings.topic(BALANCING)]
    meter = CpuMeter(await cpu_groups(settings, options.replica_ports))
    schemas = [service_schema(settings, s) for s in SERVICES]
    kafka_pid = listening_pid(_port(settings.kafka_bootstrap.split(",")[0]))
    triggers: list[Trigger] = []
    await producer.start()
    await watcher.start()
    async with LagSampler(settings, groups) as lag:
        try:
            await _settle(lag, log)  # seeding leaves the services a backlog: start from an idle system
            for depot in depots:  # fresh readings for everyone before the clock starts
                await _publish(producer, settings, depot.telemetry(f"fleet-{run_id}-tm-{depot.index}-0"))
            lag.start()
            send_delays: list[float] = []
            t0 = time.perf_counter() + 0.5
            window_start = t0 + options.warmup_s
            end = t0 + options.warmup_s + options.duration_s
            # One schedule for the whole fleet: (instant, depot), triggers spread evenly over the period.
            step = options.period_s / len(depots)
            telemetry_task = asyncio.create_task(_telemetry_loop(producer, settings, depots, options, run_id))
            k = 0
            cpu_started = False
            while True:
                due = t0 + k * step
                if due >= end:
                    break
                if not cpu_started and due >= window_start:
                    stored_before = await storage(settings.postgres_dsn, schemas, kafka_pid, settings.topic_prefix)
                    meter.start()
                    lag.reset()
                    cpu_started = True
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                depot = depots[k % len(depots)]
                correlation = f"fleet-{run_id}-{depot.index}-{k // len(depots)}"
                publication = depot.trigger(options.trigger, correlation, f"fleet-{run_id}-{depot.index}")
                trigger = Trigger(correlation, depot.index, due, measured=due >= window_start)
                if options.trigger == "legacy_event":
                    trigger.request_key = f"legacy-event:{publication.message.event_id}"
                triggers.append(trigger)
                watcher.ledger.expect(trigger)
                # Open loop: hand the record to the producer and move on; never wait for its cycle.
                await producer.send(settings.topic(publication.topic), publication.message.to_bytes(),
                                    key=publication.key())
                trigger.sent = time.perf_counter()
                send_delays.append(trigger.sent - due)
                k += 1
                if k % max(1, len(depots)) == 0:
                    meter.sample()
            if not cpu_started:
                stored_before = await storage(settings.postgres_dsn, schemas, kafka_pid, settings.topic_prefix)
                meter.start()
            # The window ends with the schedule; cycles still in flight count for latency, not rate.
            meter.stop()
            stored_after = await storage(settings.postgres_dsn, schemas, kafka_pid, settings.topic_prefix)
            completed_in_window = sum(1 for got in watcher.ledger.arrivals.values() for a, _, _ in got[:1]
                                      if window_start <= a <= end)
            max_lag_in_window = dict(lag.max_lag)
            # The depots keep reporting while the backlog drains, as a real fleet's meters do: a cycle run
            # more than the freshness threshold (60 s) after the last report falls back to fail-safe demand
            # and breaches its caps (~57 breaches a cycle in a 300-depot run that drained for minutes).
            await _drain(settings, watcher, lag, triggers, options.drain_s, log)
            telemetry_task.cancel()
            await asyncio.gather(telemetry_task, return_exceptions=True)
        finally:
            await watcher.stop()
            await producer.stop()
    result = FleetResult(
        options=options, triggers=triggers, arrivals=watcher.ledger.arrivals, window_s=options.duration_s,
        completed_in_window=completed_in_window, max_send_delay_ms=max(send_delays, default=0.0) * 1000,
        max_lag=max_lag_in_window, seeding_s=seeding_s, redelivered=watcher.ledger.redelivered,
        breaches=watcher.ledger.breaches,
        stored=(stored_before, stored_after),
    )
    result.cpu = {g.name: meter.seconds(g) for g in meter.groups}
    result.cpu_wait = {g.name: meter.waited(g) for g in meter.groups}
    result.cpu_shared = {g.name: g.shared for g in meter.groups}
    result.machine_cpu = meter.machine
    return result


async def _publish(producer: AIOKafkaProducer, settings: SimulatorSettings, publication) -> None:  # noqa: ANN001
    await producer.send(settings.topic(publication.topic), publication.message.to_bytes(), key=publication.key())


async def _telemetry_loop(producer: AIOKafkaProducer, settings: SimulatorSettings, depots: list[FleetDepot],
                          options: FleetOptions, run_id: str) -> None:
    """Every depot reports its meters and chargers every `telemetry_every_s`, spread over that interval."""
    if options.telemetry_every_s <= 0:
        return
    step = options.telemetry_every_s / len(depots)
    start, k = time.perf_counter(), 0
    while True:
        delay = start + (k + 1) * step - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        depot = depots[k % len(depots)]
        await _publish(producer, settings, depot.telemetry(f"fleet-{run_id}-tm-{depot.index}-{k}"))
        k += 1


async def _settle(lag: LagSampler, log, timeout_s: float = 300.0) -> None:  # noqa: ANN001
    """Wait until the trigger path's groups have no lag (two samples in a row)."""
    t, quiet = time.perf_counter(), 0
    while time.perf_counter() - t < timeout_s and quiet < 2:
        await lag.sample()
        quiet = quiet + 1 if not any(lag.last_lag.values()) else 0
        await asyncio.sleep(0.5)
    if quiet < 2:
        log(f"  settle: consumer lag still {lag.last_lag} after {timeout_s:.0f} s; driving anyway")
    elif time.perf_counter() - t > 2:
        log(f"  settled: the services digested the seeding backlog in {time.perf_counter() - t:.0f} s")
    lag.reset()


async def _drain(settings: SimulatorSettings, watcher: CycleWatcher, lag: LagSampler, triggers: list[Trigger],
                 timeout_s: float, log) -> None:  # noqa: ANN001
    """Wait for every trigger's cycle, or until the system is quiet (no lag, nothing new for 5 s). The
    telemetry the depots keep sending meanwhile is left out of that lag, or a lost cycle would keep the drain
    waiting its whole timeout."""
    deadline = time.perf_counter() + timeout_s
    still_reporting = frozenset({settings.topic(topic_for(TelemetryReported).name)})
    while time.perf_counter() < deadline:
        if all(watcher.ledger.arrivals.get(t.correlation_id) for t in triggers):
            return
        await lag.sample()
        quiet = time.perf_counter() - max(watcher.ledger.last_arrival, triggers[-1].sent if triggers else 0) > 5
        if quiet and not lag.lag_outside(still_reporting):
            return
        await asyncio.sleep(0.2)
    missing = sum(1 for t in triggers if not watcher.ledger.arrivals.get(t.correlation_id))
    log(f"  drain: {missing} triggers still without a cycle after {timeout_s:.0f} s, consumer lag "
        f"{lag.last_lag} (counted as lost: raise --drain to tell late from lost)")


# ---- single-request latency at low load ---------------------------------------------------------------


@dataclass
class LatencyResult:
    event_s: list[float]
    http_s: list[float]
    http_statuses: dict[int, int]


async def run_latency(settings: SimulatorSettings, samples: int, *, seed: int, trigger: str,
                      log=print) -> LatencyResult:  # noqa: ANN001
    """One depot, one request a second: legacy event -> cycle_completed, then POST /rebalance -> 200."""
    (depot,) = await seed_fleet(settings, 1, seed=seed, workers=1)
    log(f"  seeded one depot: {depot.setup_notes}")
    producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True,
                                linger_ms=0, client_id="fleet-bench-latency")
    watcher = CycleWatcher(settings)
    await producer.start()
    await watcher.start()
    run_id = uuid.uuid4().hex[:8]
    event_s: list[float] = []
    http_s: list[float] = []
    statuses: dict[int, int] = {}
    try:
        await _publish(producer, settings, depot.telemetry(f"lat-{run_id}-tm"))
        async with LagSampler(settings, [settings.topic(ADAPTER), settings.topic(BALANCING)]) as lag:
            await _settle(lag, log)
        log(f"  {trigger}: one a second, {samples} samples after 2 for warm-up")
        for i in range(samples + 2):  # the first two warm up (connections, caches)
            due = time.perf_counter()
            correlation = f"lat-{run_id}-{i}"
            publication = depot.trigger(trigger, correlation, f"lat-{run_id}")
            t = Trigger(correlation, 0, due, request_key=f"legacy-event:{publication.message.event_id}")
            watcher.ledger.expect(t)
            await _publish(producer, settings, publication)
            deadline = due + 30
            while not watcher.ledger.arrivals[correlation] and time.perf_counter() < deadline:
                await asyncio.sleep(0.001)
            if watcher.ledger.arrivals[correlation] and i >= 2:
                event_s.append(watcher.ledger.arrivals[correlation][0][0] - due)
            await asyncio.sleep(max(0.0, due + 1.0 - time.perf_counter()))
        log(f"  POST /rebalance: one a second, {samples} samples after 2 for warm-up")
        token = issue_token("fleet-bench", [Scope.OPERATOR_WRITE.value, Scope.OPERATOR_READ.value],
                            Grant(microgrids=frozenset({depot.microgrid_id})))
        async with httpx.AsyncClient(base_url=settings.service_url(BALANCING), timeout=30,
                                     limits=settings.http_limits(),
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            for i in range(samples + 2):
                due = time.perf_counter()
                response = await client.post(f"/api/microgrid/{depot.microgrid_id}/rebalance",
                                             headers={"Idempotency-Key": f"lat-{run_id}-{i}",
                                                      "X-Correlation-ID": f"lat-{run_id}-http-{i}"})
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 200 and i >= 2:
                    http_s.append(time.perf_counter() - due)
                if i % 10 == 0:
                    await _publish(producer, settings, depot.telemetry(f"lat-{run_id}-tm-{i}"))
                await asyncio.sleep(max(0.0, due + 1.0 - time.perf_counter()))
    finally:
        await watcher.stop()
        await producer.stop()
    return LatencyResult(event_s, http_s, statuses)


# ---- the report ---------------------------------------------------------------------------------------


def ms(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (f"p50 {statistics.median(values) * 1000:7.1f} ms  p95 {percentile(values, 0.95) * 1000:7.1f} ms  "
            f"p99 {percentile(values, 0.99) * 1000:7.1f} ms  max {max(values) * 1000:7.1f} ms  (n={len(values)})")


def machine_cpu_line(seconds: dict[str, float]) -> str:
    """The whole machine's cores over the window by kind, busy kinds first; steal is what the hypervisor
    gave to other guests (the run never had it), so it explains runs of one build that differ."""
    total = sum(seconds.values()) or 1.0
    kinds = ("user", "system", "softirq", "irq", "nice", "iowait", "steal", "idle")
    shares = ", ".join(f"{kind} {seconds[kind]:.1f} s ({100 * seconds[kind] / total:.0f} %)"
                       for kind in kinds if kind in seconds and (seconds[kind] > 0 or kind in ("steal", "idle")))
    return f"  {'the whole machine in the window':42s} {shares}"


def print_fleet(result: FleetResult, hop: bare_hop.BareHop, *, seeding_s: float | None = None) -> None:
    o = result.options
    lat = result.latencies_s
    sent_measured = sum(1 for t in result.triggers if t.measured)
    seeded = seeding_s if seeding_s is not None else result.seeding_s
    print(f"seeding: the fleet's depots in {seeded:.0f} s (before the run)")
    print(f"offered: {o.depots / o.period_s:.1f} triggers/s ({o.trigger}), {len(result.triggers)} sent "
          f"({sent_measured} in the measured window), max send delay {result.max_send_delay_ms:.0f} ms")
    print(f"sustained: {result.cycles_per_s:7.1f} cycles/s  (first cycles completed in the {o.duration_s:g} s window)")
    print(f"trigger -> cycle_completed: {ms(lat)}")
    print(f"lost {result.lost}, duplicated {result.duplicated} (redelivered records of one cycle: "
          f"{result.redelivered}); outcomes: {', '.join(f'{k} {v}' for k, v in sorted(result.outcomes.items()))}; "
          f"{result.breaches_per_cycle:.1f} breaches a cycle ({o.demand} demand)")
    print("max consumer lag (messages, sampled every 1 s): "
          + ", ".join(f"{g} {v}" for g, v in result.max_lag.items()))
    cycles = max(1, result.completed_in_window)
    total = sum(v for k, v in result.cpu.items() if k != "this benchmark (driver)")
    print(f"CPU in the window ({o.duration_s:g} s), per cycle over {result.completed_in_window} cycles:")
    for name, seconds in result.cpu.items():
        flag = "  (shared with other work on this machine)" if result.cpu_shared.get(name) else ""
        wait = result.cpu_wait.get(name, 0.0)
        print(f"  {name:42s} {seconds:7.2f} s  {seconds / cycles * 1000:7.1f} ms/cycle  "
              f"waited for a CPU {wait:6.2f} s{flag}")
    capacity = (os.cpu_count() or 1) * o.duration_s
    print(f"  {'all processes but the driver':42s} {total:7.2f} s  {total / cycles * 1000:7.1f} ms/cycle "
          f"(the machine has {os.cpu_count()} cores x {o.duration_s:g} s = {capacity:.0f} s)")
    if result.machine_cpu:
        print(machine_cpu_line(result.machine_cpu))
    if result.stored is not None:
        before, after = result.stored
        print(f"bytes written in the window, per cycle over {result.completed_in_window} cycles:")
        for schema, size in sorted(after.postgres_bytes.items()):
            grown = size - before.postgres_bytes.get(schema, 0)
            rows = after.rows_inserted.get(schema, 0) - before.rows_inserted.get(schema, 0)
            print(f"  {'postgres schema ' + schema:52s} {grown / cycles / 1024:8.1f} KiB/cycle  "
                  f"{rows / cycles:6.1f} rows inserted/cycle")
        wal = (after.wal_lsn_bytes - before.wal_lsn_bytes) / cycles / 1024
        print(f"  {'postgres WAL (whole server)':52s} {wal:8.1f} KiB/cycle  (shared with other work on this machine)")
        if before.kafka_bytes is not None and after.kafka_bytes is not None:
            kafka = (after.kafka_bytes - before.kafka_bytes) / cycles / 1024
            print(f"  {'kafka segments of the run topics':52s} {kafka:8.1f} KiB/cycle  (with triggers, telemetry)")
    p50 = statistics.median(lat) * 1000 if lat else 0.0
    print(f"bare hop (same broker, same run): one at a time p50 {hop.one_at_a_time_p50_ms:.1f} ms, "
          f"p99 {hop.one_at_a_time_p99_ms:.1f} ms; burst {hop.burst_msgs_per_s:,.0f} msgs/s "
          f"({hop.burst_messages} x {hop.message_bytes} B)")
    print(summary_line(o.depots, o.period_s, result.cycles_per_s, p50, percentile(lat, 0.99) * 1000, result.lost,
                       result.duplicated, hop.burst_msgs_per_s))


def print_hops(steps: list[trace_hops.Step]) -> None:
    if not steps:
        print("where the time goes: no spans of this run in the trace store (services not started here?)")
        return
    print(f"where the time goes (legacy trigger, median over {max(s.traces for s in steps)} traces; "
          "from the adapter taking it; the gaps are commit + relay, and the Kafka hop with the fetch):")
    for s in steps:
        print(f"  +{s.start_ms:7.1f} ms  {s.duration_ms:6.1f} ms  {s.service:22s} {s.name}")


def print_latency(result: LatencyResult, hop: bare_hop.BareHop) -> None:
    print(f"legacy event -> cycle_completed (1/s):    {ms(result.event_s)}")
    print(f"POST /rebalance -> 200 with result (1/s): {ms(result.http_s)}  statuses {result.http_statuses}")
    print(f"bare hop beside them: one produce -> consume p50 {hop.one_at_a_time_p50_ms:.1f} ms "
          f"(p99 {hop.one_at_a_time_p99_ms:.1f} ms); burst {hop.burst_msgs_per_s:,.0f} msgs/s")


# ---- the command --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--depots", type=int, default=10)
    parser.add_argument("--sizes", default="", help="comma list of fleet sizes driven in turn on one seeded fleet "
                        "(the curve), e.g. 3,10,20; overrides --depots")
    parser.add_argument("--period", type=float, default=1.0, help="control period per depot, seconds")
    parser.add_argument("--duration", type=float, default=30.0, help="measured window, seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="triggers before the window, not measured")
    parser.add_argument("--trigger", choices=TRIGGERS, default="legacy_event")
    parser.add_argument("--demand", choices=DEMANDS, default="peak",
                        help="peak: every connector asks 22 kW, 112 breaches a cycle; mixed: 60 %% plugged in at "
                        "11 kW, a few breaches a cycle")
    parser.add_argument("--telemetry-every", type=float, default=10.0, help="seconds per depot; 0: none")
    parser.add_argument("--drain", type=float, default=300.0, help="max seconds to wait for the last cycles")
    parser.add_argument("--brokers", type=int, default=1,
                        help="Kafka brokers the running stack must have (`mgrid stack up --brokers N`)")
    parser.add_argument("--replicas", type=int, default=1,
                        help="processes of balancing and of the adapter, each in its one consumer group")
    parser.add_argument("--replicated", default=",".join(SCALED_SERVICES),
                        help="which of those --replicas applies to, comma-separated (e.g. balancing)")
    parser.add_argument("--running", action="store_true",
                        help="use running services (MGRID_TOPIC_PREFIX, MGRID_<SERVICE>_URL) instead of starting them")
    parser.add_argument("--service-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for the started services (e.g. MGRID_OUTBOX_POLL_INTERVAL_S=0.1)")
    parser.add_argument("--keep", action="store_true", help="keep the run's schemas and topics (to inspect them)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seed-workers", type=int, default=4, help="depots seeded concurrently")
    parser.add_argument("--latency", action="store_true", help="single-request latency at 1 event/s instead")
    parser.add_argument("--latency-samples", type=int, default=30)
    return parser.parse_args(argv)


def trace_roots(service_env: dict[str, str]) -> str:
    """How many traces a second each service keeps (the rest are not recorded: CPU a cycle depends on it)."""
    limit = roots_per_s({**os.environ, **service_env})  # the services' own parser: a bad value stops the run here
    return f"{'unlimited' if limit is None else f'{limit:g} a second a process'} ({ROOTS_PER_S_ENV})"


async def stack_mismatch(settings: SimulatorSettings, brokers: int) -> str | None:
    """Why the running stack is not the one `--brokers` asks for (the benchmark measures, it does not set up)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**client_options(settings), client_id="fleet-bench-cluster")
    await admin.start()
    try:
        found = len((await admin.describe_cluster())["brokers"])
    finally:
        await admin.close()
    if found != brokers:
        return (f"--brokers {brokers}: the stack at {settings.kafka_bootstrap} has {found} broker(s); "
                f"start it with `./mgrid stack down && ./mgrid stack up --brokers {brokers}` and "
                "`eval \"$(./mgrid stack env)\"`")
    if brokers > 1 and settings.kafka_replication_factor < 3:
        return (f"--brokers {brokers}: MGRID_KAFKA_REPLICATION_FACTOR is {settings.kafka_replication_factor}; "
                "use `mgrid stack env`")
    return None


async def amain(args: argparse.Namespace) -> int:
    logging.disable(logging.INFO)
    # Ctrl-C or a TERM cancels the run, so the services it started are stopped and its schemas dropped.
    main_task, loop = asyncio.current_task(), asyncio.get_running_loop()
    assert main_task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main_task.cancel)
    base = SimulatorSettings()
    service_env = dict(kv.split("=", 1) for kv in args.service_env)
    if args.running and args.replicas > 1:
        print("--replicas applies to the services this script starts, not to --running ones", file=sys.stderr)
        return 2
    try:
        replicated = replicated_services(args.replicated)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    problem = await stack_mismatch(base, args.brokers)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    started = None if args.running else StartedServices(base, service_env, replicas=args.replicas,
                                                        replicated=replicated)
    started_stopped = False
    settings = base if started is None else started.settings
    print(f"machine: {machine()}")
    scaled = "" if args.replicas == 1 or replicated == SCALED_SERVICES else f" (of {', '.join(replicated)})"
    print(f"settings: brokers {args.brokers}, replicas {args.replicas}{scaled}, kafka {settings.kafka_bootstrap}, "
          f"topic prefix {settings.topic_prefix!r}, services {'running' if args.running else 'started here'}"
          f"{', env ' + ' '.join(args.service_env) if args.service_env else ' with default settings'}; "
          f"traces kept: {trace_roots(service_env)}")
    hop_topic = settings.topic(f"bench.bare_hop.{uuid.uuid4().hex[:6]}")
    hop = await bare_hop.measure(settings, hop_topic)
    await bare_hop.delete_topic(settings, hop_topic)
    try:
        if started is not None:
            t = time.perf_counter()
            await started.start()
            print(f"services: started in {time.perf_counter() - t:.0f} s, logs under {started.run_dir}/logs")
        if args.latency:
            since = time.time()
            print_latency(await run_latency(settings, args.latency_samples, seed=args.seed, trigger=args.trigger), hop)
            if started is not None:
                started.stop()  # the services flush their last spans as they stop
                started_stopped = True
                print_hops(trace_hops.hop_timeline(
                    trace_hops.read_run_spans(trace_dir(), settings.topic_prefix, since), settings.topic_prefix
                ))
            return 0
        sizes = [int(x) for x in args.sizes.split(",")] if args.sizes else [args.depots]
        options = FleetOptions(depots=max(sizes), period_s=args.period, duration_s=args.duration,
                               warmup_s=args.warmup, trigger=args.trigger, demand=args.demand,
                               telemetry_every_s=args.telemetry_every,
                               drain_s=args.drain, seed=args.seed, seed_workers=args.seed_workers,
                               replica_ports=started.replica_ports() if started is not None else {})
        depots = await seed(settings, options, print)
        for n in sizes:  # one seeded fleet, driven at each size in turn: the curve
            print(f"--- fleet: {n} depots x (311 nodes, 200 connectors, {args.demand} demand), one trigger per depot "
                  f"every {args.period:g} s, {args.warmup:g} s warm-up + {args.duration:g} s measured")
            sized = dataclasses.replace(options, depots=n)
            print_fleet(await run_fleet(settings, sized, depots=depots[:n]), hop, seeding_s=depots[0].seeded_in_s)
        return 0
    finally:
        if started is not None:
            if not started_stopped:
                started.stop()
            if not args.keep:
                await started.clean_up()


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
