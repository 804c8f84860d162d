"""The shell every service shares: settings, Postgres schema + migrations, Kafka consumer, outbox relay,
dead letters, background loops and the HTTP app, started and stopped together.

A service declares itself once with a `ServiceDefinition` (its `bootstrap.py`); `mgrid run <service>`
and the tests start it the same way. Its handlers are keyed by message type (`{ev.TopologyUpdated:
on_topology_updated}`); the topic comes from the registry (`contracts.topics`). Each handler gets the
typed message, the consumer's unit of work and the typed `ServiceContext`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import asyncpg
import redis.asyncio as aioredis
from fastapi import APIRouter, FastAPI, Request

from contracts.base import Message
from libs.platform.allocator import keep_freed_memory
from libs.platform.auth import require_verifier
from libs.platform.clock import Clock, SystemClock
from libs.platform.db import create_pool, prepare_service_schema
from libs.platform.http import create_app
from libs.platform.messaging.backpressure import report_backlog_forever
from libs.platform.messaging.consumer import EventConsumer, Handler
from libs.platform.messaging.dead_letter import DeadLetterPublisher
from libs.platform.messaging.dead_letter_replay import DeadLetterCounts
from libs.platform.messaging.kafka import create_producer
from libs.platform.messaging.relay import OutboxRelay, relay_metrics
from libs.platform.messaging.topics_admin import ensure_topics
from libs.platform.messaging.unit_of_work import OutboxHandoff, UnitOfWork, unit_of_work
from libs.platform.observability import (
    get_metrics,
    health_router,
    instrument_app,
    metrics_router,
    setup_observability,
)
from libs.platform.result_waiter import redis_signaller
from libs.platform.settings import PlatformSettings

log = logging.getLogger(__name__)

S = TypeVar("S", bound=PlatformSettings)


@dataclass(eq=False)
class ServiceContext(Generic[S]):
    """What a service's handlers, routes and loops get, typed: its settings, clock, pool, cache and a UoW factory.

    `clock` is the only place the service reads time (tests and the simulator put a ManualClock there);
    `memory` is what one process keeps in memory between messages (balancing: its state cache; the adapter:
    its HTTP door's cycle result reader), or None.
    """

    name: str
    settings: S
    clock: Clock
    pool: asyncpg.Pool
    redis: aioredis.Redis
    memory: Any = None
    # The service's consumer once started (None for a service without handlers): backpressure holds on it.
    consumer: EventConsumer | None = None
    # The committed outbox rows, handed to this process's relay (it then need not read them back).
    outbox_handoff: OutboxHandoff | None = None
    # The service's dead-letter topic, for a loop of its own that reads outside the consumer (once started).
    dead_letters: DeadLetterPublisher | None = None

    def unit_of_work(self) -> contextlib.AbstractAsyncContextManager[UnitOfWork]:
        return unit_of_work(self.pool, self.settings, redis_signaller(self.redis), self.outbox_handoff)


# A service's handler: the typed message, the consumer's unit of work, the service's context.
ServiceHandler = Callable[[Any, UnitOfWork, ServiceContext[Any]], Awaitable[None]]


@dataclass
class ServiceDefinition:
    name: str
    migrations: Path
    # {message type: handler}; the consumer subscribes to each type's topic in the registry.
    handlers: Mapping[type[Message], ServiceHandler]
    routers: Callable[[], list[APIRouter]] = lambda: []
    background: Callable[[ServiceContext[Any]], list[Callable[[], Awaitable[None]]]] = lambda ctx: []
    on_start: Callable[[ServiceContext[Any]], Awaitable[None]] | None = None
    # The service's settings class: the runtime builds it once (from the environment, or from the
    # platform settings it was handed) and puts it on the context.
    settings_type: type[PlatformSettings] = PlatformSettings
    # What each process keeps in memory between messages (`ServiceContext.memory`); None: nothing.
    memory: Callable[[], Any] | None = None
    # Audit tables the service's role may only INSERT into and SELECT from (docs/security.md).
    append_only_tables: tuple[str, ...] = ()
    # {message type: predicate}: a message its predicate holds for is none of this service's business
    # (it would change nothing), so the consumer passes it over without a transaction or an inbox row.
    passes_over: Mapping[type[Message], Callable[[Any], bool]] = field(default_factory=dict)

    def schema(self, settings: PlatformSettings) -> str:
        """The service's own Postgres schema; a topic prefix (tests) isolates runs on one database."""
        prefix = "".join(c if c.isalnum() else "_" for c in settings.topic_prefix.lower())
        return f"{prefix}{self.name}"


_POOL_CLOSE_S = 10.0
# Each other step of stopping: above the consumer's own 10 s for the batch in flight.
_STOP_STEP_S = 20.0


def tune_collector(settings: PlatformSettings) -> None:
    """Young-generation threshold of the cycle collector from the settings (the older ones as they are),
    and the freed memory the allocator keeps (`libs.platform.allocator`)."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(settings.gc_gen0_threshold, older, oldest)
    keep_freed_memory(settings.malloc_keep_bytes)


def typed_settings(definition: ServiceDefinition, settings: PlatformSettings | None) -> PlatformSettings:
    """The service's own settings class: from the environment, or carrying over what it was handed (tests)."""
    wanted = definition.settings_type
    if settings is None:
        return wanted()
    if isinstance(settings, wanted):
        return settings
    return wanted(**settings.model_dump())


class ServiceRuntime:
    def __init__(
        self, definition: ServiceDefinition, settings: PlatformSettings | None = None, clock: Clock | None = None
    ) -> None:
        self.definition = definition
        self.settings = typed_settings(definition, settings)
        self.clock: Clock = clock or SystemClock()
        self.ctx: ServiceContext[Any] | None = None
        self.consumer: EventConsumer | None = None
        self.relay: OutboxRelay | None = None
        self._producer: Any = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> ServiceContext[Any]:
        d, s = self.definition, self.settings
        require_verifier()  # no signing key and no identity provider: refuse to start
        tune_collector(s)
        setup_observability(d.name)
        metrics = get_metrics()
        await ensure_topics(s)
        schema = d.schema(s)
        await prepare_service_schema(s.postgres_owner_dsn, s.postgres_dsn, schema, d.migrations, d.append_only_tables)
        pool = await create_pool(s.postgres_dsn, schema, create_schema=s.postgres_owner_dsn is None)
        cache = aioredis.from_url(s.redis_url)
        ctx: ServiceContext[Any] = ServiceContext(
            name=d.name, settings=s, clock=self.clock, pool=pool, redis=cache,
            memory=d.memory() if d.memory else None,
            outbox_handoff=OutboxHandoff(),
        )
        self.ctx = ctx
        if d.on_start:
            await d.on_start(ctx)
        self._producer = create_producer(s, client_id=f"{d.name}-producer")
        await self._producer.start()
        ctx.dead_letters = DeadLetterPublisher(self._producer, s)
        self.relay = OutboxRelay(
            pool=pool,
            producer=self._producer,
            settings=s,
            schema=schema,
            on_published=metrics.record_outbox_lag,
            on_parked=metrics.count_outbox_parked,
            handoff=ctx.outbox_handoff,
        )
        await self.relay.start()
        metrics.observe_outbox(**relay_metrics(self.relay))
        handlers = {message: _bound(handler, ctx) for message, handler in d.handlers.items()}
        if handlers:
            self.consumer = EventConsumer(
                group=d.name,
                handlers=handlers,
                passes_over=d.passes_over,
                pool=pool,
                settings=s,
                dead_letters=ctx.dead_letters,
                on_dead_letter=lambda topic, reason: metrics.count_dead_letter(topic=topic, reason=reason),
                signaller=redis_signaller(cache),
                handoff=ctx.outbox_handoff,
            )
            await self.consumer.start()
            ctx.consumer = self.consumer
            metrics.observe_consumer_lag(self.consumer.lag)
            # How far behind this process is, for the services that feed it (backpressure): the records it
            # has not handled, and the outbox rows its relay has not published yet (a cycle is one row).
            consumer, relay = self.consumer, self.relay
            self._tasks.append(asyncio.create_task(
                report_backlog_forever(cache, s, d.name, lambda: consumer.backlog + relay.undelivered),
                name=f"{d.name}-backlog",
            ))
            # dead letters waiting and replayed, on /metrics (refreshed off the scrape: it asks the broker)
            letters = DeadLetterCounts(s, d.name, pool)
            metrics.observe_dead_letters(letters.readings)
            self._tasks.append(asyncio.create_task(letters.run(), name=f"{d.name}-dead-letter-counts"))
        for loop in d.background(ctx):
            self._tasks.append(asyncio.create_task(_forever(loop), name=f"{d.name}-background"))
        return ctx

    async def stop(self) -> None:
        """Stop everything this runtime started. Each step is bounded: a step that does not finish (a
        client waiting on a peer that never answers) is named in a warning and left behind, so stopping
        never wedges the process, and the pool's connections are terminated at the end if need be."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            ended, stuck = await asyncio.wait(self._tasks, timeout=_STOP_STEP_S)
            for task in ended:  # one that had died before: said once here, not as "never retrieved" later
                if not task.cancelled() and task.exception() is not None:
                    log.warning("stopping: %s had ended with an error", task.get_name(), exc_info=task.exception())
            if stuck:
                log.warning("stopping: %d background task(s) did not end in %.0f s", len(stuck), _STOP_STEP_S)
        self._tasks.clear()
        if self.consumer is not None:
            await _within("consumer", self.consumer.stop())
        if self.relay is not None:
            await _within("outbox relay", self.relay.stop())
        if self._producer is not None:
            await _within("producer", self._producer.stop())
        if self.ctx is not None:
            await _within("redis", self.ctx.redis.aclose())
            # A connection whose release was cut short (a handler cancelled mid-release as the consumer
            # stopped) never comes back, and close() waits for it: stopping must not wedge on it.
            if not await _within("database pool", self.ctx.pool.close(), _POOL_CLOSE_S):
                log.warning("terminating the database pool's connections")
                self.ctx.pool.terminate()

    # -- readiness checks -----------------------------------------------------------------------

    async def database_ready(self) -> bool:
        return self.ctx is not None and await self.ctx.pool.fetchval("SELECT 1") == 1

    async def broker_ready(self) -> bool:
        if self._producer is None:
            return False
        await self._producer.client.fetch_all_metadata()
        return True

    async def outbox_flowing(self) -> bool | str:
        """Degraded (a message naming them) while outbox rows are parked; the rest still flows."""
        return self.relay.readiness() if self.relay is not None else False

    async def consumer_progressing(self, stall_after_s: float = 120.0) -> bool:
        """False when records wait on an assigned partition and nothing was handled for `stall_after_s`.

        An idle consumer (no lag) is healthy however long it has been quiet; a stuck one (aiokafka can
        sit stuck after a broker restart) shows as lag that does not move.
        """
        if self.consumer is None:
            return True
        if not self.consumer.running:
            return False
        waiting = await self.consumer.pending_records()
        quiet_for = time.monotonic() - self.consumer.stats.last_progress_monotonic
        return waiting == 0 or quiet_for < stall_after_s

    # -- HTTP -----------------------------------------------------------------------------------

    def app(self) -> FastAPI:
        """The service's FastAPI app; its lifespan starts and stops the whole runtime."""

        @contextlib.asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            app.state.ctx = await self.start()
            app.state.runtime = self
            try:
                yield
            finally:
                await self.stop()

        return build_app(self.definition, lifespan)


def build_app(definition: ServiceDefinition, lifespan: Any = None) -> FastAPI:
    """The app with all routes; without a lifespan it serves only to generate the OpenAPI document."""
    app: FastAPI | None = None

    def check(name: str) -> Callable[[], Awaitable[bool | str]]:
        async def run() -> bool | str:
            runtime: ServiceRuntime | None = getattr(app.state, "runtime", None) if app else None
            if runtime is None:
                return False
            result = await getattr(runtime, name)()
            return result if isinstance(result, str) else bool(result)

        return run

    readiness = health_router(
        {
            "database": check("database_ready"),
            "broker": check("broker_ready"),
            "consumer_progress": check("consumer_progressing"),
            "outbox": check("outbox_flowing"),
        }
    )
    app = create_app(
        service_name=definition.name,
        routers=[*definition.routers(), readiness, metrics_router()],
        lifespan=lifespan,
    )
    instrument_app(app)
    return app


def _bound(handler: ServiceHandler, ctx: ServiceContext[Any]) -> Handler:
    """The consumer's handler (message, unit of work) for a service handler that also takes the context."""

    async def handle(message: Message, uow: UnitOfWork) -> None:
        await handler(message, uow, ctx)

    return handle


def service_context(request: Request) -> ServiceContext[Any]:
    """FastAPI dependency: the running service's context."""
    ctx: ServiceContext[Any] | None = getattr(request.app.state, "ctx", None)
    if ctx is None:
        raise RuntimeError("service is not started")
    return ctx


async def _within(step: str, done: Awaitable[None], seconds: float | None = None) -> bool:
    """Await one step of stopping for at most ``seconds`` (default `_STOP_STEP_S`); False, with a
    warning naming the step, when it did not finish (it is cancelled) or failed."""
    limit = _STOP_STEP_S if seconds is None else seconds
    try:
        await asyncio.wait_for(done, limit)
        return True
    except TimeoutError:
        log.warning("stopping: the %s did not stop in %.0f s; going on without it", step, limit)
    except Exception:
        log.warning("stopping: the %s failed to stop; going on without it", step, exc_info=True)
    return False


async def _forever(loop: Callable[[], Awaitable[None]]) -> None:
    """Run a background loop; a crash is logged and the loop restarted after a pause, never lost silently."""
    while True:
        try:
            await loop()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background loop crashed; restarting in 1 s")
            await asyncio.sleep(1.0)
