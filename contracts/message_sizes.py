"""Does a message fit its topic's size budget? The one check write ports call before they commit.

A write that causes a message the relay could never publish would be accepted and then lost (or block
the outbox), so the write port measures the message it is about to put in the outbox and refuses the
write (HTTP 413) when it does not fit. Budgets are per topic, in `contracts.topics`.
"""

from __future__ import annotations

from contracts.base import Message
from contracts.topics import topic_for


class MessageTooLarge(Exception):
    def __init__(self, topic: str, size_bytes: int, budget_bytes: int) -> None:
        super().__init__(
            f"the {topic} message this write causes would be {size_bytes} bytes; "
            f"the topic's budget is {budget_bytes} bytes"
        )
        self.topic, self.size_bytes, self.budget_bytes = topic, size_bytes, budget_bytes


def message_size(message: Message) -> int:
    """Bytes of the message as the relay sends it (the record value)."""
    return len(message.to_bytes())


def check_fits(message: Message) -> int:
    """The message's size; raises MessageTooLarge when it is over its topic's budget."""
    spec = topic_for(message)
    size = message_size(message)
    if size > spec.max_bytes:
        raise MessageTooLarge(spec.name, size, spec.max_bytes)
    return size
