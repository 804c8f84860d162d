"""The local stack (`mgrid stack up`): each component answers a real request, and `up()` is idempotent.

These tests start the stack when it is down and leave it running: other tests share it.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as redis
from aiokafka.admin import AIOKafkaAdminClient

from libs.platform.messaging.kafka import client_options
from tools import stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def first_up() -> list[stack.ComponentStatus]:
    return stack.up()


@pytest.fixture(scope="module")
def endpoints(first_up: list[stack.ComponentStatus]) -> dict[str, str]:
    return stack.endpoints()


async def test_kafka_answers_a_metadata_request(endpoints: dict[str, str]) -> None:
    admin = AIOKafkaAdminClient(**client_options(stack.kafka_admin_settings(endpoints["MGRID_KAFKA_BOOTSTRAP"])))
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        await admin.list_topics()
    finally:
        await admin.close()
    assert [(b["node_id"], b["host"], b["port"]) for b in cluster["brokers"]] == [(1, stack.HOST, stack.KAFKA_PORT)]
    assert cluster["controller_id"] == 1


async def test_postgres_answers_select_1(endpoints: dict[str, str]) -> None:
    connection = await asyncpg.connect(endpoints["MGRID_POSTGRES_DSN"])
    try:
        assert await connection.fetchval("select 1") == 1
        assert await connection.fetchval("select current_database()") == "mgrid"
    finally:
        await connection.close()


async def test_redis_answers_ping(endpoints: dict[str, str]) -> None:
    client = redis.from_url(endpoints["MGRID_REDIS_URL"])
    try:
        assert await client.ping() is True
    finally:
        await client.aclose()


def test_up_twice_changes_nothing(first_up: list[stack.ComponentStatus]) -> None:
    second = stack.up()

    assert [(s.name, s.action) for s in second] == [
        (name, stack.Action.ALREADY_RUNNING) for name in ("kafka", "postgres", "redis")
    ]
    assert {s.name: s.pid for s in second} == {s.name: s.pid for s in first_up}
    assert all(s.state is stack.State.RUNNING and s.pid for s in second)


def test_status_reports_every_component_running(first_up: list[stack.ComponentStatus]) -> None:
    statuses = stack.status()

    assert {s.name: (s.state, s.pid) for s in statuses} == {s.name: (stack.State.RUNNING, s.pid) for s in first_up}
    assert all(s.log_file.exists() for s in statuses)


def test_a_port_taken_by_someone_else_fails_naming_the_component_and_its_log(
    first_up: list[stack.ComponentStatus], tmp_path: Path
) -> None:
    # A second stack dir wants the same port as the running stack: it must refuse, not clobber it.
    other = stack.Redis(tmp_path)

    with pytest.raises(stack.StackError) as failure:
        other.start()

    assert failure.value.component == "redis"
    assert failure.value.log_file == other.log_file
    assert "redis" in str(failure.value) and str(other.log_file) in str(failure.value)
