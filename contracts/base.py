"""The message envelope every Kafka message carries, and the shared field types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Self
from uuid import UUID, uuid4

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDateTime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware instant, normalised to UTC (the spec's 'datetime (UTC)')."""

Watts = Annotated[int, Field(ge=0, description="Power in whole watts")]


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
    correlation_id: str = Field(min_length=1, max_length=200)
    causation_id: str | None = Field(default=None, max_length=200)
    producer: str = Field(min_length=1, max_length=100)
    schema_version: int = 1
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
