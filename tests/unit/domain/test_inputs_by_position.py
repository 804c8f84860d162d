"""The cycle's inputs placed by tree position (libs/domain/_columns.c), and the rules the Python code
states for the cases the compiled pass hands back: two records for one node, records of nodes not in
the tree, numbers beyond 64 bits."""

import random
import sys
from contextlib import ExitStack
from dataclasses import replace
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings

from contracts.enums import ReasonCode
from libs.domain import _columns
from libs.domain.codec import to_canonical_json
from libs.domain.cycle import request_columns, run_balancing_cycle
from libs.domain.cycle_inputs import ConnectorDemand
from libs.domain.physical_view import PhysicalView
from libs.domain.topology import compiled_topology
from tests.unit.domain.scenario import MICROGRID, allocated, cycle_inputs, demand, limit, reading
from tests.unit.domain.strategies import depots


def view_of(inputs):
    return PhysicalView(inputs, compiled_topology(inputs.microgrid, tuple(inputs.nodes)), None)


def draw_resolution(view, node_id):
    return next(r for r in view.resolutions if r.node_id == node_id)


def test_placed_puts_each_record_at_its_nodes_position():
    index = compiled_topology(MICROGRID, tuple(cycle_inputs().nodes))
    records = (demand("k3", 1), demand("k1", 2))
    placed = _columns.placed(records, index.position, len(index.order))
    assert [(pos, r) for pos, r in enumerate(placed) if r is not None] == sorted(
        [(index.position["k1"], records[1]), (index.position["k3"], records[0])]
    )
    assert _columns.placed((), index.position, len(index.order)) == [None] * len(index.order)


def test_placed_hands_back_what_it_does_not_decide():
    index = compiled_topology(MICROGRID, tuple(cycle_inputs().nodes))
    n = len(index.order)
    assert _columns.placed((demand("k1", 1), demand("k1", 2)), index.position, n) is None  # two for one node
    assert _columns.placed((demand("k1", 1), demand("elsewhere", 2)), index.position, n) is None  # not in the tree
    with pytest.raises(AttributeError):
        _columns.placed((object(),), index.position, n)


@pytest.mark.req("FR-004")
@pytest.mark.parametrize("order", [1, -1])
def test_of_two_readings_for_a_node_the_later_one_counts_whatever_their_order(order):
    """cp1 is metered: the cycle counts the connector k1's draw from its reading. Two readings of k1
    arrive: the later one (5 s old, 1,000 W; a stale 9,000 W one from 100 s ago) decides."""
    readings = (reading("k1", 1_000, age_s=5), reading("k1", 9_000, age_s=100))[::order]
    inputs = cycle_inputs(
        telemetry=(*readings, reading("cp1", 12_000)),
        connector_demands=(demand("k1", 22_000), demand("k2", 22_000)),
        freshness_threshold_seconds=60,
    )
    view = view_of(inputs)
    cp1 = view.index.position["cp1"]
    assert view.fallback_used[cp1] is False  # the stale reading was not the one taken
    assert view.base[cp1] == 12_000 - 1_000  # cp1's meter less k1's fresh draw


@pytest.mark.req("FR-003")
@pytest.mark.parametrize("order", [1, -1])
def test_of_two_demands_for_a_connector_the_larger_one_counts_whatever_their_order(order):
    demands = (demand("k1", 7_000), demand("k1", 11_000, 6_000))[::order]
    result = run_balancing_cycle(cycle_inputs(connector_demands=(*demands, demand("k3", 5_000))))
    assert allocated(result, "k1") == 11_000
    assert result.allocation_summary.total_requested_watts == 16_000


@pytest.mark.req("FR-003")
def test_records_of_nodes_not_in_the_tree_change_nothing():
    base = cycle_inputs(
        node_limits=(limit("cp1", 30_000),),
        telemetry=(reading("cp1", 4_000), reading("k1", 2_000)),
        connector_demands=(demand("k1", 22_000), demand("k2", 22_000), demand("k3", 9_000)),
    )
    stray = replace(
        base,
        telemetry=(reading("gone", 50_000), *base.telemetry),
        connector_demands=(*base.connector_demands, demand("k-gone", 40_000)),
    )
    a, b = run_balancing_cycle(base, digest="d"), run_balancing_cycle(stray, digest="d")
    assert a.allocation_summary.nodes == b.allocation_summary.nodes
    assert a.reason_codes == b.reason_codes


def python_columns(wish_at, positions, id_rank, alloc_node):
    wishes = [wish_at[p] for p in positions]
    return (
        [alloc_node[p] for p in positions],
        [max(0, w.requested_watts) for w in wishes],
        [max(0, w.min_watts) for w in wishes],
        [max(1, w.weight) for w in wishes],
        [w.priority for w in wishes],
        [id_rank[p] for p in positions],
    )


def test_request_columns_are_the_wishes_clamped_as_the_cycle_clamps_them():
    rng = random.Random(5)
    n = 400
    wish_at = [None] * n
    for pos in range(0, n, 2):
        wish_at[pos] = ConnectorDemand(
            f"k{pos}",
            rng.randint(-5_000, 22_000),
            rng.randint(-2_000, 6_000),
            rng.randint(-3, 3),
            rng.randint(-2, 4),
        )
    positions = list(range(0, n, 2))
    id_rank = rng.sample(range(n), n)
    alloc_node = list(range(1, n + 1))
    got = request_columns(wish_at, positions, id_rank, alloc_node)
    assert got.columns() == python_columns(wish_at, positions, id_rank, alloc_node)


def test_request_columns_beyond_64_bits_are_made_in_python_alike():
    wish_at = [ConnectorDemand("k0", 2**70, 2**66, 2**80, 5), ConnectorDemand("k1", 10, 0, 1, -(2**90))]
    assert _columns.request_columns(wish_at, [0, 1], [1, 0], [1, 2]) is None
    got = request_columns(wish_at, [0, 1], [1, 0], [1, 2])
    assert got.columns() == python_columns(wish_at, [0, 1], [1, 0], [1, 2])


def test_request_columns_refuse_a_position_outside_the_tree():
    with pytest.raises(IndexError):
        _columns.request_columns([demand("k1", 1)], [1], [0], [1])
    with pytest.raises(ValueError, match="different lengths"):
        _columns.request_columns([demand("k1", 1)], [0], [0, 1], [1])


def python_passes():
    """Every compiled pass of `_columns` answering None: the cycle takes the Python statement of each."""
    stack = ExitStack()
    for name in ("placed", "placed_again", "request_columns", "connector_pass", "top_down", "subtree_sums", "breaches"):
        stack.enter_context(mock.patch.object(_columns, name, lambda *args: None))
    return stack


@pytest.mark.req("FR-003", "FR-004", "NFR-002")
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(depots(max_nodes=24))
def test_the_compiled_passes_give_the_python_passes_cycle_byte_for_byte(inputs):
    """Random depots: stale, invalid and missing readings, fallback rules, maintenance, scopes, minimums,
    priorities, with readings and demands repeated for some nodes and some for nodes not in the tree."""
    extra = tuple(replace(r, measured_watts=r.measured_watts + 500) for r in inputs.telemetry[::3])
    inputs = replace(
        inputs,
        telemetry=(*inputs.telemetry, *extra, reading("not-in-tree", 5)),
        connector_demands=(*inputs.connector_demands, *inputs.connector_demands[::4]),
    )
    compiled = to_canonical_json(run_balancing_cycle(inputs, digest="d"))
    with python_passes():
        python = to_canonical_json(run_balancing_cycle(inputs, digest="d"))
    assert compiled == python


def test_the_connector_pass_hands_back_numbers_beyond_64_bits_with_nothing_written():
    inputs = cycle_inputs(
        telemetry=(reading("cp1", 1_000), reading("k1", 2**70), reading("k2", 3_000)),
        connector_demands=(demand("k1", 2**65), demand("k2", 5_000)),
    )
    index = compiled_topology(inputs.microgrid, tuple(inputs.nodes))
    view = PhysicalView(inputs, index, None)  # the Python pass answered
    cp1, k1 = index.position["cp1"], index.position["k1"]
    assert view.requested[k1] == 2**65 and view.requested[cp1] == 2**65 + 5_000
    with python_passes():
        assert PhysicalView(inputs, index, None).requested == view.requested
    n = len(index.order)
    requested, draw = [0] * n, [0] * n
    wish_of = _columns.placed(inputs.connector_demands, index.position, n)
    reading_of = _columns.placed(inputs.telemetry, index.position, n)
    passed = _columns.connector_pass(
        index.live_connectors, wish_of, reading_of, index.parent_pos, [True] * n, inputs.now, inputs.now,
        requested, draw, index.id_rank, index.alloc_node,
    )  # fmt: skip
    assert passed is None
    assert (requested, draw) == ([0] * n, [0] * n)


def test_the_walk_up_hands_back_sums_beyond_64_bits_with_nothing_written():
    inputs = cycle_inputs(
        telemetry=(reading("cp1", 2**63 - 1), reading("cp2", 2**63 - 1)),
        connector_demands=(demand("k1", 5_000),),
        node_limits=(limit("gc1", 10_000),),
    )
    index = compiled_topology(inputs.microgrid, tuple(inputs.nodes))
    view = PhysicalView(inputs, index, None)  # each base fits in 64 bits, their sum at gc1 does not
    assert view.base[index.position["gc1"]] >= 2 * (2**63 - 1) - 5_000
    with python_passes():
        assert PhysicalView(inputs, index, None).base == view.base
    n = len(index.order)
    less_draw = [None] * n
    less_draw[index.position["cp1"]] = less_draw[index.position["cp2"]] = 2**63 - 1
    columns = [[0] * n for _ in range(5)]
    flags = [[False] * n for _ in range(2)]
    assert _columns.subtree_sums(index.inner, index.parent_pos, [None] * n, less_draw, *columns, *flags) is None
    assert columns == [[0] * n for _ in range(5)] and flags == [[False] * n for _ in range(2)]


def test_the_walk_up_hands_back_a_parent_it_does_not_sum():
    index = compiled_topology(MICROGRID, tuple(cycle_inputs().nodes))
    n = len(index.order)
    some = [pos for pos in index.inner if index.parent_pos[pos] >= 0]  # without the grid connections
    columns = [[0] * n for _ in range(5)]
    flags = [[False] * n for _ in range(2)]
    assert _columns.subtree_sums(some, index.parent_pos, [None] * n, [None] * n, *columns, *flags) is None


class UnslottedDemand:
    """A record the compiled passes cannot read from a slot: read through getattr instead."""

    def __init__(self, node_id, requested_watts):
        self.node_id, self.requested_watts = node_id, requested_watts
        self.min_watts, self.priority, self.weight = 0, 0, 1


class RenamedDemand(ConnectorDemand):
    """A slotted record whose type answers ``node_id`` otherwise than from its slot."""

    __slots__ = ()

    @property
    def node_id(self):
        return "k2"


def test_records_are_read_alike_whatever_keeps_their_attributes():
    index = compiled_topology(MICROGRID, tuple(cycle_inputs().nodes))
    n = len(index.order)
    slotted, unslotted = demand("k1", 1), UnslottedDemand("k1", 1)
    for records in ((slotted,), (unslotted,), (slotted,), (unslotted, demand("k2", 2))):
        placed = _columns.placed(records, index.position, n)
        assert [r for r in placed if r is not None] == sorted(records, key=lambda r: index.position[r.node_id])
    renamed = object.__new__(RenamedDemand)
    for name, value in (("node_id", "k1"), ("requested_watts", 3), ("min_watts", 0), ("priority", 0), ("weight", 1)):
        ConnectorDemand.__dict__[name].__set__(renamed, value)  # its slot says k1, its type k2
    assert _columns.placed((renamed,), index.position, n)[index.position["k2"]] is renamed
    unset = object.__new__(ConnectorDemand)  # a slot never set: getattr's own error
    with pytest.raises(AttributeError, match="node_id"):
        _columns.placed((unset,), index.position, n)


def test_the_cap_check_hands_back_numbers_beyond_64_bits():
    inputs = cycle_inputs(
        telemetry=(reading("cp1", 2**63 - 1), reading("cp2", 2**63 - 1)),
        connector_demands=(demand("k1", 5_000),),
        node_limits=(limit("gc1", 10_000), limit("cp1", 2**64)),
    )
    index = compiled_topology(inputs.microgrid, tuple(inputs.nodes))
    view = PhysicalView(inputs, index, None)
    positions = view.constrained
    flags = (view.controllable, view.fallback_used, view.generation_fallback)
    columns = (view.cons, view.gen, view.net, view.base, view.requested, view.generation, view.generation_seen)
    codes = (ReasonCode.NODE_CAP_EXCEEDED, ReasonCode.ANCESTOR_CAP_EXCEEDED)
    assert _columns.breaches(positions, *columns, *flags, index.order, *codes) is None
    compiled = list(run_balancing_cycle(inputs, digest="d").breaches)  # the Python check answered
    with python_passes():
        assert list(run_balancing_cycle(inputs, digest="d").breaches) == compiled
    breached = {b.node_id: (b.reason_code, b.effective_demand_watts) for b in compiled}
    assert breached == {"gc1": (ReasonCode.NODE_CAP_EXCEEDED, 2 * (2**63 - 1) + 5_000)}  # not cp1: its cap is larger


def test_the_connector_pass_makes_the_request_columns_as_request_columns_makes_them():
    wishes = (
        demand("k1", -5, 900, priority=3, weight=0),  # clamped: requested 0, weight 1
        demand("k2", 7_000, -1, priority=-2, weight=4),  # minimum clamped at 0
        demand("k3", 11_000, 4_200),
    )
    inputs = cycle_inputs(connector_demands=wishes)
    index = compiled_topology(inputs.microgrid, tuple(inputs.nodes))
    view = PhysicalView(inputs, index, None)
    assert view.request_columns is not None
    made = request_columns(view.demand, view.wished, index.id_rank, index.alloc_node)
    assert view.request_columns.columns() == made.columns()
    assert made.columns() == python_columns(view.demand, view.wished, index.id_rank, index.alloc_node)
    assert made.requested_watts == [0, 7_000, 11_000] and made.weight == [1, 4, 1] and made.min_watts == [900, 0, 4_200]


def test_placing_again_by_hint_places_as_the_dict_does_whatever_the_hint_says():
    index = compiled_topology(MICROGRID, tuple(cycle_inputs().nodes))
    n, order, position = len(index.order), index.order, index.position
    records = (demand("k3", 1), demand("cp1", 2), demand("k1", 3))
    expected = _columns.placed(records, position, n)
    first, hint = _columns.placed_again(records, position, order, None)
    assert first == expected
    assert list(memoryview(hint).cast("i")) == [position["k3"], position["cp1"], position["k1"]]
    shuffled = (records[2], records[0], records[1])  # the hint now points elsewhere for each record
    assert _columns.placed_again(shuffled, position, order, hint)[0] == expected
    fresh_ids = tuple(replace(r, node_id="".join(list(r.node_id))) for r in records)  # equal, not the same str
    assert fresh_ids[0].node_id is not records[0].node_id
    assert _columns.placed_again(fresh_ids, position, order, hint)[0] == _columns.placed(fresh_ids, position, n)
    garbage = memoryview(bytearray(b"\xff\xff\xff\x7f" + b"\x00" * 4)).cast("i")  # out of range, then too short
    assert _columns.placed_again(records, position, order, garbage)[0] == expected
    assert _columns.placed_again((*records, demand("elsewhere", 1)), position, order, hint) is None
    assert _columns.placed_again((records[0], records[0]), position, order, hint) is None


def test_a_cycle_places_its_records_alike_with_the_previous_cycles_hint_or_without_one():
    inputs = cycle_inputs(
        telemetry=(reading("cp1", 1_000), reading("k1", 2_000), reading("k2", 3_000)),
        connector_demands=(demand("k1", 5_000), demand("k2", 6_000), demand("k3", 7_000)),
    )
    first = to_canonical_json(run_balancing_cycle(inputs, digest="d"))
    reordered = replace(
        inputs, telemetry=inputs.telemetry[::-1], connector_demands=(inputs.connector_demands[1:] + (demand("k1", 9),))
    )
    changed = to_canonical_json(run_balancing_cycle(reordered, digest="d"))  # hinted by the first cycle
    with python_passes():
        assert to_canonical_json(run_balancing_cycle(reordered, digest="d")) == changed
        assert to_canonical_json(run_balancing_cycle(inputs, digest="d")) == first


def test_the_kernel_reads_the_packed_columns_as_it_reads_the_lists():
    from libs.domain import _allocation_kernel
    from libs.domain.allocation import _STATE_CODES
    from libs.domain.cycle import allocation_problem

    inputs = cycle_inputs(
        connector_demands=(demand("k1", 9_000, 4_000, priority=1), demand("k2", 7_000, weight=3), demand("k3", 8_000)),
        node_limits=(limit("cp1", 10_000), limit("gc1", 12_000)),
    )
    index = compiled_topology(inputs.microgrid, tuple(inputs.nodes))
    problem = allocation_problem(PhysicalView(inputs, index, None), 0, len(index.order))
    columns = problem.columns
    assert columns.packed is not None
    lists = request_columns(problem_view_demand(inputs, index), problem.positions, index.id_rank, index.alloc_node)
    packed = memoryview(columns.packed).cast("q")
    assert [list(packed[c * len(columns) : (c + 1) * len(columns)]) for c in range(6)] == list(lists.columns())
    assert columns.requested_total() == sum(lists.requested_watts) == 24_000
    assert columns.kernel_columns()[1] is None  # the total came with the packed columns: no list made for it
    tree = (problem.parent, problem.subtree_end, problem.headroom)
    from_lists = _allocation_kernel.allocate(*tree, *lists.columns(), 0, _STATE_CODES)
    nothing = (None,) * 6  # read from packed alone
    assert _allocation_kernel.allocate(*tree, *nothing, 0, _STATE_CODES, columns.packed) == from_lists
    huge = bytearray(columns.packed)
    huge[8 * len(columns) : 16 * len(columns)] = (2**41).to_bytes(8, sys.byteorder) * len(columns)  # requested
    assert _allocation_kernel.allocate(*tree, *nothing, 0, _STATE_CODES, bytes(huge)) is None
    with pytest.raises(ValueError, match="six columns"):
        _allocation_kernel.allocate(*tree, *nothing, 0, _STATE_CODES, columns.packed[:-8])


def problem_view_demand(inputs, index):
    return PhysicalView(inputs, index, None).demand


def test_request_columns_from_packed_are_made_as_they_are_read():
    from libs.domain.allocation import RequestColumns

    rows = [(1, 9_000, 4_000, 1, 2, 7), (3, 0, 0, 4, -1, 2)]
    packed = b"".join(v.to_bytes(8, sys.byteorder, signed=True) for column in zip(*rows, strict=True) for v in column)
    columns = RequestColumns.from_packed(packed)
    assert len(columns) == 2 and columns.kernel_columns() == (None,) * 6  # nothing made yet
    assert RequestColumns.from_packed(packed).requested_total() == 9_000  # summed when not given
    assert columns.requested_watts == [9_000, 0]
    assert columns.kernel_columns() == (None, [9_000, 0], None, None, None, None)
    assert list(columns) == [RequestColumns(*map(list, zip(*rows, strict=True)))[r] for r in range(2)]
    assert columns.columns() == tuple(map(list, zip(*rows, strict=True)))


def test_a_fresh_scopes_record_is_made_when_read_and_is_the_one_resolution_gives():
    from libs.domain.demand import resolve_scope_demand

    readings = (reading("cp1", 1_000), reading("c1", 2_000, age_s=900), reading("gc1", 5_000, valid=False))
    inputs = cycle_inputs(telemetry=readings, connector_demands=(demand("k1", 5_000),))  # no caps: no fail-safe limit
    view = view_of(inputs)
    assert view.resolutions._items is None  # nothing made yet
    assert view.fallback_resolved  # c1 is stale, gc1 invalid: both fall back
    for r in readings:
        expected = resolve_scope_demand(r.node_id, r, None, inputs.now, inputs.freshness_threshold_seconds, None)
        assert draw_resolution(view, r.node_id) == expected
    assert not view_of(cycle_inputs(telemetry=(reading("cp1", 1_000),))).fallback_resolved
