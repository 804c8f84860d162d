"""Simulated time: the scenario clock starts at an anchor and moves by planned offsets.

Payload timestamps are `anchor + planned offset`, never a fresh wall-clock read, so a run is
reproducible from (seed, anchor). Against live services the anchor is the wall-clock start of the run
(they judge freshness and block boundaries by their own clock); a dry run uses the fixed
`DEFAULT_ANCHOR`. The pacer keeps a live runner from getting ahead of the plan (it waits until a
step's planned instant, and never waits for messages); when the services are slower than the plan,
the step's instant is moved to the wall-clock instant it really runs at, so time-relative content (a
block starting "4 s from now", a reading "1 h old") keeps its meaning. The outcomes stay reproducible;
only the absolute instants of a live run differ, as its anchor does.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime, timedelta

DEFAULT_ANCHOR = datetime(2030, 1, 7, 6, 0, tzinfo=UTC)


def wall_anchor() -> datetime:
    """The live anchor: now, to the whole second (a readable, stable instant in reports)."""
    return datetime.now(UTC).replace(microsecond=0)


class ScenarioClock:
    def __init__(self, anchor: datetime) -> None:
        self.anchor = anchor.astimezone(UTC)
        self.offset_s = 0.0

    def now(self) -> datetime:
        return self.at(self.offset_s)

    def at(self, offset_s: float) -> datetime:
        # Millisecond resolution: what survives a JSON round trip through every service unchanged.
        return self.anchor + timedelta(milliseconds=round(offset_s * 1000))

    def advance_to(self, offset_s: float) -> None:
        self.offset_s = max(self.offset_s, offset_s)


class Pacer:
    """Maps planned offsets to the wall clock for a live run (a dry run does not pace)."""

    def __init__(self, live: bool) -> None:
        self.live = live
        self._start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    async def reach(self, planned_s: float) -> float:
        """Wait until the planned offset; return the offset the step really runs at (0.1 s resolution)."""
        if not self.live:
            return planned_s
        delay = planned_s - self.elapsed()
        if delay > 0:
            await asyncio.sleep(delay)
            return planned_s
        return max(planned_s, math.ceil(self.elapsed() * 10) / 10)
