"""The fault suite's engine (issue 15): steady legacy load on the four services as processes, faults
injected, then every output read from the start and counted per input.

One run: a depot is set up through the simulator (its `setup` step), then `events` distinct legacy
`load_balancer.rebalance_requested` events go out at `rate_per_s`; a third of the way in the fault
strikes (or, with `every_s`, a fault every `every_s` seconds, the given ones in turn). The load goes on
meanwhile: through a broker outage the sender retries each event until the broker has it. Each fault
ends when what it broke is back; from then every service's /ready must answer 200 within 30 s.
Afterwards every `microgrid.cycle_completed` of the run is read back and matched to its input by
correlation id: exactly one per input, none lost, none duplicated, no allocation above its effective
limit. Dead letters written during the run are counted (poison inputs are expected there, nothing else).

`FAULTS` act on the services and the inputs only, so a run can share a stack with others: `service-kill`
(SIGKILL a random service, restart it), `duplicate` (one event id sent twice), `poison` (1 % malformed
and oversized inputs), `none` (baseline). `STACK_FAULTS` act on Kafka, Postgres and Redis and run only on
a stack of the run's own (simulator/chaos_stack.py): `kafka-kill` (SIGKILL, restart), `kafka-stop`
(SIGSTOP 10 s), `postgres-stop` (SIGSTOP 20 s, the postmaster and its backends), `postgres-crash`
(SIGKILL them all, down 60 s, restart), `service-kills` (a random service SIGKILLed every 20 +- 10 s for
30 s), `redis-kill` (SIGKILL, down 5 s, restart). What each does to the system: docs/operations.md.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import statistics
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from contracts.events import CycleCompleted
from contracts.topics import dead_letter_topic
from libs.platform.messaging.kafka import client_options
from libs.platform.messaging.topics_admin import CONSUMER_GROUPS, provision
from libs.platform.settings import PlatformSettings
from libs.platform.signing_keys import SECRET_ENV, SECRET_FILE_ENV, configured_secret, local_key_file
from simulator.actors import legacy
from simulator.chaos_stack import OwnStack
from simulator.clock import ScenarioClock, wall_anchor
from simulator.runner import ScenarioRun
from simulator.scenario import load_scenario
from simulator.service_processes import ServiceProcesses
from simulator.transport import LiveTransport, SimulatorSettings
from tools.processes import port_open
from tools.run_cli import SERVICES

# Faults on the services and the inputs only: safe on a shared stack.
FAULTS = ("none", "service-kill", "duplicate", "poison")
# Faults on Kafka, Postgres and Redis: only on a stack of the run's own (simulator/chaos_stack.py).
STACK_FAULTS = ("kafka-kill", "kafka-stop", "postgres-stop", "postgres-crash", "service-kills", "redis-kill")
# Opt-in: `broker-kill` needs a stack of three brokers of the run's own (`OwnStack(brokers=3)`);
# `replica-kill` runs a second replica of one service beside the first, and SIGKILLs it;
# `broker-and-replica-kill` runs a second replica of balancing on such a stack, and SIGKILLs it and one
# broker at the same moment (issue 13: the partitions, the relay lock and the group's coordinator may all
# move at once).
CLUSTER_FAULTS = ("broker-kill", "replica-kill", "broker-and-replica-kill")
# Faults that need a stack of three brokers of the run's own, and those that need a second replica.
BROKER_FAULTS = ("broker-kill", "broker-and-replica-kill")
REPLICA_FAULTS = ("replica-kill", "broker-and-replica-kill")
ALL_FAULTS = FAULTS + STACK_FAULTS + CLUSTER_FAULTS
# How long each fault keeps its component down; a kill's restart time comes on top.
OUTAGE_S = {"kafka-kill": 0.0, "kafka-stop": 10.0, "postgres-stop": 20.0, "postgres-crash": 60.0, "redis-kill": 5.0,
            "broker-kill": 20.0, "broker-and-replica-kill": 20.0}
SERVICE_KILLS_WINDOW_S = 30.0
DRAIN_TIMEOUT_S = 300.0  # after the last fault recovered, for every input's cycle to come out
# ... and on while cycles still come out (a backlog the run built up drains at the system's pace): an input is
# lost only if its cycle has not come once the output went quiet for DRAIN_QUIET_S, or at the hard cap.
DRAIN_QUIET_S = 60.0
DRAIN_HARD_CAP_S = 3600.0
SETUP_SCENARIO = "compat-legacy-event"  # its depot and setup step: one feeder circuit, known to the adapter
LEGACY_TOPIC = "load_balancer.rebalance_requested"
CYCLES_TOPIC = "microgrid.cycle_completed"
READY_WITHIN_S = 30.0


@dataclass
class FaultRun:
    fault: str
    sent: int = 0
    once: int = 0
    lost: int = 0
    duplicated: int = 0
    resent: int = 0  # copies of a cycle already counted (same event id): dropped by every consumer's inbox
    dead_lettered: int = 0
    poison: int = 0
    max_stall_s: float = 0.0
    down_s: float = 0.0  # the longest fault: from its strike until what it broke was back
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    ready_after_s: float | None = None
    injected: list[str] = field(default_factory=list)
    over_limit: list[str] = field(default_factory=list)
    not_ready: list[str] = field(default_factory=list)  # the last /ready answers that were not 200

    @property
    def passed(self) -> bool:
        ready = self.ready_after_s is None or self.ready_after_s <= READY_WITHIN_S
        return self.lost == 0 and self.duplicated == 0 and not self.over_limit and ready and (
            self.dead_lettered <= self.poison
        )

    def row(self) -> str:
        ready = "-" if self.ready_after_s is None else f"{self.ready_after_s:.1f}"
        return (f"{self.fault:<23} {self.sent:>5} {self.once:>5} {self.lost:>5} {self.duplicated:>5} {self.resent:>6} "
                f"{self.dead_lettered:>6} {self.down_s:>7.1f} {self.max_stall_s:>8.1f} {self.p50_ms:>7.0f} "
                f"{self.p99_ms:>7.0f} {ready:>8}")


HEADER = (f"{'run':<23} {'sent':>5} {'once':>5} {'lost':>5} {'dup':>5} {'resent':>6} {'dlq':>6} {'down s':>7} "
          f"{'stall s':>8} {'p50 ms':>7} {'p99 ms':>7} {'ready s':>8}")


async def _end_offsets(settings: SimulatorSettings, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # noqa: SLF001 - as LiveTransport: no public call
        partitions = [TopicPartition(settings.topic(t), p) for t in topics
                      for p in sorted(consumer.partitions_for_topic(settings.topic(t)) or ())]
        return dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def _read_from(settings: SimulatorSettings, starts: dict[TopicPartition, int], until: float,
                     done: object = None, quiet_s: float | None = None) -> list:
    """Records after `starts` until the deadline, or until `done(records)` says enough; with `quiet_s`, the
    deadline moves on while records keep coming (a backlog still draining is slow, not lost) and the read
    ends once none came for `quiet_s`, or at the hard cap."""
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False)
    await consumer.start()
    records: list = []
    try:
        consumer.assign(list(starts))
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
        last_record = time.monotonic()
        while time.monotonic() < until or (
            quiet_s is not None and time.monotonic() - last_record < quiet_s
            and time.monotonic() < until + DRAIN_HARD_CAP_S
        ):
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
                last_record = time.monotonic()
            if done is not None and done(records):  # type: ignore[operator]
                break
    finally:
        await consumer.stop()
    return records


async def _all_ready(processes: ServiceProcesses, timeout_s: float, not_ready: list[str]) -> float | None:
    """Seconds until every service's /ready answers 200; None past the timeout (`not_ready` says why)."""
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=3.0) as client:
        while time.monotonic() - started < timeout_s:
            not_ready.clear()
            for service in processes.services:
                try:
                    answer = await client.get(f"{processes.url(service)}/ready")
                    if answer.status_code != 200:
                        not_ready.append(f"{service}: {answer.text[:300]}")
                except httpx.HTTPError as exc:
                    not_ready.append(f"{service}: {exc!r}")
            if not not_ready:
                return time.monotonic() - started
            await asyncio.sleep(0.25)
    return None


class _Injector:
    """Injects faults into the running system and times the way back: each fault ends when what it broke
    is back (signal undone, process restarted), then every service must answer /ready 200 within 30 s."""

    def __init__(self, processes: ServiceProcesses, stack: OwnStack | None, rng: random.Random,
                 result: FaultRun) -> None:
        self.processes, self.stack, self.rng, self.result = processes, stack, rng, result
        self.poison = False
        self.duplicate_next = False
        self.replica: ServiceProcesses | None = None

    async def inject(self, fault: str) -> None:
        if fault in (*STACK_FAULTS, *BROKER_FAULTS) and self.stack is None:
            raise ValueError(f"{fault} needs a stack of the run's own (OwnStack): never the shared one")
        if fault in BROKER_FAULTS and self.stack is not None and self.stack.brokers < 3:
            raise ValueError(f"{fault} needs a stack of three brokers: OwnStack(brokers=3)")
        self.result.injected.append(fault)
        if fault == "duplicate":
            self.duplicate_next = True
            return
        if fault == "poison":
            self.poison = True
            return
        if fault == "none":
            return
        started = time.monotonic()
        await getattr(self, "_" + fault.replace("-", "_"))()
        self.result.down_s = max(self.result.down_s, time.monotonic() - started)
        ready = await _all_ready(self.processes, READY_WITHIN_S * 2, self.result.not_ready)
        worst = self.result.ready_after_s
        self.result.ready_after_s = (READY_WITHIN_S * 2 + 1 if ready is None else
                                     max(ready, worst if worst is not None else 0.0))

    async def _service_kill(self) -> None:
        victim = self.rng.choice(self.processes.services)
        pid = self.processes.pid(victim)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(_restart_when_dead, self.processes, victim)

    async def _service_kills(self) -> None:
        """A random service SIGKILLed (and restarted) every 20 +- 10 s, for SERVICE_KILLS_WINDOW_S."""
        started = time.monotonic()
        while True:
            await self._service_kill()
            pause = self.rng.uniform(10.0, 30.0)
            if time.monotonic() + pause - started > SERVICE_KILLS_WINDOW_S:
                return
            await asyncio.sleep(pause)

    async def start_replica(self, run_dir: Path, service: str | None = None) -> None:
        """A second process of one service (`service`, else a random one) in the same consumer group: Kafka
        divides its partitions."""
        service = service or self.rng.choice(self.processes.services)
        self.replica = ServiceProcesses(run_dir=run_dir, ports={service: _free_port()}, env=self.processes.env,
                                        services=(service,))
        await asyncio.to_thread(self.replica.start)

    async def stop_replica(self) -> None:
        if self.replica is not None:
            await asyncio.to_thread(self.replica.stop)

    async def _replica_kill(self) -> None:
        """SIGKILL the second replica; the first takes its partitions (and the relay lock) over."""
        assert self.replica is not None, "start_replica() first"
        service = self.replica.services[0]
        pid = self.replica.pid(service)
        if pid is None:  # a fault that strikes nothing would pass as one survived
            raise RuntimeError(f"the second replica of {service} is not running: nothing to kill")
        os.kill(pid, signal.SIGKILL)

    async def _broker_kill(self, outage: str = "broker-kill") -> None:
        """One broker of three SIGKILLed (not the first, the bootstrap's head), down, then restarted."""
        assert self.stack is not None
        victim = self.stack.kafka_pids()[1:2]
        await asyncio.to_thread(self.stack.kill, "kafka", victim)
        await asyncio.sleep(OUTAGE_S[outage])
        await self._restart()

    async def _broker_and_replica_kill(self) -> None:
        """The second replica and one broker of three SIGKILLed together; the broker restarted after its
        outage, the replica not: the first replica takes over its partitions meanwhile."""
        await self._replica_kill()
        await self._broker_kill("broker-and-replica-kill")

    async def _restart(self) -> None:
        assert self.stack is not None
        await asyncio.to_thread(self.stack.up)

    async def _pause(self, component: str, seconds: float) -> None:
        assert self.stack is not None
        stopped = self.stack.signal(component, signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.stack.signal(component, signal.SIGCONT, stopped)

    async def _crash(self, component: str, down_s: float) -> None:
        assert self.stack is not None
        await asyncio.to_thread(self.stack.kill, component)
        await asyncio.sleep(down_s)
        await self._restart()

    async def _kafka_kill(self) -> None:
        await self._crash("kafka", OUTAGE_S["kafka-kill"])

    async def _kafka_stop(self) -> None:
        await self._pause("kafka", OUTAGE_S["kafka-stop"])

    async def _postgres_stop(self) -> None:
        await self._pause("postgres", OUTAGE_S["postgres-stop"])

    async def _postgres_crash(self) -> None:
        await self._crash("postgres", OUTAGE_S["postgres-crash"])

    async def _redis_kill(self) -> None:
        await self._crash("redis", OUTAGE_S["redis-kill"])


async def _send(producer: AIOKafkaProducer, topic: str, value: bytes, key: bytes | None) -> None:
    """Until the broker has it: through a broker outage the legacy side keeps trying, as a client would.
    A send that timed out may still have landed; sent again it carries the same event id (the inbox's job)."""
    while True:
        try:
            await producer.send_and_wait(topic, value, key=key)
            return
        except KafkaError:
            await asyncio.sleep(0.5)


async def run_fault(settings: SimulatorSettings, processes: ServiceProcesses, *, fault: str, events: int,
                    rate_per_s: float, seed: int = 7, stack: OwnStack | None = None) -> FaultRun:
    """One fault, struck a third of the way into the load."""
    return await run_faults(settings, processes, faults=[fault], events=events, rate_per_s=rate_per_s,
                            seed=seed, stack=stack)


async def run_faults(settings: SimulatorSettings, processes: ServiceProcesses, *, faults: list[str], events: int,
                     rate_per_s: float, seed: int = 7, stack: OwnStack | None = None,
                     every_s: float | None = None) -> FaultRun:
    """One run of steady load: with `every_s`, the faults in turn every `every_s` seconds (each one
    starts when the one before has recovered); without it, the one fault a third of the way in."""
    for fault in faults:
        if fault not in ALL_FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {', '.join(ALL_FAULTS)}")
    rng = random.Random(seed)
    result = FaultRun(faults[0] if len(faults) == 1 and every_s is None else f"every {every_s:g}s")
    scenario = load_scenario(SETUP_SCENARIO)
    scenario = scenario.model_copy(update={"steps": scenario.steps[:1]})
    async with LiveTransport(settings) as transport:
        setup = ScenarioRun(scenario, transport, seed=seed + rng.randrange(10**6), anchor=wall_anchor())
        played = await setup.play()
        if not played.passed:
            raise RuntimeError(f"depot setup failed: {played.error or played.failures}")
    state = setup.state
    circuit = state.layout.managed_grid_connections()[0].circuit
    assert circuit is not None
    letters_topics = [dead_letter_topic(g) for g in CONSUMER_GROUPS]
    starts = await _end_offsets(settings, [CYCLES_TOPIC, *letters_topics])
    injector = _Injector(processes, stack, rng, result)
    if set(faults) & set(REPLICA_FAULTS):
        # with a broker down too, the replica is balancing's: its cycles are what the run counts
        service = "balancing" if "broker-and-replica-kill" in faults else None
        await injector.start_replica(processes.run_dir / f"replica-{seed}", service)
    strike = asyncio.Event()
    sending_done = asyncio.Event()

    async def schedule() -> None:
        if every_s is None:
            await strike.wait()
            await injector.inject(faults[0])
            return
        k = 0
        next_at = time.monotonic() + every_s
        while not sending_done.is_set():
            try:
                await asyncio.wait_for(sending_done.wait(), max(0.0, next_at - time.monotonic()))
                return
            except TimeoutError:
                pass
            await injector.inject(faults[k % len(faults)])
            k += 1
            next_at = max(next_at + every_s, time.monotonic())

    producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True)
    await producer.start()
    sent_at: dict[str, float] = {}
    faults_task = asyncio.create_task(schedule())
    try:
        clock = ScenarioClock(wall_anchor())
        topic = settings.topic(LEGACY_TOPIC)
        t0 = time.monotonic()
        for i in range(events):
            await asyncio.sleep(max(0.0, t0 + i / rate_per_s - time.monotonic()))  # a steady rate
            if faults_task.done():
                faults_task.result()  # an injection that failed ends the run with its error
            if i == events // 3:
                strike.set()
                await asyncio.sleep(0)
            correlation = f"chaos-{result.fault.replace(' ', '')}-{seed}-{i}"
            publication = legacy.rebalance_event(state, clock, circuit, correlation_id=correlation)
            value, key = publication.message.to_bytes(), publication.key()
            await _send(producer, topic, value, key)
            sent_at[correlation] = time.time()
            if injector.duplicate_next:
                injector.duplicate_next = False
                await _send(producer, topic, value, key)  # the very same event id again
            if injector.poison and (rng.random() < 0.01 or result.poison == 0):
                poison = b'{"event_type": "load_balancer.rebalance_requested", "payload": {"x": "' + (
                    b"y" * (900_000 if result.poison % 2 else 10)) + b'"}}'
                await _send(producer, topic, poison, key)
                result.poison += 1
        result.sent = len(sent_at)
        sending_done.set()
        await faults_task  # the last fault recovers before the outputs are counted
    finally:
        if not faults_task.done():
            faults_task.cancel()
        await producer.stop()
        await injector.stop_replica()

    wanted = set(sent_at)

    def complete(records: list) -> bool:
        return wanted <= {c for r in records if r.topic == settings.topic(CYCLES_TOPIC) for c in _correlations(r)}

    if every_s is not None:
        result.fault = f"every {every_s:g}s x{len(result.injected)}"
    records = await _read_from(settings, starts, time.monotonic() + DRAIN_TIMEOUT_S, complete, quiet_s=DRAIN_QUIET_S)
    _count(result, settings, records, sent_at)
    return result


def _restart_when_dead(processes: ServiceProcesses, service: str) -> None:
    """Restart the killed service once it is gone: process and listening port (the port outlives the
    process's command line by a moment while the kernel tears it down)."""
    deadline = time.monotonic() + 10
    while (processes.pid(service) is not None or port_open(processes.ports[service])) and time.monotonic() < deadline:
        time.sleep(0.05)
    processes.start()


def _correlations(record: object) -> set[str]:
    """The ids a cycle answers to: its message's correlation id and its audit's."""
    try:
        cycle = CycleCompleted.model_validate_json(record.value)  # type: ignore[attr-defined]
    except ValueError:
        return set()
    return {cycle.correlation_id, cycle.payload.audit.correlation_id}


def _count(result: FaultRun, settings: SimulatorSettings, records: list, sent_at: dict[str, float]) -> None:
    cycles_topic = settings.topic(CYCLES_TOPIC)
    # The cycles' event ids per input: two ids are two cycles (duplicated); one id on the log twice is the
    # outbox's at-least-once publish (the relay's ack-then-mark-sent cut by a crash), which every consumer's
    # inbox drops: counted apart, as `resent`.
    seen: dict[str, set[str]] = {}
    delays, arrivals = [], []
    for r in records:
        if r.topic != cycles_topic:
            result.dead_lettered += 1
            continue
        message = CycleCompleted.model_validate_json(r.value)
        cycle = message.payload
        mine = _correlations(r) & sent_at.keys()
        if not mine:
            continue
        correlation = mine.pop()
        ids = seen.setdefault(correlation, set())
        if str(message.event_id) in ids:
            result.resent += 1
            continue
        ids.add(str(message.event_id))
        arrivals.append(r.timestamp / 1000)
        if len(ids) == 1:
            delays.append(r.timestamp / 1000 - sent_at[correlation])
        for n in cycle.allocation_summary.by_node:
            if n.effective_limit_watts is not None and n.allocated_watts > n.effective_limit_watts:
                result.over_limit.append(f"{n.node_id}: {n.allocated_watts} W > {n.effective_limit_watts} W")
    result.once = sum(1 for c in sent_at if len(seen.get(c, ())) == 1)
    result.lost = sum(1 for c in sent_at if c not in seen)
    result.duplicated = sum(1 for c in sent_at if len(seen.get(c, ())) > 1)
    arrivals.sort()
    result.max_stall_s = max((b - a for a, b in zip(arrivals, arrivals[1:], strict=False)), default=0.0)
    if delays:
        delays.sort()
        result.p50_ms = 1000 * statistics.median(delays)
        result.p99_ms = 1000 * delays[min(len(delays) - 1, int(0.99 * len(delays)))]


# Faster hops than production defaults, as the system tests run them.
SERVICE_ENV = {"MGRID_OUTBOX_POLL_INTERVAL_S": "0.1", "MGRID_CONSUMER_BACKOFF_INITIAL_S": "0.05"}


def private_services(run_dir: Path, endpoints: PlatformSettings) -> tuple[ServiceProcesses, SimulatorSettings]:
    """The four services as processes on a fresh topic prefix and free ports (apart from any other run),
    against `endpoints` with its tooling credentials: the shared stack's, or a stack of the run's own
    (each service steps down to its own role and principal from that stack's credentials)."""
    prefix = f"chaos{uuid.uuid4().hex[:8]}."
    ports = {service: _free_port() for service in SERVICES}
    stack_env = {
        "MGRID_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
        "MGRID_KAFKA_SECURITY_PROTOCOL": endpoints.kafka_security_protocol,
        "MGRID_KAFKA_SASL_MECHANISM": endpoints.kafka_sasl_mechanism,
        "MGRID_KAFKA_REPLICATION_FACTOR": str(endpoints.kafka_replication_factor),
        "MGRID_POSTGRES_DSN": endpoints.postgres_dsn,
        "MGRID_REDIS_URL": endpoints.redis_url,
        "MGRID_STACK_DIR": str(endpoints.stack_dir),
        **({"MGRID_KAFKA_SASL_USERNAME": endpoints.kafka_sasl_username} if endpoints.kafka_sasl_username else {}),
        **({"MGRID_KAFKA_SASL_PASSWORD": endpoints.kafka_sasl_password} if endpoints.kafka_sasl_password else {}),
        **({"MGRID_POSTGRES_OWNER_DSN": endpoints.postgres_owner_dsn} if endpoints.postgres_owner_dsn else {}),
    }
    if configured_secret() is not None and not os.environ.get(SECRET_ENV) and not os.environ.get(SECRET_FILE_ENV):
        # The key this process issues tokens with, whichever stack dir the services read credentials from.
        stack_env[SECRET_FILE_ENV] = str(local_key_file())
    env = {**stack_env, "MGRID_TOPIC_PREFIX": prefix, **SERVICE_ENV}
    processes = ServiceProcesses(run_dir=run_dir, ports=ports, env=env)
    settings = SimulatorSettings(
        **endpoints.model_dump(exclude={"topic_prefix"}),
        topic_prefix=prefix,
        **{f"{service}_url": processes.url(service) for service in SERVICES},
    )
    return processes, settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_suite(settings: SimulatorSettings, processes: ServiceProcesses, *, faults: list[str], events: int,
                    rate_per_s: float, seed: int = 7, stack: OwnStack | None = None,
                    every_s: float | None = None) -> list[FaultRun]:
    """Each fault once, in order, on the running services (or, with `every_s`, one run with a fault every
    `every_s` seconds); the topics are created first."""
    await provision(settings)  # topics and their ACLs for this run
    if every_s is not None:
        return [await run_faults(settings, processes, faults=faults, events=events, rate_per_s=rate_per_s,
                                 seed=seed, stack=stack, every_s=every_s)]
    return [await run_fault(settings, processes, fault=f, events=events, rate_per_s=rate_per_s, seed=seed + i,
                            stack=stack) for i, f in enumerate(faults)]
