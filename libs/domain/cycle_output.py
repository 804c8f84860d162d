"""A cycle's stored output: the canonical JSON of its `CycleResult`, its two largest record arrays as tables.

A depot's cycle has a record per checked node (its allocation) and per checked scope (its demand
resolution): hundreds a cycle. As a JSON object each, their keys repeat on every record and a dict is
built per record to write them: most of the output's bytes and of the time balancing spends writing it
(docs/performance.md, twenty-third round). In the tabular layout each of the two arrays is written as

    {"fields": [<the record's field names, in declaration order>], "rows": [[<values>], ...]}

with every value in its canonical form (an enum as its value, a datetime as the codec's text, a float as
`float.__repr__`, a nested record as its canonical object), and everything else exactly as
`to_canonical_json` writes it. Same result, same bytes: replay compares them.

An output stored before (the record layout: every record an object) still decodes, and replays in its
own layout (`is_tabular`), so a stored cycle always replays against the bytes it was stored with.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson

from libs.domain.codec import canonical_float, format_datetime, from_jsonable, to_canonical_json
from libs.domain.cycle_result import CycleResult, LazyRecords, NodeAllocation
from libs.domain.demand import DemandResolution

_FIELDS_KEY, _ROWS_KEY = "fields", "rows"


def encode_cycle_output(result: CycleResult, *, tabular: bool = True) -> bytes:
    """The output's canonical bytes: tabular (what a cycle stores now), or in the record layout (what
    `to_canonical_json` writes: outputs stored before, replayed in their own layout)."""
    if not tabular:
        return to_canonical_json(result)
    summary = result.allocation_summary
    as_tables = dataclasses.replace(
        result,
        allocation_summary=dataclasses.replace(summary, nodes=_table(summary.nodes, NodeAllocation)),
        demand_resolutions=_table(result.demand_resolutions, DemandResolution),
    )
    return to_canonical_json(as_tables)


def decode_cycle_output(data: bytes) -> CycleResult:
    """The result a stored output holds, in either layout."""
    document = json.loads(data)
    summary = document.get("allocation_summary")
    if isinstance(summary, dict):
        summary["nodes"] = _records(summary.get("nodes"))
    document["demand_resolutions"] = _records(document.get("demand_resolutions"))
    return from_jsonable(CycleResult, document)


def is_tabular(data: bytes) -> bool:
    """Whether a stored output is in the tabular layout (else it is in the record layout)."""
    return isinstance(json.loads(data).get("demand_resolutions"), dict)


def _records(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {_FIELDS_KEY, _ROWS_KEY}:
        names = value[_FIELDS_KEY]
        return [dict(zip(names, row, strict=True)) for row in value[_ROWS_KEY]]
    return value


def _table(records: Sequence[Any], cls: type) -> LazyRecords[Any]:
    """`records` standing for themselves, with the table as their canonical JSON (the codec writes it in
    their place)."""
    return LazyRecords(lambda: tuple(records), lambda: _table_json(records, cls))


def _table_json(records: Sequence[Any], cls: type) -> bytes:
    names, converters = _plan(cls)
    columns = records.columns() if isinstance(records, LazyRecords) else None
    if columns is None:
        columns = [[getattr(r, name) for r in records] for name in names]
    cells = [
        column if convert is None else convert(column) for convert, column in zip(converters, columns, strict=True)
    ]
    return orjson.dumps({_FIELDS_KEY: list(names), _ROWS_KEY: list(zip(*cells, strict=True))})


_PLANS: dict[type, tuple[tuple[str, ...], tuple[Callable[[Sequence[Any]], list[Any]] | None, ...]]] = {}


def _plan(cls: type) -> tuple[tuple[str, ...], tuple[Callable[[Sequence[Any]], list[Any]] | None, ...]]:
    """The record's field names and, per field, how a column of its values becomes canonical cells (None:
    orjson writes the values as they are: text, whole numbers, booleans, enums, None)."""
    plan = _PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        names = tuple(f.name for f in dataclasses.fields(cls))
        plan = _PLANS[cls] = (names, tuple(_converter(hints[name]) for name in names))
    return plan


def _converter(hint: Any) -> Callable[[Sequence[Any]], list[Any]] | None:
    inner = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    kind = inner[0] if len(inner) == 1 else None
    if kind is datetime:
        return lambda column: [None if v is None else format_datetime(v) for v in column]
    if kind is float:
        return lambda column: [None if v is None else canonical_float(v) for v in column]
    if kind is not None and dataclasses.is_dataclass(kind):
        return _nested_records
    if kind in (str, int, bool) or (isinstance(kind, type) and issubclass(kind, str)):
        return None  # str enums included: orjson writes an enum as its value
    raise TypeError(f"no tabular cell for {hint!r}")


def _nested_records(column: Sequence[Any]) -> list[Any]:
    """Each nested record as its canonical object, made once per distinct record (a cap that bounds a
    hundred connectors is one binding)."""
    made: dict[int, Any] = {}
    cells = []
    for v in column:
        if v is None:
            cells.append(None)
            continue
        cell = made.get(id(v))
        if cell is None:
            cell = made[id(v)] = orjson.Fragment(to_canonical_json(v))
        cells.append(cell)
    return cells
