"""Max-min fair allocation of power to connectors under nested caps (water-filling over a tree).

The problem: a tree in preorder (position 0 is the root, ``parent[i] < i``, the subtree of ``i`` is
``i .. subtree_end[i] - 1``), a headroom per node (None: uncapped), and requests sitting on nodes.
Every capped node bounds the sum allocated to the requests in its subtree, so no node, ancestor,
grid connection or aggregate cap can be exceeded; because a node's cap bounds its whole subtree,
ancestor caps take precedence over anything decided below them.

The rule, in order:

1. Priority classes, highest first. A class shares only what the classes above it left.
2. Minimum power. A request whose ``requested_watts`` is below its ``min_watts`` cannot charge
   (BELOW_MINIMUM, 0 W). Within a class, requests are admitted one by one in tie-break order while
   their minimums still fit under every cap on their path; the rest are PAUSED at 0 W, never given
   an unusable trickle.
3. Weighted max-min fairness among the admitted requests: raise a common level ``lambda``; each
   request gets ``min(requested, max(min, weight * lambda))``; a node whose cap is reached freezes
   its subtree. Computed bottom-up: each saturated node's level is found by a sweep over the
   breakpoints of the requests below it (O(k log k)), only for nodes that actually saturate.
4. Integer watts, rounded once at the end. Levels are found in fixed point (units of
   ``2**-32 / L`` W per unit weight, ``L`` = lcm of the class's weights), never floored to whole
   watts on the way up, so a saturated subtree hands its parent exactly its cap and nothing leaks
   to its siblings. The shares are then rounded by largest remainder down the tree: each root's
   total rounded up, each node's whole watts handed to its requests and child subtrees (floor each,
   the watts left one each to the largest remainders, ties in tie-break order). Every subtree then
   sums to the floor or the ceiling of its exact share, so no integer cap is exceeded, and every
   request is within 1 W of the exact weighted max-min share, at any tree size.

Tie-break order: ascending ``rank`` (the caller passes a stable rank, e.g. by node id), rotated by
``rotation`` within each class, so a caller that advances the rotation each cycle moves who is
paused first instead of starving the same connector for ever.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import accumulate
from math import lcm
from typing import NamedTuple

from libs.domain import _allocation_kernel as _kernel  # compiled by pip install (setup.py)


class AllocationRequest(NamedTuple):
    """One request on a tree node (a NamedTuple: the cycle builds thousands per run, and they are cheaper)."""

    node: int
    requested_watts: int
    min_watts: int = 0
    weight: int = 1
    priority: int = 0
    rank: int = 0


class AllocationState(StrEnum):
    ALLOCATED = "ALLOCATED"  # got everything requested
    CURTAILED = "CURTAILED"  # got less, bound by a cap
    PAUSED = "PAUSED"  # its minimum did not fit: 0 W this cycle
    BELOW_MINIMUM = "BELOW_MINIMUM"  # requested less than its minimum: cannot charge
    IDLE = "IDLE"  # requested nothing
    UNAVAILABLE = "UNAVAILABLE"  # not allocatable (status or scope); set by the cycle, not here


@dataclass(frozen=True, slots=True)
class AllocationOutcome:
    watts: tuple[int, ...]
    states: tuple[AllocationState, ...]
    binding: tuple[int, ...]  # tree position of the cap that bound each request, -1 when none


def allocate(
    parent: Sequence[int],
    subtree_end: Sequence[int],
    headroom: Sequence[int | None],
    requests: Sequence[AllocationRequest],
    rotation: int = 0,
) -> AllocationOutcome:
    columns = RequestColumns(*map(list, zip(*requests, strict=True))) if requests else RequestColumns.empty()
    return allocate_columns(parent, subtree_end, headroom, columns, rotation)


def _allocate_walk(
    parent: Sequence[int],
    subtree_end: Sequence[int],
    headroom: Sequence[int | None],
    requests: Sequence[AllocationRequest],
    rotation: int = 0,
) -> AllocationOutcome:
    """The allocation as a walk over Python ints: the reference, and the path for numbers beyond int64."""
    if isinstance(requests, RequestColumns):  # indexing columns builds a request each time: build them once
        requests = list(map(AllocationRequest, *requests.columns()))
    n = len(parent)
    count = len(requests)
    avail: list[int | None] = [None if h is None else max(0, h) for h in headroom]
    watts = [0] * count
    states = [AllocationState.IDLE] * count
    binding = [-1] * count
    classes: dict[int, list[int]] = {}
    for r, req in enumerate(requests):
        if req.requested_watts <= 0:
            continue
        if req.min_watts > req.requested_watts:
            states[r] = AllocationState.BELOW_MINIMUM
            continue
        classes.setdefault(req.priority, []).append(r)
    rank_of = [q.rank for q in requests]
    for priority in sorted(classes, reverse=True):
        members = sorted(classes[priority], key=rank_of.__getitem__)  # stable: equal ranks keep input order
        start = rotation % len(members)
        ordered = members[start:] + members[:start]
        admitted = _admit(parent, avail, requests, ordered, states, binding, n)
        if admitted:
            _fill(parent, subtree_end, avail, requests, admitted, ordered, watts, states, binding, n)
    return AllocationOutcome(tuple(watts), tuple(states), tuple(binding))


class RequestColumns(Sequence[AllocationRequest]):
    """Requests as columns (one list per field), as the cycle builds them; indexable as requests.

    Made from the six lists, or from ``packed`` alone: the same columns as native 64-bit ints, one after
    the other, as the cycle's compiled connector pass makes them. The kernel reads ``packed``; a column's
    list is made from it the first time something reads that column (most cycles read one or two: the
    requests' total, the minimums of the records), so 30,000 requests do not cost six lists of ints
    nobody reads."""

    __slots__ = ("_lists", "packed", "_count", "_requested_total")

    def __init__(
        self,
        node: list[int],
        requested_watts: list[int],
        min_watts: list[int],
        weight: list[int],
        priority: list[int],
        rank: list[int],
        packed: bytes | None = None,
    ) -> None:
        self._lists: list[list[int] | None] = [node, requested_watts, min_watts, weight, priority, rank]
        self.packed = packed
        self._count = len(node)
        self._requested_total: int | None = None

    @classmethod
    def from_packed(cls, packed: bytes, requested_total: int | None = None) -> RequestColumns:
        """``requested_total``: the sum of the requested watts, when the maker has it (None: summed here)."""
        columns = cls.__new__(cls)
        columns._lists = [None] * 6
        columns.packed = packed
        columns._count = len(packed) // (6 * 8)
        columns._requested_total = requested_total
        return columns

    def requested_total(self) -> int:
        """What the requests ask for together."""
        if self._requested_total is None:
            self._requested_total = sum(self.requested_watts)
        return self._requested_total

    @classmethod
    def empty(cls) -> RequestColumns:
        return cls([], [], [], [], [], [])

    def _column(self, c: int) -> list[int]:
        made = self._lists[c]
        if made is None:
            k = self._count
            made = memoryview(self.packed).cast("q")[c * k : (c + 1) * k].tolist()  # type: ignore[arg-type]
            self._lists[c] = made
        return made

    node = property(lambda self: self._column(0), doc="the allocation tree's node of each request")
    requested_watts = property(lambda self: self._column(1), doc="what each asks for, clamped at 0")
    min_watts = property(lambda self: self._column(2), doc="each one's minimum, clamped at 0")
    weight = property(lambda self: self._column(3), doc="each one's share within its class, at least 1")
    priority = property(lambda self: self._column(4), doc="each one's class (higher served first)")
    rank = property(lambda self: self._column(5), doc="each one's place in node_id order (the tie-break)")

    def columns(self) -> tuple[list[int], ...]:
        return tuple(self._column(c) for c in range(6))

    def kernel_columns(self) -> tuple[list[int] | None, ...]:
        """The six columns for the kernel: the lists made so far (None for the others, which it reads from
        ``packed``), or all six when there is nothing packed."""
        return tuple(self._lists) if self.packed is not None else self.columns()

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, r: int) -> AllocationRequest:  # type: ignore[override]
        return AllocationRequest(
            self.node[r], self.requested_watts[r], self.min_watts[r], self.weight[r], self.priority[r], self.rank[r]
        )


_STATE_CODES = (  # in the kernel's code order
    AllocationState.IDLE,
    AllocationState.BELOW_MINIMUM,
    AllocationState.PAUSED,
    AllocationState.ALLOCATED,
    AllocationState.CURTAILED,
)


def allocate_columns(
    parent: Sequence[int],
    subtree_end: Sequence[int],
    headroom: Sequence[int | None],
    requests: RequestColumns,
    rotation: int = 0,
) -> AllocationOutcome:
    """`allocate` on request columns: the compiled walk (`_allocation_kernel`, `_allocate_walk` ported
    line by line to C) when every number fits its 64-bit fixed point, the Python walk otherwise; both
    give the same integers, states and binding caps."""
    r = requests
    got = _kernel.allocate(parent, subtree_end, headroom, *r.kernel_columns(), rotation, _STATE_CODES, r.packed)
    if got is None:  # a number beyond the kernel's 64-bit fixed point
        return _allocate_walk(parent, subtree_end, headroom, requests, rotation)
    return AllocationOutcome(*got)


def _capped_path(parent: Sequence[int], avail: list[int | None], node: int) -> list[int]:
    path = []
    while node >= 0:
        if avail[node] is not None:
            path.append(node)
        node = parent[node]
    return path


def _admit(
    parent: Sequence[int],
    avail: list[int | None],
    requests: Sequence[AllocationRequest],
    ordered: list[int],
    states: list[AllocationState],
    binding: list[int],
    n: int,
) -> list[int]:
    """The requests of one class whose minimums fit, greedily in tie-break order."""
    with_min = [r for r in ordered if requests[r].min_watts > 0]
    if with_min:
        minsum = [0] * n
        for r in with_min:
            minsum[requests[r].node] += requests[r].min_watts
        fits = True
        for i in range(n - 1, -1, -1):
            a = avail[i]
            if a is not None and minsum[i] > a:
                fits = False
                break
            if i:
                minsum[parent[i]] += minsum[i]
        if not fits:
            reserved = [0] * n
            admitted = []
            for r in ordered:
                need = requests[r].min_watts
                path = _capped_path(parent, avail, requests[r].node)
                short = next((i for i in path if avail[i] - reserved[i] < need), -1)  # type: ignore[operator]
                if short >= 0:
                    states[r] = AllocationState.PAUSED
                    binding[r] = short
                    continue
                for i in path:
                    reserved[i] += need
                admitted.append(r)
            return admitted
    return list(ordered)


def _fill(
    parent: Sequence[int],
    subtree_end: Sequence[int],
    avail: list[int | None],
    requests: Sequence[AllocationRequest],
    admitted: list[int],
    ordered: list[int],
    watts: list[int],
    states: list[AllocationState],
    binding: list[int],
    n: int,
) -> None:
    scale = 1
    for r in admitted:
        scale = lcm(scale, max(1, requests[r].weight))
    unit = scale * _FINE  # shares are exact integers in 1/unit W
    # Requests in preorder of their node: every subtree is one contiguous slice.
    by_node = sorted(admitted, key=lambda r: requests[r].node)
    reqs = [requests[r] for r in by_node]
    k = len(reqs)
    node_of = [q.node for q in reqs]
    wanted = [q.requested_watts for q in reqs]
    weight = [max(1, q.weight) for q in reqs]
    units = [unit // w for w in weight]
    low = [q.min_watts * u for q, u in zip(reqs, units, strict=True)]  # level where a request starts rising
    level = [x * u for x, u in zip(wanted, units, strict=True)]  # capped below by the saturated nodes above it
    bound = [-1] * k
    first = [0] * (n + 1)
    ginf = [0] * n
    for j in range(k):
        node = node_of[j]
        first[node + 1] += 1
        ginf[node] += wanted[j]
    for i in range(n):
        first[i + 1] += first[i]
    for i in range(n - 1, -1, -1):
        g = ginf[i]
        a = avail[i]
        if a is not None and g > a:
            lo, hi = first[i], first[subtree_end[i]]
            lam = _level(low, level, weight, lo, hi, a * unit)
            if lam is not None:
                for j in range(lo, hi):
                    if level[j] > lam:
                        level[j] = lam
                        bound[j] = i
            g = a
        if i:
            ginf[parent[i]] += g
    # Each share in 1/unit W; round once, keeping every subtree's sum at the floor or ceiling of its share.
    share = [w * (lv if lv > lw else lw) for w, lv, lw in zip(weight, level, low, strict=True)]
    rank_in = {r: t for t, r in enumerate(ordered)}
    capped = [a is not None for a in avail]
    granted = _round_shares(parent, capped, node_of, share, [rank_in[r] for r in by_node], unit, n)
    use = [0] * n
    for j in range(k):
        use[node_of[j]] += granted[j]
    for i in range(n - 1, 0, -1):
        if parent[i] >= 0:
            use[parent[i]] += use[i]
    for i in range(n):
        a = avail[i]
        if a is not None:
            avail[i] = a - use[i]
    allocated, curtailed = AllocationState.ALLOCATED, AllocationState.CURTAILED
    for j, r in enumerate(by_node):
        watts[r] = granted[j]
        if granted[j] >= wanted[j]:
            states[r] = allocated
        else:
            states[r] = curtailed
            binding[r] = bound[j]


_FINE = 1 << 32  # levels are found to 2**-32 W per unit weight, so what flooring them loses stays far below 1 W


def _round_shares(
    parent: Sequence[int],
    capped: list[bool],
    node_of: list[int],
    share: list[int],
    tie: list[int],
    unit: int,
    n: int,
) -> list[int]:
    """Whole watts from shares in 1/unit W, rounded once: largest remainder down the capped nodes.

    Only capped nodes constrain the rounding, so it runs over them alone: the items of a capped node
    are the requests whose nearest capped node it is, and the capped nodes right below it. Each
    topmost capped node's total is rounded up (a request under no cap alone), and each capped node's
    whole watts are handed to its items: every item gets the floor of its share, and the watts left
    go one each to the items with the largest remainder (ties: tie-break order). Every capped subtree
    then sums to the floor or the ceiling of its exact share, which its integer cap cannot be below.
    """
    k = len(share)
    granted = [0] * k
    near = [-1] * n  # nearest capped node at or above each node
    up = [-1] * n  # of a capped node: the nearest capped node strictly above it
    tops: list[int] = []  # capped nodes, in preorder
    for i in range(n):
        p = parent[i]
        above = near[p] if p >= 0 else -1
        if capped[i]:
            near[i] = i
            up[i] = above
            tops.append(i)
        else:
            near[i] = above
    total = [0] * n
    best = [k] * n  # smallest tie-break position in the capped subtree
    own: dict[int, list[int]] = {}
    for j in range(k):
        c = near[node_of[j]]
        x = share[j]
        if c < 0:
            granted[j] = -(-x // unit)
            continue
        total[c] += x
        if tie[j] < best[c]:
            best[c] = tie[j]
        mine = own.get(c)
        if mine is None:
            own[c] = [j]
        else:
            mine.append(j)
    for i in reversed(tops):
        u = up[i]
        if u >= 0:
            total[u] += total[i]
            if best[i] < best[u]:
                best[u] = best[i]
    kids: dict[int, list[int]] = {}
    for i in tops:
        u = up[i]
        if u >= 0 and total[i]:
            kids.setdefault(u, []).append(i)
    target = [0] * n
    for i in tops:
        whole_total = total[i]
        if not whole_total:
            continue
        t = target[i] if up[i] >= 0 else -(-whole_total // unit)
        items: list[tuple[int, int, int, int]] = []  # (-remainder, tie, is_node, index)
        for j in own.get(i, ()):
            whole, rem = divmod(share[j], unit)
            granted[j] = whole
            t -= whole
            if rem:
                items.append((-rem, tie[j], 0, j))
        for c in kids.get(i, ()):
            whole, rem = divmod(total[c], unit)
            target[c] = whole
            t -= whole
            if rem:
                items.append((-rem, best[c], 1, c))
        if t:
            items.sort()
            for _, _, is_node, x in items[:t]:
                if is_node:
                    target[x] += 1
                else:
                    granted[x] += 1
    return granted


def _level(low: list[int], level: list[int], weight: list[int], lo: int, hi: int, target: int) -> int | None:
    """The saturation level of the requests ``lo..hi-1`` under ``target`` (= cap * L), None if never reached."""
    w0 = weight[lo]
    if all(low[j] == 0 and weight[j] == w0 for j in range(lo, hi)):
        return _uniform_level(level, lo, hi, target // w0)
    if hi - lo <= _SMALL:
        return _weighted_level(low, level, weight, lo, hi, target)
    return _level_by_bisection(low, level, weight, lo, hi, target)


def _uniform_level(level: list[int], lo: int, hi: int, cap: int) -> int | None:
    """Largest level with sum(min(level, top_j)) <= cap, all weights equal and no minimums."""
    tops = sorted(level[lo:hi])
    remaining = len(tops)
    used = 0
    for t in tops:
        if used + t * remaining > cap:
            return (cap - used) // remaining
        used += t
        remaining -= 1
    return None


_SMALL = 32  # below this many requests a sweep over breakpoints beats sorting and bisecting


def _level_by_bisection(
    low: list[int], level: list[int], weight: list[int], lo: int, hi: int, target: int
) -> int | None:
    """Largest integer level whose scaled total stays within ``target``, for many requests.

    Scaled total at level x: sum(w * clip(x, s, e)) = sum(w * max(x, s)) - sum(w * max(0, x - e)) with
    s the start and e (>= s) the end level of each request: two sorted lists with prefix sums answer
    it in O(log k), and a bisection over x finds the level.
    """
    w0 = weight[lo]
    if all(weight[j] == w0 for j in range(lo, hi)):
        return _equal_weight_bisection(low, level, w0, lo, hi, target)
    top_weight = max(weight[lo:hi]) + 1
    starts = sorted(low[j] * top_weight + weight[j] for j in range(lo, hi))
    ends = sorted(max(level[j], low[j]) * top_weight + weight[j] for j in range(lo, hi))
    s_at = [key // top_weight for key in starts]
    e_at = [key // top_weight for key in ends]
    s_w = list(accumulate((key % top_weight for key in starts), initial=0))
    s_ws = list(accumulate((key % top_weight * (key // top_weight) for key in starts), initial=0))
    e_w = list(accumulate((key % top_weight for key in ends), initial=0))
    e_we = list(accumulate((key % top_weight * (key // top_weight) for key in ends), initial=0))
    total_ws = s_ws[-1]

    def scaled(x: int) -> int:
        i = bisect_left(s_at, x)  # starts below x contribute w * x, the rest w * s
        j = bisect_left(e_at, x)  # ends below x give back w * (x - e)
        return total_ws - s_ws[i] + x * s_w[i] - x * e_w[j] + e_we[j]

    return _largest_within(scaled, e_at[-1], target)


def _equal_weight_bisection(low: list[int], level: list[int], w: int, lo: int, hi: int, target: int) -> int | None:
    """`_level_by_bisection` when every weight is ``w``: plain sorted levels, no packing."""
    starts = sorted(low[lo:hi])
    ends = sorted(map(max, level[lo:hi], low[lo:hi]))
    s_sum = list(accumulate(starts, initial=0))
    e_sum = list(accumulate(ends, initial=0))
    total = s_sum[-1]
    budget = target // w

    def total_at(x: int) -> int:
        i = bisect_left(starts, x)
        j = bisect_left(ends, x)
        return total - s_sum[i] + x * (i - j) + e_sum[j]

    return _largest_within(total_at, ends[-1], budget)


def _largest_within(total_at: Callable[[int], int], high: int, budget: int) -> int | None:
    """Largest integer x in [0, high) with total_at(x) <= budget (nondecreasing); None if high is within.

    total_at(0) is the sum of the minimums, within budget because admission guaranteed it.
    """
    if total_at(high) <= budget:
        return None
    low = 0
    while high - low > 1:
        mid = (low + high) // 2
        if total_at(mid) <= budget:
            low = mid
        else:
            high = mid
    return low


def _weighted_level(
    low: list[int],
    level: list[int],
    weight: list[int],
    lo: int,
    hi: int,
    target: int,
) -> int | None:
    """Largest integer level whose scaled total stays within ``target`` (= cap * L)."""
    value = 0
    events: list[tuple[int, int]] = []
    for j in range(lo, hi):
        w = weight[j]
        value += w * low[j]  # = L * min_watts: every admitted request holds its minimum from the start
        if level[j] > low[j]:
            events.append((low[j], w))
            events.append((level[j], -w))
    events.sort()
    prev = 0
    slope = 0
    for x, dw in events:
        if x > prev:
            if slope and value + slope * (x - prev) > target:
                return prev + (target - value) // slope
            value += slope * (x - prev)
            prev = x
        slope += dw
    return None
