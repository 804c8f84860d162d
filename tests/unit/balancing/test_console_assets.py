"""The console page loads only files the service serves: vendored libraries unchanged, no CDN at run time."""

from __future__ import annotations

import hashlib
import re

from services.balancing.console.routes import _FILES, STATIC


def test_vendored_files_match_their_pinned_checksums() -> None:
    vendor = STATIC / "vendor"
    lines = (vendor / "SHA256SUMS").read_text().split("\n")
    sums = dict(reversed(line.split()) for line in lines if line.strip())
    assert set(sums) == {"uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE"}
    for name, digest in sums.items():
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name


def test_the_page_loads_nothing_from_elsewhere() -> None:
    html = (STATIC / "console.html").read_text()
    script = (STATIC / "console.js").read_text()
    loaded = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert loaded and all(u.startswith("/console/static/") for u in loaded)
    assert {u.removeprefix("/console/static/") for u in loaded} <= set(_FILES)
    assert not re.search(r"https?://", html + script)
