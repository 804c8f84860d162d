"""Building a message the way every actor does: a seed-derived event id and the scenario clock's time."""

from __future__ import annotations

from typing import Any, TypeVar

from contracts.base import Message
from simulator.clock import ScenarioClock
from simulator.identity import Identities

M = TypeVar("M", bound=Message)


def new_message(kind: type[M], payload: Any, *, producer: str, ids: Identities, clock: ScenarioClock,
                correlation_id: str) -> M:
    return kind.create(payload, producer=producer, occurred_at=clock.now(), correlation_id=correlation_id,
                       event_id=ids.next_event())
