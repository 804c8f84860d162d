"""What the fleet benchmark samples while it runs: CPU time of the processes that do the work (from
/proc), consumer lag of the service groups (committed offsets vs end offsets, through Kafka's admin
API), and the machine it runs on."""

from __future__ import annotations

import asyncio
import os
import platform
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from libs.platform.messaging.kafka import client_options
from libs.platform.settings import PlatformSettings

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# ---- the machine ----------------------------------------------------------------------------------


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in (PROC / "cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(next(x for x in (PROC / "meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        memory = f", {kb / 1024 / 1024:.1f} GiB memory"
    except (OSError, StopIteration, ValueError):
        pass
    load = ", load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    return (f"{os.cpu_count()} cores ({model}){memory}{load}; {platform.system()} {platform.release()}, "
            f"python {platform.python_version()}")


# ---- CPU time from /proc --------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of one process (all its threads), or None when it is gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces: skip past it
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of proc(5)


def runqueue_wait_seconds(pid: int) -> float:
    """Time the process's threads spent runnable but waiting for a CPU (schedstat field 2, all threads):
    on a shared machine, the part of a latency that is other processes' work."""
    total = 0
    for task in (PROC / str(pid) / "task").glob("*"):
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def children(pid: int) -> list[int]:
    found = []
    for task in (PROC / str(pid) / "task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def _socket_inodes_listening(port: int) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(parts[9])
    return inodes


def listening_pid(port: int) -> int | None:
    """The process that listens on a local TCP port (found through its socket's inode)."""
    inodes = {f"socket:[{i}]" for i in _socket_inodes_listening(port)}
    if not inodes:
        return None
    for proc in PROC.iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


# /proc/stat's first line, in order (proc(5)); guest time is already counted in user.
MACHINE_CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def machine_cpu_seconds() -> dict[str, float]:
    """The whole machine's CPU seconds by kind since boot, every core summed. `steal` is time the
    hypervisor gave this machine's cores to other guests: on a shared VM, the capacity a run did not get."""
    try:
        values = (PROC / "stat").read_text().splitlines()[0].split()[1:1 + len(MACHINE_CPU_FIELDS)]
    except (OSError, IndexError):
        return {}
    return {kind: int(v) / CLOCK_TICKS for kind, v in zip(MACHINE_CPU_FIELDS, values, strict=False)}


@dataclass
class CpuGroup:
    """A named set of processes whose CPU is summed; `shared` marks those other work also uses."""

    name: str
    shared: bool
    pids: set[int] = field(default_factory=set)


class CpuMeter:
    """CPU seconds spent per group between `start()` and `stop()`. Pids are re-read at every sample
    (Postgres backends come and go); a process that ends between samples loses its last slice."""

    def __init__(self, groups: Iterable[CpuGroup]) -> None:
        self.groups = list(groups)
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._wait_first: dict[int, float] = {}
        self._wait_last: dict[int, float] = {}
        self._machine_first: dict[str, float] = {}
        self.machine: dict[str, float] = {}  # the machine's CPU seconds by kind in the window (`stop`)
        self.started = self.stopped = 0.0

    def _read(self) -> dict[int, float]:
        return {pid: s for g in self.groups for pid in g.pids if (s := cpu_seconds(pid)) is not None}

    def start(self) -> None:
        self._first = self._read()
        self._wait_first = {pid: runqueue_wait_seconds(pid) for pid in self._first}
        self._machine_first = machine_cpu_seconds()
        self.started = time.monotonic()

    def sample(self) -> None:
        """Pick up processes born since start (counted from their birth: their whole CPU time)."""
        for pid, s in self._read().items():
            self._first.setdefault(pid, 0.0)
            self._wait_first.setdefault(pid, 0.0)
            self._last[pid] = s
            self._wait_last[pid] = runqueue_wait_seconds(pid)

    def stop(self) -> None:
        self.sample()
        last = machine_cpu_seconds()
        self.machine = {kind: last[kind] - first for kind, first in self._machine_first.items() if kind in last}
        self.stopped = time.monotonic()

    def seconds(self, group: CpuGroup) -> float:
        return sum(self._last.get(p, self._first[p]) - self._first[p] for p in group.pids if p in self._first)

    def waited(self, group: CpuGroup) -> float:
        """Seconds the group's processes were runnable but waited for a CPU."""
        return sum(self._wait_last.get(p, self._wait_first[p]) - self._wait_first[p]
                   for p in group.pids if p in self._wait_first)


# ---- consumer lag -----------------------------------------------------------------------------------


class LagSampler:
    """Max lag per consumer group over the run: the sum over its partitions of end offset - committed."""

    def __init__(self, settings: PlatformSettings, groups: list[str]) -> None:
        self.groups = groups
        self.max_lag: dict[str, int] = {g: 0 for g in groups}
        self.last_lag_by_topic: dict[str, dict[str, int]] = {g: {} for g in groups}
        self._admin = AIOKafkaAdminClient(**client_options(settings), client_id="fleet-bench-lag")
        self._offsets = AIOKafkaConsumer(**client_options(settings), group_id=None,
                                         client_id="fleet-bench-ends")
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LagSampler:
        await self._admin.start()
        await self._offsets.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        await self._offsets.stop()
        await self._admin.close()

    async def lag(self, group: str) -> dict[str, int]:
        """The group's lag by topic."""
        committed = await self._admin.list_consumer_group_offsets(group)
        tps = [tp for tp in committed if not tp.topic.startswith("__")]
        if not tps:
            return {}
        ends = await self._offsets.end_offsets(tps)
        by_topic: dict[str, int] = {}
        for tp in tps:
            if committed[tp].offset >= 0:
                by_topic[tp.topic] = by_topic.get(tp.topic, 0) + max(0, ends[tp] - committed[tp].offset)
        return by_topic

    async def sample(self) -> None:
        for group in self.groups:
            by_topic = await self.lag(group)
            lag = sum(by_topic.values())
            self.last_lag_by_topic[group] = by_topic
            self.max_lag[group] = max(self.max_lag[group], lag)

    @property
    def last_lag(self) -> dict[str, int]:
        """The last sample's lag per group."""
        return {group: sum(by_topic.values()) for group, by_topic in self.last_lag_by_topic.items()}

    def lag_outside(self, topics: frozenset[str]) -> int:
        """The last sample's lag over every group, leaving out `topics`."""
        return sum(n for by_topic in self.last_lag_by_topic.values() for t, n in by_topic.items() if t not in topics)

    def start(self, every_s: float = 1.0) -> None:
        async def loop() -> None:
            while True:
                try:
                    await self.sample()
                except Exception:  # noqa: BLE001 - a failed sample is a missing point, not a failed run
                    pass
                await asyncio.sleep(every_s)

        self._task = asyncio.create_task(loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def reset(self) -> None:
        self.max_lag = {g: 0 for g in self.groups}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# ---- bytes written ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Storage:
    """Bytes the run's schemas and topics hold, plus the server's WAL position (shared by every client)."""

    postgres_bytes: dict[str, int]  # schema -> table + index + toast bytes
    rows_inserted: dict[str, int]  # schema -> n_tup_ins over its tables
    wal_lsn_bytes: int
    kafka_bytes: int | None  # segment bytes of the run's topics, when the broker's log dirs are readable


async def storage(dsn: str, schemas: list[str], kafka_pid: int | None, topic_prefix: str) -> Storage:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT schemaname, sum(pg_total_relation_size(relid))::bigint AS bytes, sum(n_tup_ins)::bigint AS ins "
            "FROM pg_stat_user_tables WHERE schemaname = ANY($1::text[]) GROUP BY schemaname", schemas)
        lsn = await conn.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")
    finally:
        await conn.close()
    return Storage({r["schemaname"]: int(r["bytes"]) for r in rows}, {r["schemaname"]: int(r["ins"]) for r in rows},
                   int(lsn), kafka_topic_bytes(kafka_pid, topic_prefix))


def kafka_log_dirs(kafka_pid: int) -> list[Path]:
    """log.dirs from the server.properties on the broker's command line."""
    try:
        args = (PROC / str(kafka_pid) / "cmdline").read_bytes().split(b"\0")
        cwd = Path(os.readlink(PROC / str(kafka_pid) / "cwd"))
    except OSError:
        return []
    for arg in args:
        if arg.endswith(b".properties") and b"log4j" not in arg:
            path = cwd / arg.decode()
            try:
                for line in path.read_text().splitlines():
                    if line.strip().startswith(("log.dirs=", "log.dir=")):
                        return [cwd / d.strip() for d in line.split("=", 1)[1].split(",")]
            except OSError:
                return []
    return []


def kafka_topic_bytes(kafka_pid: int | None, topic_prefix: str) -> int | None:
    if kafka_pid is None:
        return None
    dirs = kafka_log_dirs(kafka_pid)
    if not dirs:
        return None
    total = 0
    for log_dir in dirs:
        for partition in log_dir.glob(f"{topic_prefix}*"):
            total += sum(f.stat().st_size for f in partition.glob("*.log"))
    return total
