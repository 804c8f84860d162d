"""Shared fixtures: the real stack (started here when no endpoints are given) and isolated settings.

Each test session gets its own topic/consumer-group/schema prefix, so runs never see each other's
messages or rows on the shared broker and database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from libs.platform.settings import PlatformSettings

# Endpoints plus the credentials `mgrid stack env` prints with them (the stack's generated ones).
_ENDPOINT_VARS = ("MGRID_KAFKA_BOOTSTRAP", "MGRID_POSTGRES_DSN", "MGRID_REDIS_URL")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "req(*ids): spec requirement ids this test verifies")
    # A real SDK tracer provider, so trace context is created and propagated as in the services.
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    # The local token issuer's key, made once per installation as `./mgrid stack up` does, unless one is
    # configured (MGRID_AUTH_SECRET / MGRID_AUTH_SECRET_FILE). Here, before collection: test modules
    # issue tokens at import, and tests given stack endpoints never run `stack up`.
    from libs.platform.signing_keys import configured_secret, ensure_local_key

    if configured_secret() is None:
        ensure_local_key()


@pytest.fixture(scope="session")
def stack_endpoints() -> PlatformSettings:
    """Endpoints from the environment, or the project's own local stack, started if needed."""
    if not all(os.environ.get(v) for v in _ENDPOINT_VARS):
        from tools.stack import endpoints, up

        up()
        os.environ.update({k: v for k, v in endpoints().items() if not os.environ.get(k)})
    # Everything a test runs (in-process services, `mgrid` subprocesses) reads these credentials.
    return PlatformSettings()


@pytest.fixture(scope="session")
def session_prefix(stack_endpoints: PlatformSettings) -> Iterator[str]:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    yield prefix
    # Every test topic lives under this prefix: delete them, or a broker shared by many runs ends up
    # holding tens of thousands of partitions (and as many open files).
    import asyncio

    from tests.support import delete_topics_with_prefix

    asyncio.run(delete_topics_with_prefix(stack_endpoints, prefix))


@pytest.fixture(scope="session")
def settings(stack_endpoints: PlatformSettings, session_prefix: str) -> PlatformSettings:
    """The tests' own settings: the schema owner and the Kafka admin, on this session's prefix.

    The session's topics and their ACLs are provisioned here, as the stack does for the unprefixed
    ones; services started from these settings step down to their own role and principal
    (tests/support_services.running_service).
    """
    import asyncio

    from libs.platform.messaging.topics_admin import provision

    own = stack_endpoints.model_copy(
        update={
            "topic_prefix": session_prefix,
            "consumer_backoff_initial_s": 0.05,
            "outbox_poll_interval_s": 0.2,
            # In-process services keep their published outbox rows, so a test can audit what one emitted.
            "outbox_retention_s": 3600.0,
        }
    )
    asyncio.run(provision(own))
    return own


@pytest.fixture(scope="session")
async def kafka(settings: PlatformSettings):
    """A producer for tests that play another service or an outside actor (see support.publish_as_owner)."""
    from libs.platform.messaging.kafka import create_producer

    producer = create_producer(settings, "tests")
    await producer.start()
    yield producer
    await producer.stop()
