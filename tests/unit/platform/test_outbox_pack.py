"""The outbox pack layout: several messages in one row's value, read back whole and in order."""

from __future__ import annotations

import uuid

import pytest

from libs.platform.messaging.outbox_pack import MAGIC, pack, unpack


def _message(i: int, value: bytes = b"") -> tuple[uuid.UUID, str, bytes, bytes, str]:
    return (uuid.uuid4(), f"p.topic.{i % 2}", f"key-{i}".encode(), value or f'{{"n":{i}}}'.encode(),
            f'{{"event_id":"{i}","traceparent":"00-ab-cd-01"}}')


def test_a_pack_gives_back_every_message_whole_and_in_order() -> None:
    messages = [_message(i) for i in range(5)] + [_message(5, b""), _message(6, bytes(range(256)) * 600)]
    assert unpack(pack(messages)) == messages


def test_event_ids_may_be_given_as_text() -> None:
    event_id, topic, key, value, headers = _message(1)
    [(read_id, *rest)] = unpack(pack([(str(event_id), topic, key, value, headers)]))
    assert read_id == event_id and rest == [topic, key, value, headers]


@pytest.mark.parametrize("damage", [lambda b: b"XXXX" + b[4:], lambda b: b[:-3], lambda b: b[: len(MAGIC) + 10]])
def test_a_damaged_pack_is_refused_not_read_as_something_else(damage) -> None:  # noqa: ANN001
    with pytest.raises(ValueError):
        unpack(damage(pack([_message(i) for i in range(3)])))
