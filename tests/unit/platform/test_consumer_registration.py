"""The consumer takes its topics from the registry by message type (contracts/topics.py)."""

from __future__ import annotations

import pytest

from contracts.base import Message
from contracts.events import CycleCompletedSummary, TopologyUpdated
from libs.platform.messaging.consumer import EventConsumer
from libs.platform.settings import PlatformSettings


async def _nothing(message: Message, uow: object) -> None:
    return None


def _consumer(handlers: dict) -> EventConsumer:
    return EventConsumer(
        group="g", handlers=handlers, pool=None, settings=PlatformSettings(topic_prefix="p."),  # type: ignore[arg-type]
        dead_letters=None,  # type: ignore[arg-type]
    )


def test_a_handler_is_subscribed_to_its_message_types_topic() -> None:
    consumer = _consumer({TopologyUpdated: _nothing})

    assert consumer._handlers == {"microgrid.topology_updated": _nothing}  # noqa: SLF001


def test_a_message_type_without_a_topic_is_refused() -> None:
    class Unregistered(Message):
        pass

    with pytest.raises(ValueError, match="Unregistered"):
        _consumer({Unregistered: _nothing})


def test_a_handler_of_a_view_is_subscribed_to_the_viewed_topic_and_decodes_with_the_view() -> None:
    consumer = _consumer({CycleCompletedSummary: _nothing})

    assert consumer._handlers == {"microgrid.cycle_completed": _nothing}  # noqa: SLF001
    assert consumer._models == {"microgrid.cycle_completed": CycleCompletedSummary}  # noqa: SLF001

