"""Independent reference for the allocator: lexicographic weighted max-min fairness by repeated LPs (HiGHS).

Each round maximises the common level ``t`` with ``a_k >= weight_k * t`` for every request not yet
frozen (and ``lower_k <= a_k <= upper_k``, every cap respected), then freezes the requests that
cannot rise above that level. Exact in real numbers; slow, so only for small instances.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import csr_matrix

EPS = 1e-6


def lp_max_min(
    parent: Sequence[int],
    subtree_end: Sequence[int],
    headroom: Sequence[int | None],
    requests: Sequence[tuple[int, float, float, float]],
) -> list[float]:
    """``requests``: (node, lower, upper, weight). Returns the fair allocation, one value per request."""
    del parent  # the subtree ranges carry the whole tree shape
    k = len(requests)
    if k == 0:
        return []
    rows, caps = [], []
    for i, h in enumerate(headroom):
        if h is None:
            continue
        row = [1.0 if i <= node < subtree_end[i] else 0.0 for node, _, _, _ in requests]
        if any(row):
            rows.append(row + [0.0])
            caps.append(float(max(0, h)))
    bounds = [(lo, hi) for _, lo, hi, _ in requests]
    frozen: dict[int, float] = {}
    while len(frozen) < k:
        free = [j for j in range(k) if j not in frozen]
        level_rows = []
        for j in free:
            row = [0.0] * (k + 1)
            row[j] = -1.0
            row[k] = requests[j][3]  # weight * t - a_j <= 0
            level_rows.append(row)
        a_ub = csr_matrix(np.array(rows + level_rows)) if rows or level_rows else None
        b_ub = np.array(caps + [0.0] * len(level_rows))
        var_bounds = [(v, v) if j in frozen else bounds[j] for j, v in ((j, frozen.get(j)) for j in range(k))]
        top_t = max(hi / w for _, _, hi, w in (requests[j] for j in free)) + 1.0
        solved = linprog(c=[0.0] * k + [-1.0], A_ub=a_ub, b_ub=b_ub, bounds=[*var_bounds, (0.0, top_t)], method="highs")
        assert solved.status == 0, solved.message
        t = solved.x[k]
        # Who can still rise? First a cheap pass: maximise the free total at this level.
        fixed_t = [*var_bounds, (t, t)]
        spread = linprog(
            c=[-1.0 if j in free else 0.0 for j in range(k)] + [0.0],
            A_ub=a_ub,
            b_ub=b_ub,
            bounds=fixed_t,
            method="highs",
        )
        # The rest: maximise their summed rise above the level; those that rise are not frozen, and
        # once none can, each one alone cannot either (every rise is >= 0), so they all freeze.
        candidates = [j for j in free if spread.x[j] <= max(requests[j][1], requests[j][3] * t) + EPS]
        while candidates:
            open_set = set(candidates)
            rise = linprog(
                c=[-1.0 if j in open_set else 0.0 for j in range(k)] + [0.0],
                A_ub=a_ub,
                b_ub=b_ub,
                bounds=fixed_t,
                method="highs",
            )
            rose = {j for j in candidates if rise.x[j] > max(requests[j][1], requests[j][3] * t) + EPS}
            if not rose:
                break
            candidates = [j for j in candidates if j not in rose]
        newly = [(j, max(requests[j][1], requests[j][3] * t)) for j in candidates]
        if not newly:  # numerical stall: freeze the tightest
            j = min(free, key=lambda i: solved.x[i] - requests[i][3] * t)
            newly.append((j, max(requests[j][1], requests[j][3] * t)))
        for j, value in newly:
            frozen[j] = value
    return [frozen[j] for j in range(k)]
