"""The scenario library, each file one test, against the four services running as processes.

A scenario names the requirements it verifies; each test carries them as `pytest.mark.req(...)`.
The literal list below is what the requirement-coverage tool reads (it scans for `mark.req(` text),
and `test_literal_requirements_cover_the_library` keeps it equal to the union of the files' lists.
"""

from __future__ import annotations

import pytest

from simulator.cli import dump_json, run_scenario
from simulator.runner import RunResult
from simulator.scenario import library, library_names, load_scenario
from simulator.transport import SimulatorSettings

pytestmark = [
    pytest.mark.system,
    pytest.mark.req(
        "FR-001", "FR-002", "FR-003", "FR-004", "FR-005", "FR-006", "FR-007", "FR-008", "FR-009", "FR-010",
        "FR-011", "FR-012", "FR-013", "FR-014", "FR-015", "FR-016", "FR-017", "FR-020", "FR-021", "FR-022",
        "FR-023", "FR-024", "FR-025", "FR-026", "FR-027", "FR-028", "FR-029", "FR-030", "FR-031", "FR-032",
        "FR-033", "NFR-001", "NFR-002", "NFR-003", "NFR-004", "NFR-005", "NFR-006", "NFR-007", "NFR-008",
        "NFR-009", "NFR-010", "NFR-011",
    ),
]

LIBRARY_REQUIREMENTS = pytestmark[1].args


@pytest.mark.parametrize(
    "name",
    [pytest.param(name, marks=pytest.mark.req(*load_scenario(name).requirements), id=name) for name in library_names()],
)
async def test_scenario(name: str, system_settings: SimulatorSettings, system_results: list[RunResult]) -> None:
    result = await run_scenario(load_scenario(name), system_settings)
    system_results.append(result)
    assert result.passed, dump_json(result)


def test_literal_requirements_cover_the_library() -> None:
    claimed = {rid for scenario in library() for rid in scenario.requirements}
    assert set(LIBRARY_REQUIREMENTS) == claimed
