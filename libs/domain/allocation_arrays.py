"""The water-fill of `allocation` on numpy arrays: the same numbers, one vector pass per tree depth.

`allocation._fill` finds, bottom-up, the level of every saturated node, then rounds the shares once
by largest remainder down the capped nodes. Both walks only need the nodes of one depth at a time
(the subtrees of one depth are disjoint), so here each depth is one set of array operations instead
of one Python step per node and per request. Every quantity is the same exact integer as in the
Python walk (shares in 1/unit W, levels floored the same way), so the result is identical: the
Python walk stays the reference and handles what does not fit in 64-bit integers (`fits`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_INT = np.int64
_LIMIT = 1 << 62  # every sum below stays under it, so no int64 operation can overflow


def fits(total_wanted: int, unit: int) -> bool:
    """Whether the fixed-point totals (at most every request's watts times ``unit``) fit in int64."""
    return (total_wanted + 1) * unit < _LIMIT


class ArrayTree:
    """A tree in preorder as arrays: parents, subtree ends and the nodes of each depth, deepest first."""

    __slots__ = ("parent", "subtree_end", "by_depth", "n", "positions", "depth_of", "parents_by_depth", "_near_up")

    def __init__(self, parent: Sequence[int], subtree_end: Sequence[int]) -> None:
        p = np.asarray(parent, dtype=_INT)
        self.parent = p
        self.subtree_end = np.asarray(subtree_end, dtype=_INT)
        self.n = n = len(p)
        depth = np.zeros(n, dtype=_INT)
        up = p.copy()
        while True:
            has = up >= 0
            if not has.any():
                break
            depth += has
            up = np.where(has, p[np.maximum(up, 0)], -1)
        order = np.argsort(depth, kind="stable")  # preorder kept within each depth
        counts = np.bincount(depth) if n else np.zeros(0, dtype=_INT)
        cuts = np.cumsum(counts)[:-1]
        self.by_depth = [d for d in reversed(np.split(order, cuts)) if len(d)]  # deepest first
        # Kept with the tree (it is compiled once per topology) rather than redone per allocation:
        self.positions = np.arange(n + 1, dtype=_INT)
        self.depth_of = np.zeros(n, dtype=_INT)  # depth from the top, counted over the non-empty depths
        for d, nodes in enumerate(reversed(self.by_depth)):
            self.depth_of[nodes] = d
        # Each depth's parents, and whether all of them are nodes (only the top depth holds roots).
        self.parents_by_depth = [(p[nodes], bool((p[nodes] >= 0).all())) for nodes in self.by_depth]
        self._near_up: tuple[bytes, np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]] | None = None

    def near_up(self, capped: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        """Per node, the nearest capped node at or above it, and for a capped node the nearest capped
        node strictly above it (-1: none); and per depth, deepest first, the capped nodes with a capped
        node above and that node. Kept for the last set of capped nodes (the same every cycle while the
        limits are)."""
        key = capped.tobytes()
        kept = self._near_up
        if kept is not None and kept[0] == key:
            return kept[1], kept[2], kept[3]
        n, parent = self.n, self.parent
        near = np.full(n, -1, dtype=_INT)
        up = np.full(n, -1, dtype=_INT)
        for nodes in reversed(self.by_depth):  # top-down
            p = parent[nodes]
            above = np.where(p >= 0, near[np.maximum(p, 0)], -1)
            c = capped[nodes]
            near[nodes] = np.where(c, nodes, above)
            up[nodes] = np.where(c, above, -1)
        near.flags.writeable = False
        up.flags.writeable = False
        climbs = []
        for nodes in self.by_depth:
            mine = nodes[capped[nodes] & (up[nodes] >= 0)]
            if len(mine):
                climbs.append((mine, up[mine]))
        self._near_up = (key, near, up, climbs)
        return near, up, climbs


def _segments(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the concatenated ranges lo[s]..hi[s]-1, and the segment of each."""
    sizes = hi - lo
    total = int(sizes.sum())
    seg = np.repeat(np.arange(len(lo), dtype=_INT), sizes)
    starts = np.cumsum(sizes) - sizes
    idx = np.arange(total, dtype=_INT) - starts[seg] + lo[seg]
    return idx, seg


def _levels(
    low: np.ndarray, level: np.ndarray, weight: np.ndarray, lo: np.ndarray, hi: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per segment, the largest integer x with sum(w * clip(x, low, max(level, low))) <= target.

    Returns (x, reached): ``reached`` False where even the top of every request stays within target
    (the Python walk's None). A sweep over the breakpoints of each segment, all segments at once.
    """
    m = len(lo)
    idx, seg = _segments(lo, hi)
    s = low[idx]
    e = np.maximum(level[idx], s)
    w = weight[idx]
    base = np.zeros(m, dtype=_INT)
    np.add.at(base, seg, w * s)
    rising = e > s
    es, ee, ew, eseg = s[rising], e[rising], w[rising], seg[rising]
    x = np.concatenate((es, ee))
    dw = np.concatenate((ew, -ew))
    sg = np.concatenate((eseg, eseg))
    order = _by_segment_then_x(sg, x, m)
    x, dw, sg = x[order], dw[order], sg[order]
    k = len(x)
    slope = np.cumsum(dw)  # slope after each event: a segment's events sum to zero, so no reset is needed
    nxt = np.empty(k, dtype=_INT)
    if k:
        nxt[:-1] = x[1:]
        nxt[-1] = x[-1]
    last = np.ones(k, dtype=bool)
    if k:
        last[:-1] = sg[1:] != sg[:-1]
    dx = np.where(last, 0, nxt - x)
    rise = slope * dx
    csum = np.cumsum(rise)
    first = np.ones(k, dtype=bool)
    if k:
        first[1:] = sg[1:] != sg[:-1]
    seg_start = np.maximum.accumulate(np.where(first, np.arange(k), 0))
    before = np.concatenate(([0], csum))[seg_start]  # cumulated rise before the segment's first event
    value_after = base[sg] + csum - before  # total at the next event's x (or at this x for the last)
    over = value_after > target[sg]
    out = np.zeros(m, dtype=_INT)
    reached = np.zeros(m, dtype=bool)
    hit = np.flatnonzero(over)
    if len(hit):
        # The first event of each segment after which the total passes the target: x lies before the next.
        hit_seg = sg[hit]
        keep = np.ones(len(hit), dtype=bool)
        keep[1:] = hit_seg[1:] != hit_seg[:-1]
        at = hit[keep]
        segs = sg[at]
        value_here = value_after[at] - rise[at]
        out[segs] = x[at] + (target[segs] - value_here) // slope[at]
        reached[segs] = True
    return out, reached


def _by_segment_then_x(sg: np.ndarray, x: np.ndarray, m: int) -> np.ndarray:
    """``np.lexsort((x, sg))`` (x >= 0, 0 <= sg < m): one stable sort of a combined key when it fits in
    int64 (the same permutation, several times faster than lexsort's pass per key)."""
    if len(x):
        span = int(x.max()) + 1
        if span * m < _LIMIT:
            return np.argsort(sg * span + x, kind="stable")
    return np.lexsort((x, sg))


def _items_in_order(
    group: np.ndarray, rem: np.ndarray, tie: np.ndarray, kind: np.ndarray, index: np.ndarray, n: int, unit: int
) -> np.ndarray:
    """``np.lexsort((index, kind, tie, -rem, group))``: by group, largest remainder first, then tie-break
    order, requests before nodes, index. (kind, index) names each item once, so the order is total and
    two sorts of combined int64 keys give the same permutation, much faster, when the keys fit."""
    m = len(group)
    wide = max(m, n) + 1  # above every index (a request's or a node's)
    if m and (int(tie.max()) + 1) * 2 * wide < _LIMIT and n * unit < _LIMIT:
        first = np.argsort(tie * (2 * wide) + kind * wide + index)  # unique keys: any sort will do
        then = np.argsort((group * unit + (unit - 1 - rem))[first], kind="stable")
        return first[then]
    return np.lexsort((index, kind, tie, -rem, group))


def fill(
    tree: ArrayTree,
    capped: np.ndarray,
    avail: np.ndarray,
    node_of: np.ndarray,
    wanted: np.ndarray,
    min_watts: np.ndarray,
    weight: np.ndarray,
    tie: np.ndarray,
    unit: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Granted watts and the binding node of each request, requests sorted by node (preorder), and
    where each node's requests start (``first[i]..first[subtree_end[i]]``: its subtree's).

    ``capped``/``avail``: per node, whether it has a cap and what the cap leaves (>= 0);
    ``tie``: each request's position in the class's tie-break order.
    """
    n = tree.n
    subtree_end = tree.subtree_end
    k = len(node_of)
    units = unit // weight
    low = min_watts * units
    level = wanted * units
    bound = np.full(k, -1, dtype=_INT)
    first = np.searchsorted(node_of, tree.positions, side="left")
    ginf = np.zeros(n, dtype=_INT)
    np.add.at(ginf, node_of, wanted)
    for nodes, (above, all_above) in zip(tree.by_depth, tree.parents_by_depth, strict=True):
        g = ginf[nodes]
        sat = capped[nodes] & (g > avail[nodes])
        if sat.any():
            at = nodes[sat]
            lo, hi = first[at], first[subtree_end[at]]
            lam, reached = _levels(low, level, weight, lo, hi, avail[at] * unit)
            if reached.any():
                at, lo, hi, lam = at[reached], lo[reached], hi[reached], lam[reached]
                idx, seg = _segments(lo, hi)
                clamp = level[idx] > lam[seg]
                j = idx[clamp]
                level[j] = lam[seg][clamp]
                bound[j] = at[seg][clamp]
            g = np.where(sat, avail[nodes], g)
        if all_above:
            np.add.at(ginf, above, g)
        else:
            has_parent = above >= 0
            np.add.at(ginf, above[has_parent], g[has_parent])
    share = weight * np.maximum(level, low)
    return _round_shares(tree, capped, node_of, share, tie, unit), bound, first


def _round_shares(
    tree: ArrayTree, capped: np.ndarray, node_of: np.ndarray, share: np.ndarray, tie: np.ndarray, unit: int
) -> np.ndarray:
    """`allocation._round_shares` by depth: the same largest-remainder rounding down the capped nodes."""
    n = tree.n
    k = len(share)
    near, up, climbs = tree.near_up(capped)
    granted = np.zeros(k, dtype=_INT)
    c_of = near[node_of] if k else np.zeros(0, dtype=_INT)
    free = c_of < 0
    granted[free] = -(-share[free] // unit)
    under = ~free
    total = np.zeros(n, dtype=_INT)
    np.add.at(total, c_of[under], share[under])
    best = np.full(n, k, dtype=_INT)
    np.minimum.at(best, c_of[under], tie[under])
    for mine, above in climbs:  # bottom-up over the capped nodes
        np.add.at(total, above, total[mine])
        np.minimum.at(best, above, best[mine])
    # Whole watts of every item: each request under a cap, and each capped node under another one.
    whole_req, rem_req = np.divmod(share, unit)
    granted[under] = whole_req[under]
    whole_node, rem_node = np.divmod(total, unit)
    target = np.zeros(n, dtype=_INT)
    is_cap = capped & (total != 0)
    top = is_cap & (up < 0)
    target[top] = -(-total[top] // unit)
    req_ids = np.flatnonzero(under)
    child = np.flatnonzero(is_cap & (up >= 0))
    target[child] = whole_node[child]
    # Watts left at each capped node once its items' whole watts are handed out, then given one each to
    # the largest remainders (ties: tie-break order, requests before nodes, then index), top-down.
    group_req = c_of[req_ids]
    group_child = up[child]
    item_group = np.concatenate((group_req, group_child))
    item_rem = np.concatenate((rem_req[req_ids], rem_node[child]))
    item_tie = np.concatenate((tie[req_ids], best[child]))
    item_kind = np.concatenate((np.zeros(len(req_ids), dtype=_INT), np.ones(len(child), dtype=_INT)))
    item_index = np.concatenate((req_ids, child))
    item_whole = np.concatenate((whole_req[req_ids], whole_node[child]))
    order = _items_in_order(item_group, item_rem, item_tie, item_kind, item_index, n, unit)
    item_group, item_rem = item_group[order], item_rem[order]
    item_kind, item_index, item_whole = item_kind[order], item_index[order], item_whole[order]
    m = len(order)
    handed = np.zeros(n, dtype=_INT)
    np.add.at(handed, item_group, item_whole)
    first_of = np.ones(m, dtype=bool)
    if m:
        first_of[1:] = item_group[1:] != item_group[:-1]
    rank = np.arange(m) - np.maximum.accumulate(np.where(first_of, np.arange(m), 0))
    item_depth = tree.depth_of[item_group]
    for d in range(len(tree.by_depth)):  # a node's target is complete once the level above handed out
        here = item_depth == d
        if not here.any():
            continue
        g = item_group[here]
        left = target[g] - handed[g]
        plus = (item_rem[here] > 0) & (rank[here] < left)
        kind, index = item_kind[here][plus], item_index[here][plus]
        granted[index[kind == 0]] += 1
        target[index[kind == 1]] += 1
    return granted
