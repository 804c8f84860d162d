# The cycle's inputs as columns by tree position (libs/domain/_columns.c); see physical_view._placed
# and cycle.request_columns.
from collections.abc import Sequence
from typing import Any, TypeVar

_Record = TypeVar("_Record")

def placed(records: Sequence[_Record], position: dict[str, int], n: int, /) -> list[_Record | None] | None: ...
def request_columns(
    wish_at: list[Any], positions: list[int], id_rank: list[int], alloc_node: list[int], /
) -> tuple[list[int], list[int], list[int], list[int], list[int], list[int]] | None: ...
