# The cycle's inputs as columns by tree position (libs/domain/_columns.c); see physical_view._placed
# and cycle.request_columns.
from collections.abc import Sequence
from typing import Any, TypeVar

_Record = TypeVar("_Record")

def placed(records: Sequence[_Record], position: dict[str, int], n: int, /) -> list[_Record | None] | None: ...
def request_columns(
    wish_at: list[Any], positions: list[int], id_rank: list[int], alloc_node: list[int], /
) -> tuple[list[int], list[int], list[int], list[int], list[int], list[int]] | None: ...
def connector_pass(
    at: list[int],
    wish_of: list[Any],
    reading_of: list[Any],
    parent: list[int],
    meters: list[bool],
    earliest: Any,
    latest: Any,
    requested: list[int],
    draw: list[int],
    id_rank: list[int],
    next_of: list[int],
    /,
) -> tuple[list[int], list[int], bytes, int | None] | None: ...
def top_down(
    inner: list[int],
    parent: list[int],
    cons: list[Any],
    net: list[Any],
    gen: list[Any],
    reading_of: list[Any],
    rules: dict[str, Any],
    order: list[str],
    root_tight: int | None,
    root_gen_checked: bool,
    /,
) -> tuple[list[int | None], list[bool], list[bool]] | None: ...
def subtree_sums(
    uncontrolled: list[int],
    parent: list[int],
    at_least: list[int | None],
    less_draw: list[int | None],
    base: list[int],
    draw: list[int],
    requested: list[int],
    generation: list[int],
    generation_seen: list[int],
    fallback_used: list[bool],
    generation_fallback: list[bool],
    /,
) -> tuple[int, int, int, int, bool, bool] | None: ...
def breaches(
    positions: Sequence[int],
    cons: list[Any],
    gen: list[Any],
    net: list[Any],
    base: list[int],
    requested: list[int],
    generation: list[int],
    generation_seen: list[int],
    controllable: list[bool],
    fallback_used: list[bool],
    generation_fallback: list[bool],
    order: list[str],
    node_cap: Any,
    ancestor: Any,
    /,
) -> list[tuple[str, Any, int, Any, bool]] | None: ...
