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
    from tools.stack import endpoints, up

    up()
    env = {**endpoints(), **os.environ}
    cmd = [sys.executable, "-m", "pytest", *(pytest_args or [])]
    raise typer.Exit(subprocess.call(cmd, cwd=REPO_ROOT, env=env))
