"""Local processes we start ourselves (the stack, the four services): pid files, identity, ports, logs.

A pid is trusted only while its command line still carries the marker we started it with, so a
stale pid file never gets another program signalled.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False

def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None

def process_matches(pid: int, marker: str) -> bool:
    """Alive and running what we think it is. A zombie has an empty command line, so it counts as dead."""
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False

def terminate(pid: int, marker: str, *, grace_s: float) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while process_matches(pid, marker):
        reap(pid)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = float("inf")
        time.sleep(0.1)
    reap(pid)

def reap(pid: int) -> None:
    """Collect the exit status when this very process started it (e.g. a test session)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass

def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
