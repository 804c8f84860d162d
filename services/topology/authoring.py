"""Who made a write, when, and under which correlation id: stamped on every event the write publishes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from contracts.base import Message
from contracts.message_sizes import check_fits

PRODUCER = "topology"

M = TypeVar("M", bound=Message)


@dataclass(frozen=True, slots=True)
class Authoring:
    actor: str
    now: datetime
    correlation_id: str | None = None

    def event(self, message_type: type[M], payload: Any) -> M:
        """The event, refused (MessageTooLarge, HTTP 413) when it would not fit its topic's size budget."""
        message = message_type.create(
            payload, producer=PRODUCER, occurred_at=self.now, correlation_id=self.correlation_id
        )
        check_fits(message)
        return message
