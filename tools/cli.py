"""`mgrid`: the one door for people. Each command group lives in its own module and is registered here."""

from __future__ import annotations

import importlib
import os

import typer

app = typer.Typer(no_args_is_help=True, help="Microgrid energy orchestration: stack, services, simulator, ops.")


@app.callback()
def _local_stack_defaults() -> None:
    """Every command talks to the local stack, with its generated credentials, unless MGRID_* say otherwise."""
    from tools.stack import local_env

    for name, value in local_env().items():
        os.environ.setdefault(name, value)

# (module, attribute, name): sub-apps are imported lazily-safe; a group whose module is missing is skipped
# so the CLI keeps working while the project grows.
_GROUPS = [
    ("tools.stack_cli", "app", "stack"),
    ("tools.run_cli", "run", "run"),
    ("tools.test_cli", "test", "test"),
    ("services.topology.cli", "app", "topology"),
    ("tools.observability_cli", "trace_app", "trace"),
    ("tools.token_cli", "app", "token"),
    ("services.balancing.cli", "app", "cycle"),
    ("simulator.cli", "simulate_app", "simulate"),
    ("simulator.cli", "demo_app", "demo"),
    ("simulator.chaos_cli", "chaos", "chaos"),
    ("tools.contracts_cli", "app", "contracts"),
    ("tools.dlq_cli", "dlq_app", "dlq"),
    ("tools.dlq_cli", "outbox_app", "outbox"),
]

for module_name, attr, name in _GROUPS:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            continue
        raise
    sub = getattr(module, attr)
    if isinstance(sub, typer.Typer):
        app.add_typer(sub, name=name)
    else:
        app.command(name=name)(sub)


if __name__ == "__main__":
    app()
