import pytest

from libs.domain.allocation import AllocationRequest as Req
from libs.domain.allocation import AllocationState, allocate

# root(0) -> A(1) -> a1(2), a2(3) ; root -> B(4) -> b1(5)
PARENT = [-1, 0, 1, 1, 0, 4]
END = [6, 4, 3, 4, 6, 6]


def run(headroom, requests, rotation=0):
    return allocate(PARENT, END, headroom, requests, rotation)


@pytest.mark.req("FR-003")
def test_max_min_fair_under_nested_caps_with_ancestor_precedence():
    got = run([100, 30, None, None, None, None], [Req(2, 50), Req(3, 10), Req(5, 100)])
    assert got.watts == (20, 10, 70)
    assert got.states == (AllocationState.CURTAILED, AllocationState.ALLOCATED, AllocationState.CURTAILED)
    assert got.binding == (1, -1, 0)


def test_weights_share_in_proportion():
    got = run([90, None, None, None, None, None], [Req(2, 100, weight=1), Req(3, 100, weight=2), Req(5, 100, weight=3)])
    assert got.watts == (15, 30, 45)


def test_higher_priority_class_is_served_first():
    got = run([100, None, None, None, None, None], [Req(2, 80, priority=1), Req(3, 80), Req(5, 80)])
    assert got.watts == (80, 10, 10)


def test_minimum_power_gives_zero_not_a_trickle_and_states_say_why():
    got = run(
        [30, None, None, None, None, None],
        [Req(2, 22, 12, rank=0), Req(3, 22, 12, rank=1), Req(5, 22, 12, rank=2), Req(5, 5, 6)],
    )
    assert got.watts == (15, 15, 0, 0)
    assert got.states[2:] == (AllocationState.PAUSED, AllocationState.BELOW_MINIMUM)
    assert got.binding[2] == 0


def test_rotation_moves_the_pause_so_no_connector_starves():
    requests = [Req(2, 22, 12, rank=0), Req(3, 22, 12, rank=1), Req(5, 22, 12, rank=2)]
    paused = set()
    for rotation in range(3):
        got = run([30, None, None, None, None, None], requests, rotation)
        paused |= {i for i, s in enumerate(got.states) if s is AllocationState.PAUSED}
        assert sum(got.watts) <= 30
    assert paused == {0, 1, 2}


def test_rounding_leftovers_go_one_watt_each_in_tie_break_order():
    got = run([10, None, None, None, None, None], [Req(2, 9, rank=2), Req(3, 9, rank=0), Req(5, 9, rank=1)])
    assert got.watts == (3, 4, 3)


def test_uncapped_tree_grants_every_request_and_negative_headroom_grants_nothing():
    assert run([None] * 6, [Req(2, 7), Req(5, 9)]).watts == (7, 9)
    assert run([None, -5, None, None, None, None], [Req(2, 7), Req(5, 9)]).watts == (0, 9)


def test_minimums_are_held_while_others_rise_above_them():
    got = run([40, None, None, None, None, None], [Req(2, 30, 20), Req(3, 30), Req(5, 30)])
    assert got.watts == (20, 10, 10)
