"""The fleet benchmark's path, small and untimed: every periodic trigger of a small fleet gives exactly one
cycle (benchmarks/fleet.py). Its figures are not judged here (a benchmark prints them, a test does not
time them); what is judged is that the seeding and trigger path keep working and no cycle is lost or
doubled while several depots are rebalanced concurrently through the compatibility adapter.
"""

from __future__ import annotations

import pytest

from benchmarks.fleet import FleetOptions, run_fleet
from simulator.transport import SimulatorSettings

pytestmark = [pytest.mark.system, pytest.mark.req("NFR-005")]


@pytest.mark.timeout(900)
async def test_small_fleet_every_legacy_trigger_gives_exactly_one_cycle(system_settings: SimulatorSettings) -> None:
    options = FleetOptions(depots=4, period_s=2.0, duration_s=10.0, warmup_s=0.0, trigger="legacy_event",
                           telemetry_every_s=5.0, drain_s=300.0, seed=11, seed_workers=2)
    result = await run_fleet(system_settings, options, log=lambda line: None)
    assert len(result.triggers) == 20
    assert result.lost == 0, f"{result.lost} of {len(result.triggers)} triggers got no cycle"
    assert result.duplicated == 0
    assert sum(result.outcomes.values()) == len(result.triggers)
