"""The per-consumer-group dead-letter topic: the original bytes, plus why and where they came from."""

from __future__ import annotations

from dataclasses import dataclass

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
        await self._producer.send_and_wait(
            self.topic_for(letter.consumer_group), value=letter.value, key=letter.key, headers=headers
        )
