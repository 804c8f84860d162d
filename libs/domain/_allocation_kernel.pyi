# The compiled allocation walk (libs/domain/_allocation_kernel.c); see allocation.allocate_columns.
from collections.abc import Sequence
from typing import TypeVar

_State = TypeVar("_State")

def allocate(
    parent: Sequence[int],
    subtree_end: Sequence[int],
    headroom: Sequence[int | None],
    node: Sequence[int] | None,  # None: read from packed
    requested_watts: Sequence[int] | None,  # None: read from packed
    min_watts: Sequence[int] | None,  # None: read from packed
    weight: Sequence[int] | None,  # None: read from packed
    priority: Sequence[int] | None,  # None: read from packed
    rank: Sequence[int] | None,  # None: read from packed
    rotation: int,
    states: tuple[_State, _State, _State, _State, _State],
    packed: bytes | None = None,
    /,
) -> tuple[tuple[int, ...], tuple[_State, ...], tuple[int, ...]] | None: ...
