"""The message envelope every Kafka message carries, and the shared field types."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Self
from uuid import UUID, uuid4

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
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

MAX_JSON_OBJECT_BYTES = 16_384
"""Free-form JSON objects (local_config, status_detail, ...), serialised."""
MAX_JSON_DEPTH = 8

_NUMERIC = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")


def _iso_instant_only(value: Any) -> Any:
    # Pydantic would read 0.5 or "0.5" as seconds since 1970; an instant must be written as one.
    if isinstance(value, bool | int | float) or (isinstance(value, str) and _NUMERIC.fullmatch(value)):
        raise ValueError("must be an ISO 8601 date-time with a time zone, not a number")
    return value


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDateTime = Annotated[AwareDatetime, BeforeValidator(_iso_instant_only), AfterValidator(_to_utc)]
"""A timezone-aware ISO 8601 instant, normalised to UTC (the spec's 'datetime (UTC)')."""

Watts = Annotated[StrictInt, Field(ge=0, le=MAX_WATTS, description="Power in whole watts (0 .. 10 GW)")]
SignedWatts = Annotated[
    StrictInt, Field(ge=-MAX_WATTS, le=MAX_WATTS, description="Power in whole watts (-10 GW .. 10 GW)")
]
Int32 = Annotated[StrictInt, Field(ge=-(2**31), le=INT32_MAX)]
Version = Annotated[StrictInt, Field(ge=0, le=INT32_MAX)]
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


def _json_checked(value: Any, depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN and Infinity are not JSON")
    if isinstance(value, str):
        _no_nul_or_lone_surrogate(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul_or_lone_surrogate(str(key))
            _json_checked(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _json_checked(item, depth + 1)


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    _json_checked(value)
    if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_JSON_OBJECT_BYTES:
        raise ValueError(f"serialises to more than {MAX_JSON_OBJECT_BYTES} bytes")
    return value


JsonObject = Annotated[
    dict[str, Any],
    Field(
        max_length=200,
        description=f"Free-form JSON object: finite numbers, no NUL, at most {MAX_JSON_DEPTH} levels "
        f"and {MAX_JSON_OBJECT_BYTES} bytes",
    ),
    AfterValidator(_json_object),
]


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
