"""A bounded memo per microgrid, for values that are pure functions of a microgrid's inputs.

The compiled topology (`topology.compiled_topology`) and the resolved baseline limits
(`effective_constraints`) are remembered per microgrid so that a cycle with an unchanged tree and
unchanged limits does not redo them. A fleet's scheduler visits its depots in turn, so a memo that
holds fewer microgrids than one process balances misses on every cycle (least recently used is
exactly the next one due): the memos held 32, and past 32 depots a process recompiled every tree
every cycle (issue 13: balancing's CPU per cycle doubled between 30 and 50 depots). So the bound is
by size, the nodes kept, as large as a process's state cache holds: a process pays the memory of the
microgrids it balances, and nothing more.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

# Nodes kept per memo: ~0.4-0.5 KB of compiled topology a node (a 311-node depot 168 KB, a 40,000-node
# tree 14.5 MB), so at most ~0.5 GB when full; 3,000 fleet depots of 311 nodes fit, as do 25 trees of
# 40,000 nodes. Entries are bounded too, as balancing's state cache (2,000 microgrids).
NODES_KEPT = 1_000_000
ENTRIES_KEPT = 2_000


class MicrogridMemo(Generic[K, V]):
    """Least recently used first out, bounded by the total size of its entries and by their count.

    An entry larger than the whole budget is not kept (computing it again is all it costs)."""

    def __init__(self, size_budget: int = NODES_KEPT, max_entries: int = ENTRIES_KEPT) -> None:
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._budget = size_budget
        self._max = max_entries
        self._size = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        return self._size

    def get(self, key: K) -> V | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        self._entries.move_to_end(key)
        return hit[0]

    def put(self, key: K, value: V, size: int) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._size -= old[1]
        if size > self._budget:
            return
        self._entries[key] = (value, size)
        self._size += size
        while self._size > self._budget or len(self._entries) > self._max:
            _, (_, gone) = self._entries.popitem(last=False)
            self._size -= gone
