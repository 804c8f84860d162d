"""Canonical JSON for domain values: byte-identical replay and the cycle's inputs digest.

Canonical form: dataclasses as objects of their fields, enums as their values, datetimes as UTC
``YYYY-MM-DDTHH:MM:SS.ffffffZ``, keys sorted, no whitespace, UTF-8. In stored cycle inputs every
collection is a set (the cycle does not depend on input order), so `cycle_inputs_to_dict` lists
each collection's items in the order of their own canonical JSON: the same inputs in any order give
the same bytes and the same digest.

Written here rather than with pydantic because the domain stays free of edge concerns; the
decoder is driven by the dataclasses' own type hints, so adding a field needs no codec change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar

import orjson

from libs.domain.cycle_result import LazyRecords
from libs.domain.gc_pause import collector_paused

T = TypeVar("T")

_FIELDS: dict[type, tuple[str, ...]] = {}
_HINTS: dict[type, dict[str, Any]] = {}


def to_jsonable(value: Any) -> Any:
    """Plain JSON data (dict, list, str, int, bool, None) for a domain value."""
    if value is None or type(value) in (str, int, bool, float):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, (tuple, list, LazyRecords)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (frozenset, set)):
        return sorted(to_jsonable(v) for v in value)
    if isinstance(value, Mapping):
        return {(k.value if isinstance(k, Enum) else str(k)): to_jsonable(v) for k, v in value.items()}
    names = _FIELDS.get(type(value))
    if names is None:
        if not dataclasses.is_dataclass(value):
            raise TypeError(f"cannot encode {type(value).__name__}")
        names = _FIELDS[type(value)] = tuple(f.name for f in dataclasses.fields(value))
    return {name: to_jsonable(getattr(value, name)) for name in names}


def canonical_bytes(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def to_canonical_json(value: Any) -> bytes:
    """Canonical JSON bytes of a domain value (e.g. a CycleResult).

    A dataclass goes through the encoder generated for its class (`canonical_json_of`: the same bytes,
    several times faster, which counts for a result of thousands of records); a value that encoder
    cannot take (a field not of its declared type, a type it has no rule for) takes the generic path.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        try:
            return _native_canonical_json(value)
        except (TypeError, ValueError, AttributeError):
            pass
        try:
            return canonical_json_of(value)
        except (TypeError, ValueError, AttributeError):
            pass
    return canonical_bytes(to_jsonable(value))


# ---- the same bytes, written by orjson -------------------------------------------------------------
# A cycle result of a 250-node depot is ~450 KB of canonical JSON, written on every cycle (stored output,
# output digest): Python string building took 20 ms of it, orjson a fraction. orjson writes what it
# knows natively (str, int, bool, None, lists, tuples, dicts with keys sorted, enums as their values,
# escaping as json.dumps with ensure_ascii=False does); everything whose canonical form is ours goes
# through `_native_default`: a dataclass as a dict of its fields (keys sorted by orjson), a datetime in
# our format, a float as `float.__repr__` (json.dumps's text; orjson's differs in exponents) refusing
# NaN and infinities, a set as the generic path writes it. A value it cannot take (an int past 64 bits)
# raises, and the generated encoder decides. tests/unit/domain/test_codec_native.py holds the bytes equal.
_NATIVE_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
_NATIVE_PLANS: dict[type, Any] = {}


def _native_canonical_json(value: Any) -> bytes:
    try:
        with collector_paused():  # a large result's writers build tens of thousands of dicts
            return orjson.dumps(value, default=_native_default, option=_NATIVE_OPTIONS)
    except orjson.JSONEncodeError as exc:
        raise TypeError(str(exc)) from exc


def _native_default(value: Any) -> Any:
    plan = _NATIVE_PLANS.get(type(value))
    if plan is None:
        plan = _NATIVE_PLANS[type(value)] = _native_plan(type(value))
    return plan(value)


def _native_plan(cls: type) -> Any:
    if dataclasses.is_dataclass(cls):
        names = tuple(f.name for f in dataclasses.fields(cls))
        floats = frozenset(name for name, hint in typing.get_type_hints(cls).items() if _holds_float(hint))

        def as_dict(v: Any) -> dict[str, Any]:
            d = {name: getattr(v, name) for name in names}
            for name in floats:
                x = d[name]
                if type(x) is float:
                    d[name] = orjson.Fragment(_float_text(x))
                elif x is not None:
                    raise TypeError(f"{cls.__name__}.{name}: not a float")
            return d

        return as_dict
    if issubclass(cls, datetime):
        return format_datetime
    if issubclass(cls, LazyRecords):
        return _lazy_records
    if issubclass(cls, (frozenset, set)):
        return lambda v: orjson.Fragment(canonical_bytes(to_jsonable(v)))
    if cls is float:  # only reached inside a container orjson passes through (none today)
        return lambda v: orjson.Fragment(_float_text(v))
    raise TypeError(f"cannot encode {cls.__name__}")


def canonical_rows_json(rows: list[dict[str, Any]]) -> bytes:
    """The canonical JSON array of records given as dicts of their field values, for a writer that makes
    no record: the same bytes as encoding the records, when each float comes as `canonical_float` (orjson
    would write a bare float its own way) and each datetime as `format_datetime`'s text."""
    return _native_canonical_json(rows)


def canonical_float(value: float) -> orjson.Fragment:
    """A float field's canonical text (json.dumps's, `float.__repr__`); NaN and infinities refused."""
    return orjson.Fragment(_float_text(value))


_KEPT: dict[int, tuple[Any, bytes]] = {}  # id -> (the record, kept alive so the id stays its own; its text)
_KEEP_TEXTS = 100_000  # as _REMEMBER: forgotten all at once beyond it


def kept_records_json(records: Iterable[Any]) -> bytes:
    """The canonical JSON array of deeply immutable records (frozen dataclasses of plain values), each
    record's text kept by identity: records a memo hands out again every cycle (the effective constraints
    of unchanged limits) are encoded once. The same bytes as encoding the array."""
    kept = _KEPT
    texts = []
    for record in records:
        hit = kept.get(id(record))
        if hit is None or hit[0] is not record:
            if len(kept) >= _KEEP_TEXTS:
                kept.clear()
            hit = kept[id(record)] = (record, _native_canonical_json(record))
        texts.append(hit[1])
    return b"[" + b",".join(texts) + b"]"


def _lazy_records(value: LazyRecords[Any]) -> Any:
    text = value.canonical_json()
    return value.items() if text is None else orjson.Fragment(text)


def _holds_float(hint: Any) -> bool:
    """A field typed float (or float | None): its value is written by us, not by orjson."""
    if hint is float:
        return True
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return float in typing.get_args(hint)
    if typing.get_origin(hint) in (tuple, list, frozenset) and float in typing.get_args(hint):
        raise TypeError("a collection of floats has no canonical plan here")
    return False


_FORMATTED: dict[datetime, str] = {}  # instant -> its text; a cycle writes the same few instants hundreds of times
_FORMATTED_MAX = 10_000  # forgotten all at once beyond it


def format_datetime(value: datetime) -> str:
    # Equal aware datetimes are the same instant, so they have the same text; a naive one never equals
    # an aware key, so it always reaches the check below.
    text = _FORMATTED.get(value)
    if text is not None:
        return text
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetimes must be timezone-aware")
    instant = value if value.tzinfo is UTC else value.astimezone(UTC)
    text = instant.isoformat(timespec="microseconds")[:-6] + "Z"
    if len(_FORMATTED) >= _FORMATTED_MAX:
        _FORMATTED.clear()
    _FORMATTED[value] = text
    return text


def parse_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"datetime {text!r} has no timezone")
    return value.astimezone(UTC)


def from_jsonable(cls: type[T], data: Any) -> T:
    """Decode plain JSON data into ``cls`` (a dataclass or a supported type), strictly."""
    return _decode(cls, data, cls.__name__)


def _decode(hint: Any, data: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(hint)
        if data is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _decode(inner, data, where)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(data, list):
            raise ValueError(f"{where}: expected a list")
        return tuple(_decode(args[0], item, f"{where}[{i}]") for i, item in enumerate(data))
    if origin is frozenset:
        (inner,) = typing.get_args(hint)
        return frozenset(_decode(inner, item, where) for item in data)
    if origin in (dict, Mapping) or hint is Any:
        return data
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(data)
    if hint is datetime:
        if not isinstance(data, str):
            raise ValueError(f"{where}: expected an ISO 8601 datetime")
        return parse_datetime(data)
    if hint is bool or hint is str:
        if not isinstance(data, hint):
            raise ValueError(f"{where}: expected {hint.__name__}")
        return data
    if hint is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise ValueError(f"{where}: expected an integer")
        return data
    if hint is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise ValueError(f"{where}: expected a number")
        return float(data)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object")
        hints = _HINTS.get(hint)
        if hints is None:
            hints = _HINTS[hint] = typing.get_type_hints(hint)
        unknown = set(data) - set(hints)
        if unknown:
            raise ValueError(f"{where}: unknown fields {sorted(unknown)}")
        return hint(**{k: _decode(hints[k], v, f"{where}.{k}") for k, v in data.items()})
    raise TypeError(f"{where}: unsupported type {hint!r}")


def _as_set(value: Any) -> Any:
    """Canonical JSON data with every list ordered by its items' canonical JSON."""
    if isinstance(value, list):
        items = [_as_set(v) for v in value]
        return [item for _, item in sorted(((canonical_bytes(i), i) for i in items), key=lambda p: p[0])]
    if isinstance(value, dict):
        return {k: _as_set(v) for k, v in value.items()}
    return value


def canonical_json_of(value: Any, *, as_set: bool = False) -> bytes:
    """Canonical JSON bytes of a dataclass value, by an encoder generated for its class.

    Same bytes as ``canonical_bytes(to_jsonable(value))`` (or, with ``as_set``, as
    ``canonical_bytes(_as_set(to_jsonable(value)))``), several times faster: it is what the cycle
    digests on every run. The encoders are built once per class from its type hints.
    """
    return _encoder(type(value), as_set)(value).encode()


_GENERATED: dict[tuple[Any, bool], Any] = {}


# For `to_canonical_json`: as `json.dumps` writes them, refusing what it refuses (allow_nan=False), so
# the generated encoder never writes other bytes than the generic path: a value of another type
# raises, and the generic path decides. (The inputs' encoders keep their own, older rules.)
def _bool_text(v: Any) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    raise TypeError(f"not a bool: {v!r}")


def _int_text(v: Any) -> str:
    if type(v) is not int:
        raise TypeError(f"not an int: {v!r}")
    return int.__repr__(v)


def _float_text(v: Any) -> str:
    if type(v) is not float or v != v or v in (_INF, -_INF):
        raise ValueError(f"not a finite float: {v!r}")
    return float.__repr__(v)


_INF = float("inf")
_encode_str = json.encoder.encode_basestring  # the C implementation when available, as json.dumps uses


def _encoder(hint: Any, as_set: bool) -> Any:
    key = (hint, as_set)
    found = _GENERATED.get(key)
    if found is not None:
        return found
    made = _make_encoder(hint, as_set)
    _GENERATED[key] = made
    return made


def _make_encoder(hint: Any, as_set: bool) -> Any:  # noqa: C901 - one branch per supported type
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        inner_enc = _encoder(inner, as_set)
        return lambda v: "null" if v is None else inner_enc(v)
    if origin is tuple:
        item = _encoder(typing.get_args(hint)[0], as_set)
        if as_set:
            return lambda v: "[" + ",".join(sorted(map(item, v))) + "]"
        return lambda v: "[" + ",".join(map(item, v)) + "]"
    if origin is frozenset:
        item = _encoder(typing.get_args(hint)[0], as_set)
        return lambda v: "[" + ",".join(sorted(map(item, v))) + "]"
    if origin in (dict, Mapping) or hint is Any:
        return lambda v: canonical_bytes(to_jsonable(v)).decode()
    if isinstance(hint, type) and issubclass(hint, Enum):
        return lambda v: _encode_str(v.value)
    if hint is datetime:
        return lambda v: '"' + format_datetime(v) + '"'
    if hint is bool:
        return (lambda v: "true" if v else "false") if as_set else _bool_text
    if hint is str:
        return _encode_str
    if hint is int:
        return int.__repr__ if as_set else _int_text
    if hint is float:
        return float.__repr__ if as_set else _float_text
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        names = sorted(f.name for f in dataclasses.fields(hint))
        env = {f"e{i}": _encoder(hints[name], as_set) for i, name in enumerate(names)}
        pieces = " + ',' + ".join(
            f"{json.dumps(json.dumps(name) + ':')} + e{i}(o.{name})" for i, name in enumerate(names)
        )
        code = f"def encode(o):\n    return '{{' + {pieces} + '}}'\n"
        exec(code, env)  # noqa: S102 - generated from the dataclass's own field names
        if as_set and _record_like(hint, hints):
            return _remembered(env["encode"])
        return env["encode"]
    raise TypeError(f"cannot encode {hint!r}")


_REMEMBER = 100_000  # canonical texts kept per record type (forgotten all at once beyond it)


def _record_like(cls: Any, hints: dict[str, Any]) -> bool:
    """A frozen, hashable record of plain fields, every one compared by equality (not a collection of
    records such as CycleInputs, whose text is the join of theirs)."""
    fields = dataclasses.fields(cls)
    if not fields or cls.__hash__ is None or not cls.__dataclass_params__.frozen:
        return False
    collections = (tuple, frozenset, dict, list, Mapping)
    for f in fields:
        hint = hints[f.name]
        if not f.compare or typing.get_origin(hint) in collections:
            return False
        if hint is float or float in typing.get_args(hint):  # -0.0 == 0.0, but their texts differ
            return False
    return True


def _remembered(encode: Any) -> Any:
    """``encode`` with each record's text kept: a frozen input record (a reading, a limit, a node) is
    encoded once, when it first arrives, and every later digest or stored copy of the inputs that holds
    it joins the kept text. Equal records give equal text (the encoders read only the fields that
    equality compares), so what is kept never changes a byte; it only bounds the work per cycle to
    the records that are new."""
    texts: dict[Any, str] = {}

    def remembered(value: Any) -> str:
        text = texts.get(value)
        if text is None:
            text = encode(value)
            if len(texts) >= _REMEMBER:
                texts.clear()
            texts[value] = text
        return text

    return remembered


def cycle_inputs_to_dict(inputs: Any) -> dict[str, Any]:
    """JSON-able dict of CycleInputs, collections in canonical order (store it; replay it)."""
    return _as_set(to_jsonable(inputs))


def cycle_inputs_from_dict(data: Mapping[str, Any]) -> Any:
    from libs.domain.cycle_inputs import CycleInputs  # the codec is generic; only this door knows the type

    return from_jsonable(CycleInputs, dict(data))


def canonical_inputs_json(inputs: Any) -> bytes:
    """The canonical JSON bytes of cycle inputs: ``canonical_bytes(cycle_inputs_to_dict(inputs))``, fast."""
    return canonical_json_of(inputs, as_set=True)


def canonical_inputs_fields(inputs: Any, known: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each field of the cycle inputs as its canonical JSON text; a field in `known` is taken as given.

    ``join_canonical_fields`` of the result is exactly ``canonical_inputs_json(inputs)``: a caller that
    keeps the text of fields which did not change (the tree, the limits) encodes only what did.
    """
    hints = _field_hints(type(inputs))
    known = known or {}
    return {
        name: known[name] if name in known else _encoder(hint, True)(getattr(inputs, name))
        for name, hint in hints.items()
    }


def encode_inputs_field(inputs_type: Any, name: str, value: Any) -> str:
    """One field's canonical JSON text, as ``canonical_inputs_fields`` would give it."""
    return _encoder(_field_hints(inputs_type)[name], True)(value)


def join_canonical_fields(fields: Mapping[str, str]) -> bytes:
    """The canonical JSON object of fields already encoded: keys sorted, no spaces (as the encoders write)."""
    return ("{" + ",".join(f"{_encode_str(name)}:{fields[name]}" for name in sorted(fields)) + "}").encode()


_HINTS: dict[Any, dict[str, Any]] = {}


def _field_hints(cls: Any) -> dict[str, Any]:
    found = _HINTS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = _HINTS[cls] = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    return found


def inputs_digest(inputs: Any) -> str:
    """sha256 (hex) of the canonical JSON of the cycle inputs."""
    return hashlib.sha256(canonical_inputs_json(inputs)).hexdigest()
