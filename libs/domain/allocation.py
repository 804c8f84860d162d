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
4. Integer watts: levels are integers in units of ``1 / L`` W per unit weight (``L`` = lcm of the
   class's weights) rounded down, then each allocation is rounded down, so caps always hold; the few
   watts left by rounding go, one watt each, to level-bound requests in tie-break order while every
   cap on their path still has room. Each result is within 2 W of the exact fair share.

Tie-break order: ascending ``rank`` (the caller passes a stable rank, e.g. by node id), rotated by
``rotation`` within each class, so a caller that advances the rotation each cycle moves who is
paused first instead of starving the same connector for ever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from math import lcm


@dataclass(frozen=True, slots=True)
class AllocationRequest:
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
    for priority in sorted(classes, reverse=True):
        members = sorted(classes[priority], key=lambda r: (requests[r].rank, r))
        start = rotation % len(members)
        ordered = members[start:] + members[:start]
        admitted = _admit(parent, avail, requests, ordered, states, binding, n)
        if admitted:
            _fill(parent, subtree_end, avail, requests, admitted, ordered, watts, states, binding, n)
    return AllocationOutcome(tuple(watts), tuple(states), tuple(binding))


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
    uniform = all(requests[r].min_watts == 0 and requests[r].weight == requests[admitted[0]].weight for r in admitted)
    # Requests in preorder of their node: every subtree is one contiguous slice.
    by_node = sorted(admitted, key=lambda r: requests[r].node)
    k = len(by_node)
    weight = [max(1, requests[r].weight) for r in by_node]
    units = [scale // w for w in weight]
    low = [
        requests[r].min_watts * u for r, u in zip(by_node, units, strict=True)
    ]  # level where a request starts rising
    top = [requests[r].requested_watts * u for r, u in zip(by_node, units, strict=True)]  # level where it is satisfied
    level = list(top)
    bound = [-1] * k
    first = [0] * (n + 1)
    ginf = [0] * n
    for r in by_node:
        node = requests[r].node
        first[node + 1] += 1
        ginf[node] += requests[r].requested_watts
    for i in range(n):
        first[i + 1] += first[i]
    for i in range(n - 1, -1, -1):
        g = ginf[i]
        a = avail[i]
        if a is not None and g > a:
            lo, hi = first[i], first[subtree_end[i]]
            lam = (
                _uniform_level(level, lo, hi, a) if uniform else _weighted_level(low, level, weight, lo, hi, a * scale)
            )
            if lam is not None:
                for j in range(lo, hi):
                    if level[j] > lam:
                        level[j] = lam
                        bound[j] = i
            g = a
        if i:
            ginf[parent[i]] += g
    granted = [0] * k
    for j, r in enumerate(by_node):
        req = requests[r]
        if level[j] <= low[j]:
            granted[j] = req.min_watts
        else:
            granted[j] = min(req.requested_watts, weight[j] * level[j] // scale)
    # Hand the watts lost to rounding back, one each, in tie-break order.
    use = [0] * n
    for j, r in enumerate(by_node):
        use[requests[r].node] += granted[j]
    for i in range(n - 1, 0, -1):
        use[parent[i]] += use[i]
    slack = [None if avail[i] is None else avail[i] - use[i] for i in range(n)]  # type: ignore[operator]
    slot = {r: j for j, r in enumerate(by_node)}
    for r in ordered:
        j = slot.get(r)
        if j is None or bound[j] < 0 or level[j] <= low[j] or granted[j] >= requests[r].requested_watts:
            continue
        path = _capped_path(parent, slack, requests[r].node)
        if all(slack[i] >= 1 for i in path):  # type: ignore[operator]
            granted[j] += 1
            for i in path:
                slack[i] -= 1  # type: ignore[operator]
    for i in range(n):
        if slack[i] is not None:
            avail[i] = slack[i]
    for j, r in enumerate(by_node):
        watts[r] = granted[j]
        if granted[j] >= requests[r].requested_watts:
            states[r] = AllocationState.ALLOCATED
        else:
            states[r] = AllocationState.CURTAILED
            binding[r] = bound[j]


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
