"""`mgrid run <service>`: run one service as its own process (HTTP + consumer + relay + loops)."""

from __future__ import annotations

import importlib

import typer
import uvicorn

from libs.platform.runtime import ServiceDefinition, ServiceRuntime

SERVICES = ("topology", "envelope_lifecycle", "balancing", "compatibility_adapter")
DEFAULT_PORTS = {"topology": 8101, "envelope_lifecycle": 8102, "balancing": 8103, "compatibility_adapter": 8104}


def load_definition(service: str) -> ServiceDefinition:
    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    module = importlib.import_module(f"services.{service}.bootstrap")
    definition: ServiceDefinition = module.DEFINITION
    return definition


def run(
    service: str = typer.Argument(..., help=f"one of: {', '.join(SERVICES)}"),
    host: str = typer.Option("127.0.0.1", help="HTTP listen address"),
    port: int = typer.Option(0, help="HTTP port (0: the service's default)"),
) -> None:
    """Run one service until interrupted."""
    definition = load_definition(service)
    runtime = ServiceRuntime(definition)
    # log_config=None keeps our JSON logging (uvicorn would replace it).
    uvicorn.run(runtime.app(), host=host, port=port or DEFAULT_PORTS[service], log_config=None)


app = run
