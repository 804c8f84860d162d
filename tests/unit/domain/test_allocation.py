import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.domain import _allocation_kernel
from libs.domain.allocation import (
    _STATE_CODES,
    AllocationOutcome,
    AllocationState,
    RequestColumns,
    _allocate_walk,
    allocate,
    allocate_columns,
)
from libs.domain.allocation import AllocationRequest as Req
from tests.unit.domain.strategies import allocation_problems, amplifying_problems

# root(0) -> A(1) -> a1(2), a2(3) ; root -> B(4) -> b1(5)
PARENT = [-1, 0, 1, 1, 0, 4]
END = [6, 4, 3, 4, 6, 6]


def run(headroom, requests, rotation=0):
    return allocate(PARENT, END, headroom, requests, rotation)


def kernel_outcome(parent, end, headroom, columns, rotation):
    """The compiled walk alone (None: a number beyond its range, where `allocate_columns` takes the walk)."""
    got = _allocation_kernel.allocate(parent, end, headroom, *columns.columns(), rotation, _STATE_CODES)
    return None if got is None else AllocationOutcome(*got)


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


def test_four_connector_reproduction_is_exact_within_one_watt():
    # GRID_CONNECTION (aggregate 159,516 W) -> k020 asking 150,000 W, and cp024 (17,264 W) -> three
    # connectors asking 50,000, 11,000 and 7,400 W. Exact: 142,252 W and 5,754.667 W each.
    parent, end = [-1, 0, 0, 2, 2, 2], [6, 2, 6, 4, 5, 6]
    headroom = [159_516, None, 17_264, None, None, None]
    got = allocate(
        parent,
        end,
        headroom,
        [Req(1, 150_000, rank=0), Req(3, 50_000, rank=1), Req(4, 11_000, rank=2), Req(5, 7_400, rank=3)],
    )
    assert got.watts[0] == 142_252
    assert sorted(got.watts[1:]) == [5_754, 5_755, 5_755]
    assert sum(got.watts[1:]) == 17_264  # cp024 is used to its cap: nothing leaks to k020


@pytest.mark.parametrize("charge_points", [2, 50, 300])
def test_rounding_does_not_drift_with_the_number_of_saturated_charge_points(charge_points):
    from tests.unit.domain.strategies import amplifying_problem

    parent, end, headroom, requests = amplifying_problem(charge_points)
    got = allocate(parent, end, headroom, requests)
    assert got.watts[-1] == 100  # the big connector's exact share, whatever the size
    for cp in range(charge_points):
        assert sorted(got.watts[3 * cp : 3 * cp + 3]) == [1, 2, 2]  # 5 W shared as 5/3 each, rounded once


# The compiled walk (libs/domain/_allocation_kernel.c) against the Python walk it is ported from: the same
# integers, states and binding caps, for random trees with minimums, weights, priorities and rotation.
@st.composite
def _mixed_problems(draw):  # noqa: ANN001, ANN202
    parent, end, headroom, requests = draw(allocation_problems(max_nodes=14, max_requests=10, minimums=True))
    requests = [r._replace(priority=draw(st.integers(0, 2))) for r in requests]
    return parent, end, headroom, requests, draw(st.integers(0, 7))


@pytest.mark.req("FR-003", "NFR-001")
@settings(max_examples=300, deadline=None)
@given(st.one_of(_mixed_problems(), amplifying_problems(7).map(lambda p: (*p, 0))))
def test_compiled_walk_gives_exactly_what_the_python_walk_gives(problem):
    parent, end, headroom, requests, rotation = problem
    columns = RequestColumns(*map(list, zip(*requests, strict=True))) if requests else RequestColumns.empty()
    compiled = kernel_outcome(parent, end, headroom, columns, rotation)
    assert compiled == _allocate_walk(parent, end, headroom, requests, rotation)
    assert allocate(parent, end, headroom, requests, rotation) == compiled


def _tied_problem(seed: int, circuits: tuple[int, int] = (2, 6), points: tuple[int, int] = (1, 8)):
    """A depot-sized tree (grid connection, circuits, charge points, connectors) whose requests share a
    few values, so the compiled walk's sorts meet long runs of equal keys (where an unstable sort may
    order them any way)."""
    import random

    rng = random.Random(seed)
    parent, headroom, requests = [-1], [rng.choice([None, 40_000, 90_000])], []
    for _ in range(rng.randint(*circuits)):
        circuit = len(parent)
        parent.append(0)
        headroom.append(rng.choice([None, 20_000, 30_000]))
        for _ in range(rng.randint(*points)):
            point = len(parent)
            parent.append(circuit)
            headroom.append(rng.choice([None, 11_000, 22_000]))
            for _ in range(rng.randint(1, 4)):
                requests.append(
                    Req(
                        len(parent),
                        rng.choice([0, 7_400, 11_000, 22_000]),
                        rng.choice([0, 0, 4_200]),
                        rng.choice([1, 1, 2]),
                        rng.choice([0, 0, 1]),
                        len(requests),
                    )
                )
                parent.append(point)
                headroom.append(None)
    end = list(range(1, len(parent) + 1))
    for i in range(len(parent) - 1, 0, -1):
        end[parent[i]] = max(end[parent[i]], end[i])
    return parent, end, headroom, requests


@pytest.mark.req("FR-003", "NFR-001")
@pytest.mark.parametrize("seed", range(40))
def test_compiled_walk_matches_the_python_walk_on_depot_sized_trees_full_of_ties(seed):
    parent, end, headroom, requests = _tied_problem(seed)
    columns = RequestColumns(*map(list, zip(*requests, strict=True)))
    rotation = seed % 5
    compiled = kernel_outcome(parent, end, headroom, columns, rotation)
    assert compiled == _allocate_walk(parent, end, headroom, requests, rotation)


@pytest.mark.req("FR-003", "NFR-001")
@pytest.mark.parametrize("seed", range(3))
def test_compiled_walk_matches_the_python_walk_on_a_large_depot(seed):
    # Thousands of requests under saturated caps: the kernel's selection narrows its interval many times.
    parent, end, headroom, requests = _tied_problem(seed, circuits=(60, 60), points=(15, 15))
    columns = RequestColumns(*map(list, zip(*requests, strict=True)))
    compiled = kernel_outcome(parent, end, headroom, columns, seed)
    assert len(requests) > 1_000
    assert compiled == _allocate_walk(parent, end, headroom, requests, seed)


def test_numbers_beyond_int64_take_the_python_walk_with_the_same_rule():
    huge = 10**15  # times 2**32 fixed-point units: beyond int64, so the Python walk answers
    outcome = allocate([-1, 0, 0], [3, 2, 3], [3 * huge, None, None], [Req(1, 2 * huge), Req(2, 2 * huge, rank=1)])
    assert outcome.watts == (3 * huge // 2, 3 * huge // 2)
    columns = RequestColumns([1, 2], [2 * huge, 2 * huge], [0, 0], [1, 1], [0, 0], [0, 1])
    assert kernel_outcome([-1, 0, 0], [3, 2, 3], [3 * huge, None, None], columns, 0) is None  # out of its range
    assert allocate_columns([-1, 0, 0], [3, 2, 3], [3 * huge, None, None], columns) == outcome  # the walk answers


def test_the_compiled_walk_refuses_what_is_not_a_tree_in_preorder():
    columns = RequestColumns([1], [10], [0], [1], [0], [0])
    with pytest.raises(ValueError, match="not a tree in preorder"):
        kernel_outcome([-1, 2, 0], [3, 3, 3], [None, None, None], columns, 0)  # a parent after its child
    with pytest.raises(ValueError, match="different lengths"):
        kernel_outcome([-1, 0], [2, 2], [None], columns, 0)
    with pytest.raises(IndexError, match="no node"):
        kernel_outcome([-1, 0], [2, 2], [None, None], RequestColumns([5], [10], [0], [1], [0], [0]), 0)
