"""The per-microgrid memos hold a whole fleet: a scheduler visits its depots in turn, and a memo smaller than
the fleet misses on every cycle (issue 13: past 32 depots every tree was compiled again every cycle)."""

from dataclasses import replace

from libs.domain.memo import MicrogridMemo
from libs.domain.topology import compiled_topology
from tests.unit.domain.scenario import MICROGRID, depot_nodes, limit


def test_a_fleet_visited_in_turn_compiles_each_tree_once():
    fleet = [replace(MICROGRID, microgrid_id=f"mg-{i:03d}") for i in range(200)]
    nodes = tuple(depot_nodes())
    first = [compiled_topology(mg, nodes) for mg in fleet]
    again = [compiled_topology(mg, nodes) for mg in fleet]
    assert all(a is b for a, b in zip(first, again, strict=True))


def test_a_new_version_replaces_the_microgrids_compiled_tree():
    nodes = tuple(depot_nodes())
    mg = replace(MICROGRID, microgrid_id="mg-versions")
    old = compiled_topology(mg, nodes)
    new = compiled_topology(replace(mg, version=mg.version + 1), nodes)
    assert new is not old
    assert compiled_topology(replace(mg, version=mg.version + 1), nodes) is new


def test_the_memo_forgets_the_least_recently_used_beyond_its_size_budget():
    memo: MicrogridMemo[str, str] = MicrogridMemo(size_budget=10, max_entries=100)
    memo.put("a", "A", 4)
    memo.put("b", "B", 4)
    assert memo.get("a") == "A"  # a is now the most recently used
    memo.put("c", "C", 4)  # 12 > 10: b goes
    assert (memo.get("a"), memo.get("b"), memo.get("c")) == ("A", None, "C")
    assert memo.size == 8


def test_the_memo_is_bounded_in_entries_too():
    memo: MicrogridMemo[int, int] = MicrogridMemo(size_budget=1_000, max_entries=3)
    for i in range(5):
        memo.put(i, i, 1)
    assert len(memo) == 3 and memo.get(0) is None and memo.get(4) == 4


def test_an_entry_larger_than_the_budget_is_not_kept_and_a_replaced_entry_frees_its_size():
    memo: MicrogridMemo[str, str] = MicrogridMemo(size_budget=10, max_entries=10)
    memo.put("a", "A", 6)
    memo.put("a", "A2", 3)
    assert memo.size == 3 and memo.get("a") == "A2"
    memo.put("huge", "H", 11)
    assert memo.get("huge") is None and memo.get("a") == "A2" and memo.size == 3
    memo.put("a", "A3", 11)  # replaced by something too large: forgotten, not kept stale
    assert memo.get("a") is None and memo.size == 0


def test_a_fleet_visited_in_turn_resolves_each_depots_unchanged_limits_once():
    from libs.domain.effective_constraints import _baseline

    nodes = tuple(depot_nodes())
    fleet = []
    for i in range(200):
        mg = replace(MICROGRID, microgrid_id=f"mg-limits-{i:03d}")
        index = compiled_topology(mg, nodes)
        limits = (replace(limit("cp1", 11_000), microgrid_id=mg.microgrid_id),)
        fleet.append((mg.microgrid_id, index.nodes, limits))
    first = [_baseline(*depot) for depot in fleet]
    again = [_baseline(*depot) for depot in fleet]
    assert all(a[1] is b[1] and a[1] for a, b in zip(first, again, strict=True))


def test_caps_placed_once_per_set_of_limits_and_this_cycles_envelopes_placed_over_them():
    from contracts.enums import ConstraintType, EnvelopeType
    from libs.domain.physical_view import PhysicalView
    from tests.unit.domain.scenario import cycle_inputs, envelope

    limits = (limit("cp1", 20_000), limit("gc1", 90_000), limit("k3", 5_000, ConstraintType.NET_CAP))
    plain = cycle_inputs(node_limits=limits)
    index = compiled_topology(MICROGRID, tuple(plain.nodes))
    cp1, gc1, cp2, k3 = (index.position[x] for x in ("cp1", "gc1", "cp2", "k3"))

    def caps(inputs):
        view = PhysicalView(inputs, index, None)
        return view, {pos: c.limit_watts for pos, c in enumerate(view.cons) if c is not None}

    first, by_pos = caps(plain)
    assert by_pos == {cp1: 20_000, gc1: 90_000} and first.capped == [gc1, cp1, k3]
    lowered = replace(
        plain,
        envelopes=(
            envelope("e1", "cp1", EnvelopeType.TOU_LIMIT, (-10, 10, 7_000)),
            envelope("e2", "cp2", EnvelopeType.TOU_LIMIT, (-10, 10, 9_000)),
        ),
    )
    view, by_pos = caps(lowered)
    assert by_pos == {cp1: 7_000, gc1: 90_000, cp2: 9_000}  # over the placed limits, and where there were none
    assert view.capped == [gc1, cp1, cp2, k3] and view.constrained == view.capped
    again, by_pos = caps(plain)
    assert by_pos == {cp1: 20_000, gc1: 90_000}  # the placed limits were not written over
    assert again.cons is first.cons and again.capped == [gc1, cp1, k3]  # placed once for these limits
    other, by_pos = caps(replace(plain, node_limits=limits[1:]))
    assert by_pos == {gc1: 90_000} and other.capped == [gc1, k3]
