"""The balancing service end to end on this machine: cycles per second and request -> cycle_completed latency.

Not a test: prints figures with the machine and settings. Needs the local stack (`mgrid stack up`).
Run from the repo root:

    .venv/bin/python benchmarks/balancing_service.py [--cycles 200] [--latency-samples 50]

The depot: 2 managed grid connections (feeder circuits) -> 5 circuits each -> 10 charge points each
-> 2 connectors each: 200 connectors on 4 levels, caps on every grid connection, circuit and charge
point, an aggregate cap, fresh meter readings on grid connections and circuits, every connector
asking 7-22 kW (fixed seed). The service runs in this process (consumer, relay, HTTP app) against
the real Kafka and Postgres, on its own topic prefix and schema, dropped afterwards.

Figures:
- throughput: N rebalance_requested events published at once for the one microgrid (cycles are one
  at a time per microgrid), from the first send to the last cycle_completed read back from Kafka;
- latency, one request at a time: rebalance_requested sent -> its cycle_completed read from Kafka;
  and the operator path, POST /rebalance -> 200 with the cycle result (outbox, relay, Kafka,
  consumer, cycle, poll);
- the cycle transaction itself: stored ended_at - started_at (read models, guard, domain cycle,
  inputs and output stored, events to the outbox).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg  # noqa: E402
from aiokafka import AIOKafkaConsumer  # noqa: E402

from contracts.enums import AssetType, NodeType  # noqa: E402
from contracts.events import CycleCompleted  # noqa: E402
from libs.platform.messaging.kafka import (
    client_options,  # noqa: E402
    create_producer,  # noqa: E402
)
from libs.platform.settings import PlatformSettings  # noqa: E402
from services.balancing.adapters import read_models  # noqa: E402
from services.balancing.bootstrap import DEFINITION  # noqa: E402
from services.balancing.settings import BalancingSettings  # noqa: E402
from tests.integration.balancing.depot import Depot  # noqa: E402
from tests.support import publish_as_owner  # noqa: E402
from tests.support_services import auth_headers, running_service  # noqa: E402


def realistic_depot(seed: int = 11) -> tuple[Depot, dict, dict]:
    rng = random.Random(seed)
    depot = Depot(aggregate_cap_watts=900_000)
    meters: dict = {}
    demands: dict = {}
    for g in range(2):
        gc = depot.grid_connection(f"GC{g}", cap_watts=600_000, circuit=(650_000, 250_000))
        meters[gc] = rng.randint(5_000, 20_000)
        for c in range(5):
            circuit = depot.add(f"C{g}.{c}", NodeType.CIRCUIT, gc, cap_watts=150_000, asset=AssetType.CIRCUIT)
            meters[circuit] = rng.randint(0, 5_000)
            for p in range(10):
                cp = depot.add(
                    f"CP{g}.{c}.{p}", NodeType.CHARGE_POINT, circuit, cap_watts=22_000, asset=AssetType.CHARGE_POINT
                )
                for k in range(2):
                    demands[depot.connector(f"K{g}.{c}.{p}.{k}", cp)] = rng.randint(7_000, 22_000)
    return depot, meters, demands


class CompletedWatcher:
    """Reads cycle_completed from the end of the topic and notes when each request key's cycle arrived."""

    def __init__(self, settings: PlatformSettings) -> None:
        self.arrived: dict[str, float] = {}
        self._consumer = AIOKafkaConsumer(
            settings.topic("microgrid.cycle_completed"),
            **client_options(settings),
            auto_offset_reset="latest",
            enable_auto_commit=False,
            group_id=None,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        await self._consumer.seek_to_end()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self._consumer.stop()

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=50)
            now = time.perf_counter()
            for records in batch.values():
                for r in records:
                    key = CycleCompleted.model_validate_json(r.value).payload.audit.request_key
                    if key:
                        self.arrived.setdefault(key, now)

    async def wait(self, keys: list[str], timeout_s: float = 300.0) -> float:
        deadline = time.perf_counter() + timeout_s
        while not all(k in self.arrived for k in keys):
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{sum(k in self.arrived for k in keys)}/{len(keys)} cycles completed")
            await asyncio.sleep(0.005)
        return max(self.arrived[k] for k in keys)


async def applied(pool: object, depot: Depot, connectors: int) -> None:
    """Wait until balancing's read models hold the depot's topology, limits and telemetry."""
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        async with pool.acquire() as conn:  # type: ignore[attr-defined]
            state = await read_models.load_microgrid_state(conn, depot.microgrid_id)
        if state.topology and len(state.node_limits) == len(depot.limits) and len(state.demands) == connectors:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the depot's events were not applied within 60 s")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(values: list[float]) -> str:
    return (
        f"p50 {statistics.median(values) * 1000:7.1f} ms  p95 {pct(values, 0.95) * 1000:7.1f} ms  "
        f"max {max(values) * 1000:7.1f} ms  (n={len(values)})"
    )


async def main(cycles: int, samples: int) -> None:
    logging.disable(logging.INFO)  # per-message consumer logs would drown the figures
    base = BalancingSettings()
    settings = BalancingSettings(**{**base.model_dump(), "topic_prefix": f"bench{uuid.uuid4().hex[:6]}."})
    depot, meters, demands = realistic_depot()
    producer = create_producer(settings, "balancing-bench")
    await producer.start()
    watcher = CompletedWatcher(settings)
    definition = DEFINITION
    reporting: asyncio.Task[None] | None = None
    async with running_service(definition, settings) as svc:
        try:
            now = datetime.now(UTC)
            telemetry = depot.telemetry(now, meters=meters, demands=demands)
            await publish_as_owner(producer, settings, *depot.setup_events(now), telemetry)
            await watcher.start()
            await applied(svc.ctx.pool, depot, len(demands))

            async def telemetry_source() -> None:
                # Meters and chargers report every 5 s, as a live depot does, so readings stay fresh.
                while True:
                    await asyncio.sleep(5)
                    report = depot.telemetry(datetime.now(UTC), meters=meters, demands=demands)
                    await publish_as_owner(producer, settings, report)

            reporting = asyncio.create_task(telemetry_source())
            # Warm up (read models filled, first cycle stored) before timing anything.
            warm = depot.rebalance(datetime.now(UTC))
            await publish_as_owner(producer, settings, warm)
            await watcher.wait([warm.payload.request_key], timeout_s=60)

            # Throughput: a burst for the one microgrid.
            burst = [depot.rebalance(datetime.now(UTC)) for _ in range(cycles)]
            t0 = time.perf_counter()
            for message in burst:
                await publish_as_owner(producer, settings, message)
            last = await watcher.wait([m.payload.request_key for m in burst])
            throughput = cycles / (last - t0)

            # Latency, one at a time, through Kafka.
            kafka_latency = []
            for _ in range(samples):
                message = depot.rebalance(datetime.now(UTC))
                t = time.perf_counter()
                await publish_as_owner(producer, settings, message)
                kafka_latency.append(await watcher.wait([message.payload.request_key]) - t)

            # Latency through the operator's HTTP door.
            http_latency = []
            headers = auth_headers("operator:write")
            for i in range(samples):
                t = time.perf_counter()
                response = await svc.client.post(
                    f"/api/microgrid/{depot.microgrid_id}/rebalance", headers={**headers, "Idempotency-Key": f"b{i}"}
                )
                http_latency.append(time.perf_counter() - t)
                assert response.status_code == 200, response.text

            rows = await svc.ctx.pool.fetch(
                "SELECT extract(epoch FROM ended_at - started_at) AS s, outcome FROM cycles WHERE microgrid_id = $1",
                depot.microgrid_id,
            )
            in_tx = [float(r["s"]) for r in rows]
            outcomes = sorted({r["outcome"] for r in rows})
        finally:
            if reporting is not None:
                reporting.cancel()
            await watcher.stop()
            await producer.stop()
    conn = await asyncpg.connect(settings.postgres_dsn)  # the service is stopped: its schema can go
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{definition.schema(settings)}" CASCADE')
    finally:
        await conn.close()

    print(
        f"machine: {platform.machine()} {platform.processor() or platform.platform()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}"
    )
    print(
        f"depot: {len(depot.nodes)} nodes, {len(demands)} connectors, 4 levels, 2 managed grid connections; "
        f"service in-process (1 consumer, 1 relay), Kafka + Postgres local; outcomes seen: {', '.join(outcomes)}"
    )
    print(f"throughput, one microgrid, {cycles} queued requests: {throughput:7.1f} cycles/s")
    print(f"latency rebalance_requested -> cycle_completed (Kafka, one at a time): {ms(kafka_latency)}")
    print(f"latency POST /rebalance -> 200 with the cycle result:                 {ms(http_latency)}")
    print(f"cycle transaction (stored ended_at - started_at):                    {ms(in_tx)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--latency-samples", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.cycles, args.latency_samples))
