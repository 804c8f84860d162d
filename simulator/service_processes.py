"""The four services as separate processes: start, stop and status, with pid files and logs.

Each service runs as `mgrid run <service> --port <port>` in its own session (it outlives the command
that started it, as `mgrid demo` leaves the system running), its output in `<run dir>/logs/<service>.log`
and its pid in `<run dir>/services/<service>.pid`. A pid is only trusted while its command line still
names the service (the stack's rule, see tools.stack), so a stale pid file never gets another
program signalled. `mgrid demo` uses the repo's `.stack/`; the system tests use a private run dir,
ports and topic prefix, so they never touch a demo that is running.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import httpx

from libs.platform.settings import REPO_ROOT
from tools.processes import log_tail, port_open, process_matches, read_pid, terminate
from tools.run_cli import DEFAULT_PORTS, SERVICES

DEFAULT_RUN_DIR = REPO_ROOT / ".stack"
START_TIMEOUT_S = 120.0
STOP_GRACE_S = 20.0


class ServiceState(StrEnum):
    RUNNING = "running"  # process alive and answering HTTP
    STARTING = "starting"  # process alive, not answering yet
    STOPPED = "stopped"


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: ServiceState
    url: str
    pid: int | None
    log_file: Path
    action: str | None = None


class ServiceStartError(RuntimeError):
    def __init__(self, service: str, message: str, log_file: Path) -> None:
        tail = log_tail(log_file, 25)
        super().__init__(f"{service}: {message} (log: {log_file})" + (f"\n--- last lines ---\n{tail}" if tail else ""))
        self.service = service


def service_url_env(ports: dict[str, int]) -> dict[str, str]:
    """MGRID_<SERVICE>_URL for each service: how services (and the simulator) find each other."""
    return {f"MGRID_{name.upper()}_URL": f"http://127.0.0.1:{port}" for name, port in ports.items()}


def _mgrid_command() -> list[str]:
    beside = Path(sys.executable).parent / "mgrid"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("mgrid")
    return [found] if found else [sys.executable, "-m", "tools.cli"]


class ServiceProcesses:
    def __init__(self, *, run_dir: Path = DEFAULT_RUN_DIR, ports: dict[str, int] | None = None,
                 env: dict[str, str] | None = None, services: tuple[str, ...] = SERVICES) -> None:
        self.run_dir = run_dir
        self.ports = {**DEFAULT_PORTS, **(ports or {})}
        self.services = services
        self.env = env or {}
        # The processes this object spawned: alive is what the kernel says (Popen.poll), not the command line,
        # which names the parent until the child has exec'd (a loaded machine makes that window visible).
        self._spawned: dict[str, subprocess.Popen[bytes]] = {}

    def pid_file(self, service: str) -> Path:
        return self.run_dir / "services" / f"{service}.pid"

    def log_file(self, service: str) -> Path:
        return self.run_dir / "logs" / f"{service}.log"

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def urls_env(self) -> dict[str, str]:
        return service_url_env({s: self.ports[s] for s in SERVICES})

    def pid(self, service: str) -> int | None:
        pid = read_pid(self.pid_file(service))
        return pid if pid is not None and process_matches(pid, f"run\x00{service}") else None

    def status(self) -> list[ServiceStatus]:
        return [self._status(s) for s in self.services]

    def _status(self, service: str, action: str | None = None) -> ServiceStatus:
        pid = self.pid(service)
        if pid is None:
            state = ServiceState.STOPPED
        else:
            state = ServiceState.RUNNING if self._answers(service) else ServiceState.STARTING
        return ServiceStatus(service, state, self.url(service), pid, self.log_file(service), action)

    def _answers(self, service: str) -> bool:
        """Any HTTP answer on /health means the app's lifespan (topics, migrations, consumer) is done."""
        try:
            return httpx.get(f"{self.url(service)}/health", timeout=2.0).status_code < 500
        except httpx.HTTPError:
            return False

    def start(self, *, timeout_s: float = START_TIMEOUT_S) -> list[ServiceStatus]:
        """Start what is stopped (all at once, they warm up in parallel), then wait until each answers."""
        actions: dict[str, str] = {}
        for service in self.services:
            if self.pid(service) is not None:
                actions[service] = "already-running"
                continue
            if port_open(self.ports[service]):
                raise ServiceStartError(service, f"port {self.ports[service]} is taken by another process",
                                        self.log_file(service))
            self._spawn(service)
            actions[service] = "started"
        deadline = time.monotonic() + timeout_s
        for service in self.services:
            self._wait_ready(service, deadline)
        return [self._status(s, actions[s]) for s in self.services]

    def _spawn(self, service: str) -> None:
        self.pid_file(service).parent.mkdir(parents=True, exist_ok=True)
        self.log_file(service).parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.urls_env(), **self.env}
        command = [*_mgrid_command(), "run", service, "--port", str(self.ports[service])]
        with open(self.log_file(service), "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} $ {' '.join(command)}\n".encode())
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       cwd=REPO_ROOT, env=env, start_new_session=True)
        self.pid_file(service).write_text(f"{process.pid}\n")
        self._spawned[service] = process

    def _exited(self, service: str) -> bool:
        process = self._spawned.get(service)
        if process is not None and process.pid == read_pid(self.pid_file(service)):
            return process.poll() is not None
        return self.pid(service) is None

    def _wait_ready(self, service: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self._exited(service):
                raise ServiceStartError(service, "the process exited while starting", self.log_file(service))
            if self._answers(service):
                return
            time.sleep(0.25)
        raise ServiceStartError(service, "did not answer GET /health in time", self.log_file(service))

    def stop(self) -> list[ServiceStatus]:
        results = []
        for service in self.services:
            pid = self.pid(service)
            if pid is not None:
                terminate(pid, f"run\x00{service}", grace_s=STOP_GRACE_S)
            self.pid_file(service).unlink(missing_ok=True)
            results.append(self._status(service, "stopped" if pid else "not-running"))
        return results
