"""A spawned service counts as alive from the fork on: until the child has exec'd, its command line is
still its parent's, and reading it there made a starting service look exited (ServiceStartError with an
empty log) on a loaded machine."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from simulator import service_processes
from simulator.service_processes import ServiceProcesses


def test_a_spawned_process_is_alive_whatever_its_command_line_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_processes, "_mgrid_command",
                        lambda: [sys.executable, "-c", "import time; time.sleep(30)"])
    # Its command line read as between fork and exec: the parent's, not naming `run topology`.
    monkeypatch.setattr(service_processes, "process_matches", lambda pid, marker: False)
    processes = ServiceProcesses(run_dir=tmp_path, services=("topology",))
    processes._spawn("topology")
    try:
        assert processes.pid("topology") is None  # the command-line check alone would call it gone
        assert not processes._exited("topology")
    finally:
        processes._spawned["topology"].kill()
        processes._spawned["topology"].wait()
    assert processes._exited("topology")
