"""The message envelope every Kafka message carries, and the shared field types."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Self
from uuid import UUID, uuid4

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
    field_validator,
)

# ---- bounds every input is held to at the door (docs/security.md, "Limits") -----------------------

MAX_WATTS = 10_000_000_000
"""10 GW: above any depot, feeder or grid connection, far inside Postgres bigint."""

INT32_MAX = 2**31 - 1
"""Versions, orders and counters are Postgres `integer` columns."""

MAX_NODES = 1_500
"""Nodes in one microgrid: bounded so the messages about the whole tree (a cycle's allocations and
the node limits it used, its demand resolution, telemetry) fit their topic's size budget at the field
limits (tests/unit/contracts/test_limits.py builds those worst cases). topology_updated, which also
carries names, is measured by the topology write port itself."""

MAX_ENVELOPE_BLOCKS = 2_000
"""Blocks of one operating envelope (periods of one legacy TOU schedule)."""

MAX_JSON_OBJECT_BYTES = 393_216
"""A stored free-form JSON object, serialised: above the largest JsonObject a client may send (~340 KB
with 4-byte characters), which is bounded by its shape."""
MAX_JSON_DEPTH = 8

_NUMERIC = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")


def _iso_instant_only(value: Any) -> Any:
    # Pydantic would read 0.5 or "0.5" as seconds since 1970; an instant must be written as one. A text
    # with a colon (every instant has one in its time) is no number: a telemetry report has hundreds.
    if type(value) is str and ":" in value:
        return value
    if isinstance(value, bool | int | float) or (isinstance(value, str) and _NUMERIC.fullmatch(value)):
        raise ValueError("must be an ISO 8601 date-time with a time zone, not a number")
    return value


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDateTime = Annotated[AwareDatetime, BeforeValidator(_iso_instant_only), AfterValidator(_to_utc)]
"""A timezone-aware ISO 8601 instant, normalised to UTC (the spec's 'datetime (UTC)')."""

def _whole_number(value: Any) -> Any:
    # JSON Schema's integer: 7 and 7.0, never true, "7" or 7.5 (pydantic's lax mode takes all three).
    if type(value) is int:  # the common case first (not a bool: type, not isinstance)
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a whole number")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number")
        return int(value)
    return value


def whole_number(*, ge: int, le: int, description: str | None = None) -> Any:
    """An integer in [ge, le]: the bounds checked (and shown in the schema) after the whole-number rule."""
    return Annotated[int, Field(ge=ge, le=le, description=description), BeforeValidator(_whole_number)]


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]
Watts = whole_number(ge=0, le=MAX_WATTS, description="Power in whole watts (0 .. 10 GW)")
SignedWatts = whole_number(ge=-MAX_WATTS, le=MAX_WATTS, description="Power in whole watts (-10 GW .. 10 GW)")
Int32 = whole_number(ge=-(2**31), le=INT32_MAX)
Version = whole_number(ge=0, le=INT32_MAX)
PositiveVersion = whole_number(ge=1, le=INT32_MAX)
Flag = StrictBool


def _no_nul_or_lone_surrogate(value: str) -> str:
    # Postgres text and jsonb refuse NUL; a lone surrogate cannot be encoded as UTF-8 at all.
    if "\x00" in value:
        raise ValueError("must not contain NUL (U+0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must not contain a lone surrogate") from None
    return value


_TEXT_PATTERN = "^[^\\x00]*$"  # shown in the schema; the validator above also refuses lone surrogates


def Text(max_length: int, *, min_length: int = 0) -> Any:  # noqa: N802 - reads as a type
    """A string bounded in length, without NUL or lone surrogates (storable in Postgres, encodable)."""
    return Annotated[
        str,
        Field(min_length=min_length, max_length=max_length, pattern=_TEXT_PATTERN),
        AfterValidator(_no_nul_or_lone_surrogate),
    ]


Name = Text(200, min_length=1)
"""Short identifiers and labels: actor names, references, names."""
Label = Text(100, min_length=1)
Ref = Text(300, min_length=1)
"""Opaque upstream references (source_ref)."""
Text100 = Text(100)
Text200 = Text(200)
Text500 = Text(500)
Text2000 = Text(2_000)


def _finite_and_storable(value: Any, depth: int = 0) -> None:
    """NaN/Infinity are not JSON; NUL and lone surrogates cannot be stored (jsonb) or encoded."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN and Infinity are not JSON")
    if isinstance(value, str):
        _no_nul_or_lone_surrogate(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul_or_lone_surrogate(str(key))
            _finite_and_storable(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _finite_and_storable(item, depth + 1)


# A free-form JSON object as a client may send it: up to JSON_MAX_ITEMS keys whose values are scalars,
# arrays of scalars or objects of scalars. The schema below says exactly what the validator takes,
# so the OpenAPI document is the whole rule.
JSON_MAX_ITEMS = 16
JSON_MAX_KEY = 64
JSON_MAX_STRING = 256
_KEY_SCHEMA = {"type": "string", "maxLength": JSON_MAX_KEY, "pattern": _TEXT_PATTERN}
_SCALAR_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "maxLength": JSON_MAX_STRING, "pattern": _TEXT_PATTERN},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
    ]
}
_JSON_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": JSON_MAX_ITEMS,
    "propertyNames": _KEY_SCHEMA,
    "additionalProperties": {
        "anyOf": [
            *_SCALAR_SCHEMA["anyOf"],
            {"type": "array", "maxItems": JSON_MAX_ITEMS, "items": _SCALAR_SCHEMA},
            {
                "type": "object",
                "maxProperties": JSON_MAX_ITEMS,
                "propertyNames": _KEY_SCHEMA,
                "additionalProperties": _SCALAR_SCHEMA,
            },
        ]
    },
    "description": f"Free-form JSON object: at most {JSON_MAX_ITEMS} keys; values are scalars (finite numbers, "
    f"strings up to {JSON_MAX_STRING} characters), arrays of scalars or objects of scalars",
}


def _scalar(value: Any) -> bool:
    if isinstance(value, str):
        if len(value) > JSON_MAX_STRING:
            raise ValueError(f"strings are at most {JSON_MAX_STRING} characters")
        return True
    return value is None or isinstance(value, bool | int | float)


def _keys(value: dict[Any, Any]) -> None:
    if len(value) > JSON_MAX_ITEMS:
        raise ValueError(f"at most {JSON_MAX_ITEMS} keys")
    for key in value:
        if not isinstance(key, str) or len(key) > JSON_MAX_KEY:
            raise ValueError(f"keys are strings of at most {JSON_MAX_KEY} characters")


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    _finite_and_storable(value)
    _keys(value)
    for item in value.values():
        if _scalar(item):
            continue
        if isinstance(item, list):
            if len(item) > JSON_MAX_ITEMS or not all(_scalar(x) for x in item):
                raise ValueError(f"arrays hold at most {JSON_MAX_ITEMS} scalars")
        elif isinstance(item, dict):
            _keys(item)
            if not all(_scalar(x) for x in item.values()):
                raise ValueError("nested objects hold scalars only")
        else:
            raise ValueError("not a JSON value")
    return value


def _json_document(value: dict[str, Any]) -> dict[str, Any]:
    _finite_and_storable(value)
    if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_JSON_OBJECT_BYTES:
        raise ValueError(f"serialises to more than {MAX_JSON_OBJECT_BYTES} bytes")
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_json_object), WithJsonSchema(_JSON_OBJECT_SCHEMA)]
"""Free-form JSON a client sends (local_config, status_detail)."""

JsonDocument = Annotated[
    dict[str, Any],
    Field(description=f"JSON object: finite numbers, no NUL, at most {MAX_JSON_DEPTH} levels and "
          f"{MAX_JSON_OBJECT_BYTES} bytes"),
    AfterValidator(_json_document),
]
"""Free-form JSON a service stores and publishes (built from a JsonObject plus what the service adds)."""


class Contract(BaseModel):
    """Base of every payload and record: unknown fields are rejected, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(Contract):
    """The envelope (ARCHITECTURE.md section 3). Subclasses fix `event_type` and type `payload`."""

    EVENT_TYPE: ClassVar[str] = ""
    SCHEMA_VERSION: ClassVar[int] = 1

    event_id: UUID = Field(default_factory=uuid4)
    event_type: str
    occurred_at: UtcDateTime
    correlation_id: Name
    causation_id: Text200 | None = None
    producer: Label
    schema_version: Int32 = 1
    payload: Any

    @classmethod
    def create(
        cls,
        payload: Any,
        *,
        producer: str,
        occurred_at: datetime,
        correlation_id: str | None = None,
        causation: Message | None = None,
        event_id: UUID | None = None,
    ) -> Self:
        """Build a message; with `causation`, inherit its correlation id and point back at it."""
        if correlation_id is None:
            correlation_id = causation.correlation_id if causation else str(uuid4())
        return cls(
            event_id=event_id or uuid4(),
            event_type=cls.EVENT_TYPE,
            occurred_at=occurred_at,
            correlation_id=correlation_id,
            causation_id=str(causation.event_id) if causation else None,
            producer=producer,
            schema_version=cls.SCHEMA_VERSION,
            payload=payload,
        )

    @field_validator("event_type")
    @classmethod
    def _event_type_matches_class(cls, value: str) -> str:
        if cls.EVENT_TYPE and value != cls.EVENT_TYPE:
            raise ValueError(f"event_type must be {cls.EVENT_TYPE!r} for {cls.__name__}, got {value!r}")
        return value

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, raw: bytes | str) -> Self:
        """One serialised message (a record's value) as this model (raises pydantic.ValidationError).
        A view of a heavy message (contracts.topics.VIEWS) may keep what it skipped."""
        return cls.model_validate_json(raw)

    @classmethod
    def encode(
        cls,
        payload_json: bytes,
        *,
        key: str,
        producer: str,
        occurred_at: datetime,
        causation: Message,
        event_id: UUID | None = None,
    ) -> EncodedMessage:
        """The message `create(...).to_bytes()` would give, around a payload serialised by the caller.

        For the cycle's hot path (issue 13), where a payload is serialised once and reused (a breach is
        part of the cycle record and its own event), and building and validating a model per event cost
        more than the cycle. The caller vouches that `payload_json` is a valid payload of this type (its
        producer builds it from validated data; tests/unit/balancing/test_cycle_assembly.py holds the
        bytes equal to the models'). The envelope's own fields come from `causation`, already validated.
        """
        [message] = cls.encode_many(
            [payload_json], key=key, producer=producer, occurred_at=occurred_at, causation=causation,
            event_ids=[event_id or uuid4()],
        )
        return message

    @classmethod
    def encode_many(
        cls,
        payloads_json: Sequence[bytes],
        *,
        key: str,
        producer: str,
        occurred_at: datetime,
        causation: Message,
        event_ids: Sequence[UUID] | None = None,
    ) -> list[EncodedMessage]:
        """`encode` for several payloads with one envelope but the event id (a cycle's breach events)."""
        # The envelope's fields in the model's order; event_id comes first, so the rest is written once.
        rest = orjson.dumps(
            {
                "event_type": cls.EVENT_TYPE,
                "occurred_at": occurred_at.astimezone(UTC),
                "correlation_id": causation.correlation_id,
                "causation_id": str(causation.event_id),
                "producer": producer,
                "schema_version": cls.SCHEMA_VERSION,
            },
            option=orjson.OPT_UTC_Z,
        )
        middle = b'",' + rest[1:-1] + b',"payload":'
        ids = event_ids if event_ids is not None else random_uuids(len(payloads_json))
        key_bytes, correlation_id = key.encode(), causation.correlation_id
        return [
            EncodedMessage(cls, event_id, correlation_id, key_bytes,
                           b"".join((b'{"event_id":"', str(event_id).encode(), middle, payload, b"}")))
            for event_id, payload in zip(ids, payloads_json, strict=True)
        ]


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))  # the version nibble and the variant's two bits
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


def random_uuids(count: int) -> list[UUID]:
    """`count` random (version 4) UUIDs from one read of the system's random source; uuid4() makes a
    system call per id, and a curtailed depot's cycle publishes a hundred breach events."""
    raw = os.urandom(16 * count)
    return [
        UUID(int=(int.from_bytes(raw[i : i + 16]) & _UUID4_CLEAR) | _UUID4_SET) for i in range(0, 16 * count, 16)
    ]


def encode_json(document: Any) -> bytes:
    """A payload document (ids as strings, enums, UTC datetimes) as JSON, written the way pydantic writes
    a model's fields: the one encoding behind `Message.encode`."""
    return orjson.dumps(document, option=orjson.OPT_UTC_Z | orjson.OPT_SERIALIZE_NUMPY)


@dataclass(frozen=True, slots=True)
class EncodedMessage:
    """A message already serialised (`Message.encode`): what the outbox needs of it, and its type."""

    message_type: type[Message]
    event_id: UUID
    correlation_id: str
    key: bytes
    value: bytes

    @property
    def event_type(self) -> str:
        return self.message_type.EVENT_TYPE

    def decode(self) -> Message:
        """The model, parsed from the bytes (tests and rare readers; the hot path never needs it)."""
        return self.message_type.model_validate_json(self.value)
