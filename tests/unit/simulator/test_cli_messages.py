"""What `mgrid simulate` and `mgrid demo` tell a new user: commands as they work from a checkout, and a
plain message (not a Kafka traceback) when the services are not running."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli import _explore_hint
from simulator.service_processes import ServiceProcesses
from simulator.wire import SERVICES
from tools.cli import app


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again on exit: nothing listens there


def test_simulate_all_without_services_says_so_and_exits_non_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    port = _closed_port()
    for service in SERVICES:
        monkeypatch.setenv(f"MGRID_{service.upper()}_URL", f"http://127.0.0.1:{port}")

    result = CliRunner().invoke(app, ["simulate", "--all"])

    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "The services are not running" in out
    assert "./mgrid demo" in out and "./mgrid run <service>" in out
    assert "Traceback" not in result.output and "partitions" not in out


def test_demo_hint_prints_commands_that_work_from_a_checkout_and_the_console_url(tmp_path: Path) -> None:
    processes = ServiceProcesses(run_dir=tmp_path, ports=dict.fromkeys(SERVICES, 8100))
    hint = _explore_hint(processes, None, tmp_path / "report.html")

    commands = [line.strip() for line in hint.splitlines() if re.match(r"\s+(TOKEN=|mgrid|\./mgrid)", line)]
    assert commands and all("$(mgrid" not in c and not c.startswith("mgrid") for c in commands)
    assert "TOKEN=$(./mgrid token issue" in hint and "./mgrid simulate --list" in hint
    assert "http://127.0.0.1:8100/console#token=$TOKEN" in hint
