"""Kafka clients with safe defaults: idempotent producer with acks=all; consumers that never auto-commit."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker

from libs.platform.settings import PlatformSettings


def create_broker(settings: PlatformSettings, client_id: str) -> KafkaBroker:
    """faststream broker used for subscriptions (and its publisher for dead letters)."""
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        graceful_timeout=10.0,
        logger=logging.getLogger("faststream.kafka"),
    )


def create_producer(settings: PlatformSettings, client_id: str) -> AIOKafkaProducer:
    """The outbox relay's producer: idempotent, acks=all, so a retried send never duplicates on the log."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
    )
