"""The per-consumer-group dead-letter topic: the original bytes, plus why and where they came from."""

from __future__ import annotations

from dataclasses import dataclass, replace

from aiokafka import AIOKafkaProducer

from contracts.topics import dead_letter_topic
from libs.platform.settings import PlatformSettings


@dataclass(frozen=True, slots=True)
class DeadLetter:
    consumer_group: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    reason: str
    error: str
    attempts: int
    excerpted: bool = False
    original_size: int | None = None

    def size(self) -> int:
        """Bytes on the wire, near enough: payload, key and headers."""
        return len(self.value) + len(self.key or b"") + sum(len(k) + len(v) for k, v in self.headers) + len(self.error)

    def excerpt(self, max_bytes: int) -> DeadLetter:
        """The same letter with only the first `max_bytes` of the payload (and of each header value).

        Used when the whole letter can't be written (too big for the broker): the reason and the
        original position are what an operator needs to find the record, which stays on its topic.
        """
        return replace(
            self,
            value=self.value[:max_bytes],
            headers=tuple((k, v[:max_bytes]) for k, v in self.headers),
            error=self.error[:max_bytes],
            excerpted=True,
            original_size=len(self.value),
        )


class DeadLetterPublisher:
    def __init__(self, producer: AIOKafkaProducer, settings: PlatformSettings) -> None:
        self._producer = producer
        self._settings = settings

    def topic_for(self, consumer_group: str) -> str:
        return self._settings.topic(dead_letter_topic(self._settings.unprefixed(consumer_group)))

    async def publish(self, letter: DeadLetter) -> None:
        headers = [h for h in letter.headers if not h[0].startswith("dlq.")] + [
            ("dlq.reason", letter.reason.encode()),
            ("dlq.error", letter.error[:2000].encode()),
            ("dlq.original_topic", letter.topic.encode()),
            ("dlq.original_partition", str(letter.partition).encode()),
            ("dlq.original_offset", str(letter.offset).encode()),
            ("dlq.consumer_group", letter.consumer_group.encode()),
            ("dlq.attempts", str(letter.attempts).encode()),
        ]
        if letter.excerpted:
            headers += [
                ("dlq.excerpt", b"true"),
                ("dlq.original_size", str(letter.original_size).encode()),
            ]
        await self._producer.send_and_wait(
            self.topic_for(letter.consumer_group), value=letter.value, key=letter.key, headers=headers
        )
