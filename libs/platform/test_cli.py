"""`mgrid test`: every test, against the real stack this command brings up itself."""

from __future__ import annotations

import os
import subprocess
import sys

import typer

from libs.platform.settings import REPO_ROOT


def test(
    pytest_args: list[str] = typer.Argument(None, help="extra arguments passed to pytest"),  # noqa: B008
) -> None:
    """Bring the stack up (installing what is missing), then run the whole test suite."""
    from libs.platform.stack import up

    up()
    env = dict(os.environ)
    env.setdefault("MGRID_KAFKA_BOOTSTRAP", "127.0.0.1:59092")
    env.setdefault("MGRID_POSTGRES_DSN", "postgresql://mgrid:mgrid@127.0.0.1:55432/mgrid")
    env.setdefault("MGRID_REDIS_URL", "redis://127.0.0.1:56379/0")
    cmd = [sys.executable, "-m", "pytest", *(pytest_args or [])]
    raise typer.Exit(subprocess.call(cmd, cwd=REPO_ROOT, env=env))
