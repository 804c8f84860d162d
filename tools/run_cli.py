"""`mgrid run <service>`: run one service as its own process (HTTP + consumer + relay + loops)."""

from __future__ import annotations

import importlib
import os
from typing import Any

import typer
import uvicorn

from contracts.topics import SERVICES
from libs.platform.runtime import ServiceDefinition, ServiceRuntime
from libs.platform.settings import PlatformSettings

DEFAULT_PORTS = {service: 8101 + i for i, service in enumerate(SERVICES)}  # 8101.. in start order


def load_definition(service: str) -> ServiceDefinition:
    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    module = importlib.import_module(f"services.{service}.bootstrap")
    definition: ServiceDefinition = module.DEFINITION
    return definition


def step_down_to_service(service: str) -> None:
    """Run as the service's own database role and Kafka principal when the local stack knows them.

    The environment may hold the tooling credentials (`mgrid stack env`, the demo, the tests): the
    owner's DSN stays for migrations only, and the service works as itself. Credentials set for the
    service by a deployment (any other user) are left as they are.
    """
    from libs.platform import stack_credentials as sc

    settings = PlatformSettings()
    credentials = sc.load()
    if credentials is None or sc.postgres_role(service) not in credentials.postgres:
        return
    env = credentials.service_env(service, settings.postgres_dsn)
    if sc.dsn_user(settings.postgres_dsn) in (None, sc.POSTGRES_OWNER, sc.POSTGRES_ADMIN):
        os.environ["MGRID_POSTGRES_DSN"] = env["MGRID_POSTGRES_DSN"]
        os.environ.setdefault("MGRID_POSTGRES_OWNER_DSN", env["MGRID_POSTGRES_OWNER_DSN"])
    if settings.kafka_sasl_username in (None, sc.KAFKA_ADMIN):
        os.environ.update({k: v for k, v in env.items() if k.startswith("MGRID_KAFKA_")})


def run(
    service: str = typer.Argument(..., help=f"one of: {', '.join(SERVICES)}"),
    host: str = typer.Option("127.0.0.1", help="HTTP listen address"),
    port: int = typer.Option(0, help="HTTP port (0: the service's default)"),
    replicas: int = typer.Option(1, min=1, help="processes in the service's one consumer group (ports port..port+N-1)"),
) -> None:
    """Run one service until interrupted; with --replicas N, N processes that share its partitions."""
    definition = load_definition(service)
    step_down_to_service(service)
    port = port or DEFAULT_PORTS[service]
    if replicas > 1:
        _run_replicas(service, host, port, replicas)
        return
    runtime = ServiceRuntime(definition)
    uvicorn.run(runtime.app(), host=host, port=port, **uvicorn_options(runtime.settings))


def uvicorn_options(settings: PlatformSettings) -> dict[str, Any]:
    """How a service's HTTP door runs: log_config=None keeps our JSON logging (uvicorn would replace it);
    idle connections are closed after the settings' keep-alive, which clients undercut (`http_limits`)."""
    return {"log_config": None, "loop": event_loop(), "timeout_keep_alive": settings.http_keep_alive_s}


def event_loop() -> str:
    """The event loop the service runs on (MGRID_EVENT_LOOP): uvloop, or asyncio's own."""
    chosen = os.environ.get("MGRID_EVENT_LOOP", "uvloop")
    if chosen not in ("uvloop", "asyncio"):
        raise typer.BadParameter(f"MGRID_EVENT_LOOP={chosen!r}: one of uvloop, asyncio")
    return chosen


def _run_replicas(service: str, host: str, port: int, replicas: int) -> None:
    """N copies of `mgrid run <service>`: one consumer group, so Kafka divides the partitions among them
    (a microgrid's key maps to one partition, hence one replica at a time). Stops them all on exit."""
    import signal
    import subprocess
    import sys

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGINT):  # a stop by `kill` (or ^C) also stops every replica
        signal.signal(signum, interrupted)
    command = [sys.executable, "-m", "tools.cli", "run", service, "--host", host]
    processes = [subprocess.Popen([*command, "--port", str(port + i)]) for i in range(replicas)]
    try:
        for process in processes:
            process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


app = run
