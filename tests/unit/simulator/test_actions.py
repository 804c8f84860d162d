"""Every kind of step a scenario may hold has exactly one player, keyed by its action model."""

from __future__ import annotations

import pytest

from simulator.actors.actions import ACTIONS
from simulator.scenario import ACTIONS as STEP_ACTIONS
from simulator.scenario import Step, library_names, load_scenario


def step_action_models() -> dict[str, type]:
    return {name: Step.model_fields[name].annotation.__args__[0] for name in STEP_ACTIONS}


def test_every_step_action_has_a_player_and_nothing_else_does() -> None:
    models = step_action_models()
    assert len(set(models.values())) == len(models), "two step fields share an action model"
    assert set(ACTIONS) == set(models.values())


@pytest.mark.parametrize("name", library_names())
def test_every_library_step_finds_its_player(name: str) -> None:
    for step in load_scenario(name).steps:
        assert type(step.action) in ACTIONS, step.action_name
