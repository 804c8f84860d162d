"""The outbox relay on this machine: delay from a unit of work's commit to the broker's acknowledgement.

Not a test: prints figures with the machine and settings. Needs the local stack (`mgrid stack up`),
or endpoints in MGRID_KAFKA_BOOTSTRAP / MGRID_POSTGRES_DSN. Run from the repo root:

    .venv/bin/python benchmarks/relay_delay.py [--samples 200] [--backlog 5000]

Figures (the relay runs in this process on its own topic prefix and schema, dropped afterwards):
- bare hop, the baseline from the same run: one `send_and_wait` of a 1 kB record at a time;
- relay delay, one event at a time: the writer's commit returned -> the relay's acknowledgement
  callback for that row (NOTIFY at commit, claim, send, ack, mark sent);
- backlog drain: `--backlog` events committed (100 per transaction) while the relay is stopped; events/s
  from the relay's start to the last acknowledgement (what a relay catches up with after an outage);
- a cycle's events, written and relayed: a unit shaped like a curtailed depot's cycle (one ~130 kB event
  and 110 of ~1 kB) committed, then one `publish_batch`; the commit's wall time, the pass's CPU time
  (this process) and wall time, and the CPU of the benchmark's Postgres backends over both. Three ways
  in turn, `--passes` each, medians: a row per event read back from the table (a unit committed without
  the hand-off, as another replica's would be), a row per event taken from the in-process hand-off
  (issue 13), and the events as one row, a pack (`outbox_pack`, what a balancing cycle writes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts.events import TopologyUpdated, TopologyUpdatedPayload  # noqa: E402
from contracts.records import MicrogridNodeRecord  # noqa: E402
from libs.platform.db import create_pool, migrate  # noqa: E402
from libs.platform.messaging.kafka import create_producer  # noqa: E402
from libs.platform.messaging.relay import OutboxRelay  # noqa: E402
from libs.platform.messaging.topics_admin import ensure_topics  # noqa: E402
from libs.platform.messaging.unit_of_work import OutboxHandoff, unit_of_work  # noqa: E402
from libs.platform.settings import PlatformSettings  # noqa: E402

TOPIC = "microgrid.topology_updated"


def event(nodes: int = 3) -> TopologyUpdated:
    """About 1 kB on the wire with the default 3 nodes."""
    mg = uuid.uuid4()
    node_list = [
        MicrogridNodeRecord(node_id=uuid.uuid4(), microgrid_id=mg, name=f"N{i}", node_type="GRID_CONNECTION")
        for i in range(nodes)
    ]
    payload = TopologyUpdatedPayload(microgrid_id=mg, depot_id=uuid.uuid4(), version=1, updated_by="bench",
                                     nodes=node_list)
    return TopologyUpdated.create(payload, producer="bench", occurred_at=datetime.now(UTC))


def backends_cpu_s(pids: list[int]) -> float:
    """utime + stime of these processes (the benchmark's Postgres backends), from /proc."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> None:
    base = PlatformSettings()
    s = base.model_copy(update={"topic_prefix": f"bench{uuid.uuid4().hex[:6]}."})
    await ensure_topics(s)
    schema = s.topic_prefix.replace(".", "_") + "relay"
    # Named, so the pass can count its Postgres backends' CPU (asyncpg sends unknown DSN parameters as settings).
    dsn = f"{s.postgres_dsn}{'&' if '?' in s.postgres_dsn else '?'}application_name=relay-delay-bench"
    pool = await create_pool(dsn, schema)
    await migrate(pool, schema)
    producer = create_producer(s, "relay-bench")
    await producer.start()
    acked: dict[str, float] = {}
    woken = asyncio.Event()

    def on_published(*, seconds: float, topic: str) -> None:  # noqa: ARG001
        acked["last"] = time.perf_counter()
        woken.set()

    relay = OutboxRelay(pool=pool, producer=producer, settings=s, schema=schema, on_published=on_published)
    try:
        # bare hop baseline
        value = event().to_bytes()
        bare = []
        for _ in range(args.samples):
            t0 = time.perf_counter()
            await producer.send_and_wait(s.topic(TOPIC), value, key=b"k")
            bare.append(time.perf_counter() - t0)

        await relay.start()
        # one event at a time
        single = []
        for _ in range(args.samples):
            woken.clear()
            async with unit_of_work(pool, s) as uow:
                await uow.publish(event())
            t0 = time.perf_counter()
            await asyncio.wait_for(woken.wait(), 30)
            single.append(acked["last"] - t0)

        # a backlog drained: rows committed while the relay is stopped, then the relay started
        await relay.stop()
        for start in range(0, args.backlog, 100):
            async with unit_of_work(pool, s) as uow:
                await uow.publish_all([event() for _ in range(min(100, args.backlog - start))])
        relay = OutboxRelay(pool=pool, producer=producer, settings=s, schema=schema, on_published=on_published)
        t0 = time.perf_counter()
        await relay.start()
        deadline = time.monotonic() + 120
        # (counted in rows: the acknowledgement callback comes once per topic and batch, not per row)
        while relay.published_total < args.backlog and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        drain_s = acked["last"] - t0
        relay_drained = relay.published_total
        drained = relay_drained / drain_s
        await relay.stop()

        # a cycle's events, written and relayed: a row each read back, a row each handed over, one pack
        handoff = OutboxHandoff()
        relay = OutboxRelay(pool=pool, producer=producer, settings=s, schema=schema, handoff=handoff)
        cycle_rows = [event(nodes=550), *(event() for _ in range(110))]
        cycle_bytes = sum(len(e.to_bytes()) for e in cycle_rows)
        backends = [r["pid"] for r in await pool.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'relay-delay-bench'")]
        modes = {"rows, read back": (None, False), "rows, handed over": (handoff, False), "one pack": (handoff, True)}
        passes: dict[str, list[tuple[float, float, float, float]]] = {mode: [] for mode in modes}
        for _ in range(args.passes):
            for mode, (handed, packed) in modes.items():
                b0, w0 = backends_cpu_s(backends), time.perf_counter()
                async with unit_of_work(pool, s, handoff=handed) as uow:
                    await uow.publish_all(cycle_rows, packed=packed)
                c0, t0 = time.process_time(), time.perf_counter()
                done = await relay.publish_batch()
                passes[mode].append((t0 - w0, time.process_time() - c0, time.perf_counter() - t0,
                                     backends_cpu_s(backends) - b0))
                assert done.sent == len(cycle_rows), done

        print(f"machine: {platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}, "
              f"load {os.getloadavg()[0]:.2f}")
        print(f"settings: outbox_batch_size={s.outbox_batch_size} poll_interval_s={s.outbox_poll_interval_s} "
              f"linger_ms={producer._message_accumulator._linger_time * 1000:.0f} "
              f"max_batch_size={producer._message_accumulator._batch_size}")
        print(f"bare hop (send_and_wait 1 kB, {args.samples}): p50 {ms(bare, .5):.2f} ms, p99 {ms(bare, .99):.2f} ms")
        print(f"relay delay, one at a time (commit -> ack, {args.samples}): p50 {ms(single, .5):.2f} ms, "
              f"p95 {ms(single, .95):.2f} ms, p99 {ms(single, .99):.2f} ms, max {1000 * max(single):.1f} ms")
        print(f"backlog drain: {relay_drained}/{args.backlog} events in {drain_s:.2f} s = {drained:.0f} events/s")
        print(f"a cycle's events written and relayed ({len(cycle_rows)} events, {cycle_bytes / 1024:.0f} KiB, "
              f"{args.passes} passes each way, medians; Postgres CPU: the mean, its clock ticks are 10 ms):")
        first = passes[next(iter(passes))]
        base_cpu = statistics.median(v[1] for v in first) * 1000
        base_pg = statistics.mean(v[3] for v in first) * 1000
        for mode, values in passes.items():
            commit, cpu, wall = (statistics.median(v[i] for v in values) * 1000 for i in range(3))
            pg = statistics.mean(v[3] for v in values) * 1000
            print(f"  {mode:18s} commit {commit:6.2f} ms wall; relay pass {cpu:5.2f} ms CPU ({cpu / base_cpu:.2f}x), "
                  f"{wall:6.2f} ms wall; Postgres backends {pg:5.2f} ms CPU ({pg / max(base_pg, 1e-9):.2f}x)")
        print(f"relay_delay: p50_ms={ms(single, .5):.2f} p99_ms={ms(single, .99):.2f} "
              f"drain_events_per_s={drained:.0f} bare_hop_p50_ms={ms(bare, .5):.2f}")
    finally:
        await relay.stop()
        await producer.stop()
        await pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--backlog", type=int, default=5000)
    parser.add_argument("--passes", type=int, default=30, help="relay passes over a cycle's rows, per mode")
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
