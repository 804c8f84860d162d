"""Whose fault is a failure: the message's, or a dependency's?

The consumer treats the two differently. A dependency that is down (Postgres, Redis, the broker)
says nothing about the message: the consumer pauses and retries, with capped backoff, for as long
as the outage lasts, and never dead-letters valid work because of it. A failure that the message
itself causes (its data breaks a column type, a constraint, a NUL byte in text) will fail the same
way on every retry: it goes to the dead-letter topic at once. Anything else (a bug) is retried a
bounded number of times, then dead-lettered, so one bad record never stalls its partition.
"""

from __future__ import annotations

from enum import StrEnum

import asyncpg
import redis.exceptions as redis_errors
from aiokafka import errors as kafka_errors


class FailureKind(StrEnum):
    DEPENDENCY_UNAVAILABLE = "DEPENDENCY_UNAVAILABLE"  # retry until the dependency is back
    MESSAGE_DATA = "MESSAGE_DATA"  # deterministic: dead-letter at once
    UNKNOWN = "UNKNOWN"  # retry a bounded number of times, then dead-letter


_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # ConnectionError, refused, reset, broken pipe
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # connection closed underneath us, pool closing
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    # Concurrency, not content: another replica or transaction got there first; try again.
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.LockNotAvailableError,
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.NodeNotReadyError,
    kafka_errors.NotLeaderForPartitionError,
    kafka_errors.RequestTimedOutError,
)

_MESSAGE_DATA: tuple[type[BaseException], ...] = (
    asyncpg.DataError,  # class 22: out of range, invalid text, untranslatable character (NUL)
    asyncpg.IntegrityConstraintViolationError,  # class 23
    UnicodeError,
)


def classify(exc: BaseException) -> FailureKind:
    if isinstance(exc, _MESSAGE_DATA):
        return FailureKind.MESSAGE_DATA
    if isinstance(exc, _UNAVAILABLE):
        return FailureKind.DEPENDENCY_UNAVAILABLE
    return FailureKind.UNKNOWN
