"""A Kafka, Postgres and Redis of the fault suite's own, so it can kill, stop and crash them.

The shared stack (the one `mgrid stack up` runs for every test and every engineer) must never be
signalled; this one is started by `mgrid stack up` in a directory of its own, on free ports
(MGRID_STACK_DIR and MGRID_STACK_*_PORT, read by the stack module at import, hence a subprocess), with
its own generated SASL users and database roles. `down()` stops it and deletes its data.

The signals go to the pids of this stack's own pid files only, each checked against its command line
(tools.processes), as the stack itself does: nothing found by name is ever signalled.
"""

from __future__ import annotations

import os
import random
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

from libs.platform.settings import REPO_ROOT, PlatformSettings
from simulator.service_processes import _mgrid_command
from tools.processes import process_matches, read_pid

UP_TIMEOUT_S = 600.0  # a fresh clone also resolves the Kafka jars from Maven Central on the first `up`


class OwnStack:
    def __init__(self, root: Path, *, brokers: int = 1) -> None:
        self.root = root
        self.brokers = brokers
        self.kafka_port = _free_port_block(2 * brokers + 2)  # each Kafka node: its port and its controller's
        self.postgres_port = self.kafka_port + 2 * brokers
        self.redis_port = self.postgres_port + 1

    def env(self) -> dict[str, str]:
        """What a `mgrid stack ...` subprocess of this stack runs with."""
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("MGRID_")},
            "MGRID_STACK_DIR": str(self.root),
            "MGRID_STACK_KAFKA_PORT": str(self.kafka_port),
            "MGRID_STACK_POSTGRES_PORT": str(self.postgres_port),
            "MGRID_STACK_REDIS_PORT": str(self.redis_port),
            "MGRID_STACK_KAFKA_BROKERS": str(self.brokers),
        }

    def _mgrid(self, *args: str, timeout_s: float = UP_TIMEOUT_S) -> str:
        result = subprocess.run([*_mgrid_command(), "stack", *args], cwd=REPO_ROOT, env=self.env(),
                                capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise RuntimeError(f"mgrid stack {' '.join(args)} (dir {self.root}) failed:\n"
                               f"{result.stdout[-3000:]}{result.stderr[-3000:]}")
        return result.stdout

    def up(self) -> None:
        """Start what is stopped (idempotent): the first start, and every restart after a kill."""
        self._mgrid("up", *(["--brokers", str(self.brokers)] if self.brokers != 1 else []))

    def down(self, *, purge: bool = True) -> None:
        """Stop it; `purge` also deletes its data (not its logs when kept: `purge=False`)."""
        self._mgrid("down", *(["--purge"] if purge else []), timeout_s=180)

    def settings(self) -> PlatformSettings:
        """The stack's endpoints and tooling credentials (schema owner, Kafka admin), as `stack env` says."""
        values: dict[str, str] = {}
        for line in self._mgrid("env", timeout_s=60).splitlines():
            if line.startswith("export MGRID_"):
                name, _, quoted = line.removeprefix("export ").partition("=")
                values[name.removeprefix("MGRID_").lower()] = shlex.split(quoted)[0] if quoted else ""
        return PlatformSettings(**values)  # type: ignore[arg-type]

    # --- the processes ---------------------------------------------------------------------------

    def kafka_pids(self) -> list[int]:
        names = ["kafka"] if self.brokers == 1 else [f"kafka-{n}" for n in range(1, self.brokers + 1)]
        return [p for name in names if (p := _trusted(self.root / name / f"{name}.pid", "kafka.Kafka"))]

    def postgres_pids(self) -> list[int]:
        """The postmaster, then its children (the backends that hold the connections)."""
        location = self.root / "postgres.location"
        if not location.exists():
            return []
        postmaster = _trusted(Path(location.read_text().strip()) / "data" / "postmaster.pid", "postgres")
        return [] if postmaster is None else [postmaster, *_children(postmaster)]

    def redis_pids(self) -> list[int]:
        pid = _trusted(self.root / "redis" / "redis.pid", "redis-server")
        return [] if pid is None else [pid]

    def pids(self, component: str) -> list[int]:
        return {"kafka": self.kafka_pids, "postgres": self.postgres_pids, "redis": self.redis_pids}[component]()

    def signal(self, component: str, signum: int, pids: list[int] | None = None) -> list[int]:
        """Send `signum` to the component's processes (or the given ones); returns whom it was sent to."""
        targets = self.pids(component) if pids is None else pids
        for pid in targets:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        return targets

    def kill(self, component: str, pids: list[int] | None = None) -> None:
        """SIGKILL and wait until the processes are gone and their ports closed (a crash, not a stop)."""
        targets = self.signal(component, signal.SIGKILL, pids)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(p) for p in targets):
            time.sleep(0.05)


def _trusted(pid_file: Path, marker: str) -> int | None:
    pid = read_pid(pid_file)
    return pid if pid is not None and process_matches(pid, marker) else None


def _children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # pid (comm) state ppid ...: comm may hold spaces, so split after its closing parenthesis
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return False
    return fields[0] != "Z"


def _free_port_block(size: int) -> int:
    """The first of `size` consecutive free ports, below the kernel's ephemeral range (from 32768): a
    restarted broker must find its port free, not taken as the source port of a client's connection."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 32000 - size)
        if all(_bindable(base + i) for i in range(size)):
            return base
    raise RuntimeError(f"no {size} consecutive free ports")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
