"""Stopping a service never wedges on one of its clients."""

import asyncio
import logging
import time
from pathlib import Path

from libs.platform import runtime as runtime_module
from libs.platform.runtime import ServiceDefinition, ServiceRuntime
from libs.platform.settings import PlatformSettings


class _Stuck:
    """A client whose stop() waits on a peer that never answers."""

    def __init__(self) -> None:
        self.cancelled = False

    async def stop(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


class _Stops:
    def __init__(self) -> None:
        self.stopped = False

    async def stop(self) -> None:
        self.stopped = True


async def test_a_client_that_never_stops_is_named_and_left_behind(monkeypatch, caplog):
    monkeypatch.setattr(runtime_module, "_STOP_STEP_S", 0.2)
    runtime = ServiceRuntime(ServiceDefinition(name="probe", migrations=Path("."), handlers={}), PlatformSettings())
    consumer, relay, producer = _Stuck(), _Stops(), _Stops()
    runtime.consumer, runtime.relay, runtime._producer = consumer, relay, producer  # type: ignore[assignment]
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="libs.platform.runtime"):
        await runtime.stop()
    assert time.monotonic() - started < 2  # bounded, not wedged
    assert consumer.cancelled  # the stuck step was given up on ...
    assert relay.stopped and producer.stopped  # ... and every later step still ran
    assert "the consumer did not stop" in caplog.text


async def test_a_background_task_that_ignores_cancellation_does_not_wedge_stopping(monkeypatch, caplog):
    monkeypatch.setattr(runtime_module, "_STOP_STEP_S", 0.2)
    runtime = ServiceRuntime(ServiceDefinition(name="probe", migrations=Path("."), handlers={}), PlatformSettings())
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue  # a loop that swallows its cancellation

    task = asyncio.create_task(stubborn())
    runtime._tasks.append(task)
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="libs.platform.runtime"):
        await asyncio.wait_for(runtime.stop(), 2)
    assert "1 background task(s) did not end" in caplog.text
    release.set()  # let it end, so the test leaves nothing running
    task.cancel()
    await task


async def test_a_background_task_that_had_died_is_named_when_stopping(monkeypatch, caplog):
    runtime = ServiceRuntime(ServiceDefinition(name="probe", migrations=Path("."), handlers={}), PlatformSettings())

    async def broken() -> None:
        raise RuntimeError("lost the broker")

    task = asyncio.create_task(broken(), name="probe-dead-letter-counts")
    runtime._tasks.append(task)
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="libs.platform.runtime"):
        await runtime.stop()
    assert "probe-dead-letter-counts had ended with an error" in caplog.text
    assert "lost the broker" in caplog.text
