"""The fault suite's engine (issue 15): steady legacy load on the four services as processes, one fault
injected, then every output read from the start and counted per input.

One run: a depot is set up through the simulator (its `setup` step), then `events` distinct legacy
`load_balancer.rebalance_requested` events go out at `rate_per_s`; a third of the way in the fault
strikes. Afterwards every `microgrid.cycle_completed` of the run is read back and matched to its input by
correlation id: exactly one per input, none lost, none duplicated, no allocation above its effective
limit. Dead letters written during the run are counted (poison inputs are expected there, nothing else).

Faults here act on the services and the inputs only, so a run can share a stack with others:
`service-kill` (SIGKILL a random service, restart it, time until every /ready answers 200 again),
`duplicate` (one event id sent twice), `poison` (1 % malformed and oversized inputs), `none` (baseline).
Faults on Kafka, Postgres and Redis need a stack of the run's own (not built yet: see docs/operations.md).
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

from contracts.events import CycleCompleted
from contracts.topics import dead_letter_topic
from libs.platform.messaging.kafka import client_options
from libs.platform.messaging.topics_admin import CONSUMER_GROUPS, provision
from libs.platform.settings import PlatformSettings
from simulator.actors import legacy
from simulator.clock import ScenarioClock, wall_anchor
from simulator.runner import ScenarioRun
from simulator.scenario import load_scenario
from simulator.service_processes import ServiceProcesses
from simulator.transport import LiveTransport, SimulatorSettings
from tools.processes import port_open
from tools.run_cli import SERVICES

FAULTS = ("none", "service-kill", "duplicate", "poison")
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
    dead_lettered: int = 0
    poison: int = 0
    max_stall_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    ready_after_s: float | None = None
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
        return (f"{self.fault:<13} {self.sent:>5} {self.once:>5} {self.lost:>5} {self.duplicated:>5} "
                f"{self.dead_lettered:>6} {self.max_stall_s:>8.1f} {self.p50_ms:>7.0f} {self.p99_ms:>7.0f} {ready:>8}")


HEADER = (f"{'run':<13} {'sent':>5} {'once':>5} {'lost':>5} {'dup':>5} {'dlq':>6} {'stall s':>8} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'ready s':>8}")


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
                     done: object = None) -> list:
    """Records after `starts` until the deadline, or until `done(records)` says enough."""
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False)
    await consumer.start()
    records: list = []
    try:
        consumer.assign(list(starts))
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
        while time.monotonic() < until:
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
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


async def run_fault(settings: SimulatorSettings, processes: ServiceProcesses, *, fault: str, events: int,
                    rate_per_s: float, seed: int = 7) -> FaultRun:
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")
    rng = random.Random(seed)
    result = FaultRun(fault)
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
    producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True)
    await producer.start()
    sent_at: dict[str, float] = {}
    try:
        clock = ScenarioClock(wall_anchor())
        strike_at = events // 3
        t0 = time.monotonic()
        for i in range(events):
            await asyncio.sleep(max(0.0, t0 + i / rate_per_s - time.monotonic()))  # a steady rate
            correlation = f"chaos-{fault}-{seed}-{i}"
            publication = legacy.rebalance_event(state, clock, circuit, correlation_id=correlation)
            value, key = publication.message.to_bytes(), publication.key()
            topic = settings.topic(LEGACY_TOPIC)
            await producer.send_and_wait(topic, value, key=key)
            sent_at[correlation] = time.time()
            if fault == "duplicate" and i == strike_at:
                await producer.send_and_wait(topic, value, key=key)  # the very same event id again
            if fault == "poison" and (rng.random() < 0.01 or i == strike_at):
                poison = b'{"event_type": "load_balancer.rebalance_requested", "payload": {"x": "' + (
                    b"y" * (900_000 if result.poison % 2 else 10)) + b'"}}'
                await producer.send_and_wait(topic, poison, key=key)
                result.poison += 1
            if fault == "service-kill" and i == strike_at:
                victim = rng.choice(processes.services)
                pid = processes.pid(victim)
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                await asyncio.to_thread(_restart_when_dead, processes, victim)
                result.ready_after_s = await _all_ready(processes, READY_WITHIN_S * 2, result.not_ready)
        result.sent = len(sent_at)
    finally:
        await producer.stop()

    wanted = set(sent_at)

    def complete(records: list) -> bool:
        return wanted <= {c for r in records if r.topic == settings.topic(CYCLES_TOPIC) for c in _correlations(r)}

    records = await _read_from(settings, starts, time.monotonic() + 120, complete)
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
    seen: dict[str, int] = {}
    delays, arrivals = [], []
    for r in records:
        if r.topic != cycles_topic:
            result.dead_lettered += 1
            continue
        cycle = CycleCompleted.model_validate_json(r.value).payload
        mine = _correlations(r) & sent_at.keys()
        if not mine:
            continue
        correlation = mine.pop()
        seen[correlation] = seen.get(correlation, 0) + 1
        arrivals.append(r.timestamp / 1000)
        if seen[correlation] == 1:
            delays.append(r.timestamp / 1000 - sent_at[correlation])
        for n in cycle.allocation_summary.by_node:
            if n.effective_limit_watts is not None and n.allocated_watts > n.effective_limit_watts:
                result.over_limit.append(f"{n.node_id}: {n.allocated_watts} W > {n.effective_limit_watts} W")
    result.once = sum(1 for c in sent_at if seen.get(c) == 1)
    result.lost = sum(1 for c in sent_at if c not in seen)
    result.duplicated = sum(1 for c in sent_at if seen.get(c, 0) > 1)
    arrivals.sort()
    result.max_stall_s = max((b - a for a, b in zip(arrivals, arrivals[1:], strict=False)), default=0.0)
    if delays:
        delays.sort()
        result.p50_ms = 1000 * statistics.median(delays)
        result.p99_ms = 1000 * delays[min(len(delays) - 1, int(0.99 * len(delays)))]


# Faster hops than production defaults, as the system tests run them.
SERVICE_ENV = {"MGRID_OUTBOX_POLL_INTERVAL_S": "0.1", "MGRID_CONSUMER_BACKOFF_INITIAL_S": "0.05"}


def private_services(run_dir: Path, endpoints: PlatformSettings) -> tuple[ServiceProcesses, SimulatorSettings]:
    """The four services as processes on a fresh topic prefix and free ports (apart from any other run)."""
    prefix = f"chaos{uuid.uuid4().hex[:8]}."
    ports = {service: _free_port() for service in SERVICES}
    env = {
        "MGRID_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
        "MGRID_POSTGRES_DSN": endpoints.postgres_dsn,
        "MGRID_REDIS_URL": endpoints.redis_url,
        "MGRID_TOPIC_PREFIX": prefix,
        **SERVICE_ENV,
    }
    processes = ServiceProcesses(run_dir=run_dir, ports=ports, env=env)
    settings = SimulatorSettings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        postgres_dsn=endpoints.postgres_dsn,
        redis_url=endpoints.redis_url,
        topic_prefix=prefix,
        **{f"{service}_url": processes.url(service) for service in SERVICES},
    )
    return processes, settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_suite(settings: SimulatorSettings, processes: ServiceProcesses, *, faults: list[str], events: int,
                    rate_per_s: float, seed: int = 7) -> list[FaultRun]:
    """Each fault once, in order, on the running services; the topics are created first."""
    await provision(settings)  # topics and their ACLs for this run
    return [await run_fault(settings, processes, fault=f, events=events, rate_per_s=rate_per_s, seed=seed + i)
            for i, f in enumerate(faults)]
