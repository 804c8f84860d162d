"""The simulator's only I/O: Kafka (publish, observe the output topics, the consumed barrier) and HTTP.

`LiveTransport` talks to the running services through their public topics and routes. The consumed
barrier asks Kafka itself whether every service group subscribed to a topic has committed past a
record (groups commit after their transaction), so "the system has digested my input" is checked
through Kafka's public interface, never by reading a service's tables and never by sleeping.
`DryRunTransport` sends nothing: it records every call and message byte for byte (the determinism
tests compare two runs) and answers the few reads the runner needs with synthetic, seed-free values.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from contracts.base import Message
from contracts.topics import BY_NAME, TOPICS, dead_letter_topic, decode
from libs.platform.auth import ALL, Scope, issue_token
from libs.platform.messaging.kafka import client_options
from libs.platform.settings import PlatformSettings
from simulator.wire import SERVICES, HttpAnswer, HttpCall, Publication, Published

SIMULATOR_SUBJECT = "simulator"
# Topics the simulator watches: every registered topic plus each service's dead letters.
OBSERVED_TOPICS = tuple(t.name for t in TOPICS) + tuple(dead_letter_topic(s) for s in SERVICES)


class SimulatorSettings(PlatformSettings):
    """Where the services answer (the same MGRID_<SERVICE>_URL variables the services use)."""

    topology_url: str = "http://127.0.0.1:8101"
    envelope_lifecycle_url: str = "http://127.0.0.1:8102"
    balancing_url: str = "http://127.0.0.1:8103"
    compatibility_adapter_url: str = "http://127.0.0.1:8104"
    http_timeout_s: float = 30.0

    def service_url(self, service: str) -> str:
        return str(getattr(self, f"{service}_url"))

    def http_limits(self) -> httpx.Limits:
        """The connection pool of a client of the services: an idle connection is given up at half the
        services' keep-alive (`http_keep_alive_s`), so a request never goes out on one the server is closing."""
        return httpx.Limits(keepalive_expiry=self.http_keep_alive_s / 2)


@dataclass(frozen=True)
class Observed:
    """One record read from an output topic, in the order the simulator saw it."""

    index: int
    topic: str
    partition: int
    offset: int
    at_s: float
    message: Message | None = None
    dead_letter: dict[str, str] | None = None

    @property
    def payload(self) -> Any:
        return self.message.payload if self.message is not None else None


class Transport(Protocol):
    live: bool
    observed: list[Observed]

    async def publish(self, publication: Publication) -> Published | None: ...

    async def call(self, call: HttpCall) -> HttpAnswer: ...

    async def poll(self) -> list[Observed]: ...

    async def consumed(self, published: list[Published], timeout_s: float) -> list[str]: ...

    async def caught_up(self, timeout_s: float) -> bool: ...

    def unprefixed(self, topic: str) -> str: ...


class LiveTransport:
    live = True

    def __init__(self, settings: SimulatorSettings) -> None:
        self.settings = settings
        self.observed: list[Observed] = []
        self._start = time.monotonic()
        self._producer = AIOKafkaProducer(**client_options(settings), acks="all",
                                          enable_idempotence=True, linger_ms=2, client_id="simulator")
        self._consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False,
                                          group_id=None, client_id="simulator-observer")
        self._admin = AIOKafkaAdminClient(**client_options(settings), client_id="simulator-admin")
        self._http: dict[str, httpx.AsyncClient] = {}
        self._token = issue_token(SIMULATOR_SUBJECT, [s.value for s in Scope], ALL)

    async def __aenter__(self) -> LiveTransport:
        await self._producer.start()
        await self._consumer.start()
        await self._admin.start()
        # Observe from the end of every output topic as it is now: assign + seek before anything is sent.
        # A consumer without subscriptions knows no topic yet: load the cluster's metadata first.
        await self._consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public call
        partitions = [TopicPartition(self.settings.topic(name), p) for name in OBSERVED_TOPICS
                      for p in sorted(self._consumer.partitions_for_topic(self.settings.topic(name)) or ())]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve the lazy seek now, so records sent from here on are all seen
            await self._consumer.position(tp)
        headers = {"Authorization": f"Bearer {self._token}"}
        for service in SERVICES:
            self._http[service] = httpx.AsyncClient(base_url=self.settings.service_url(service), headers=headers,
                                                    timeout=self.settings.http_timeout_s,
                                                    limits=self.settings.http_limits())
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self._http.values():
            await client.aclose()
        await self._producer.stop()
        await self._consumer.stop()
        await self._admin.close()

    def unprefixed(self, topic: str) -> str:
        return self.settings.unprefixed(topic)

    # -- sending ----------------------------------------------------------------------------------

    async def publish(self, publication: Publication) -> Published:
        metadata = await self._producer.send_and_wait(
            self.settings.topic(publication.topic), value=publication.message.to_bytes(), key=publication.key()
        )
        return Published(publication.topic, metadata.partition, metadata.offset)

    async def call(self, call: HttpCall) -> HttpAnswer:
        response = await self._http[call.service].request(
            call.method, call.path, json=call.body if call.method != "GET" else None, headers=call.headers
        )
        try:
            body = response.json()
        except ValueError:
            body = response.text
        return HttpAnswer(response.status_code, body)

    # -- observing ----------------------------------------------------------------------------------

    async def poll(self) -> list[Observed]:
        batch = await self._consumer.getmany(timeout_ms=20)
        fresh: list[Observed] = []
        for records in batch.values():
            for record in records:
                fresh.append(self._observed(record))
        self.observed.extend(fresh)
        return fresh

    def _observed(self, record: Any) -> Observed:
        topic = self.settings.unprefixed(record.topic)
        at = time.monotonic() - self._start
        index = len(self.observed)
        if topic in BY_NAME:
            try:
                return Observed(index, topic, record.partition, record.offset, at, message=decode(topic, record.value))
            except ValueError as exc:  # the contract is the one definition: a service broke it
                return Observed(index, topic, record.partition, record.offset, at,
                                dead_letter={"reason": "OFF_CONTRACT", "error": str(exc)[:500]})
        headers = {k: bytes(v).decode(errors="replace") for k, v in (record.headers or ())}
        letter = {k.removeprefix("dlq."): v for k, v in headers.items() if k.startswith("dlq.")}
        letter["value"] = (record.value or b"").decode(errors="replace")  # whole: the run tells its own apart
        return Observed(index, topic, record.partition, record.offset, at, dead_letter=letter)

    async def caught_up(self, timeout_s: float) -> bool:
        """Poll until the observer has read every output topic up to its end as of now (a record already
        on a topic is then in `observed`, not still in flight to the observer)."""
        partitions = list(self._consumer.assignment())
        ends = await self._consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while True:
            behind = [tp for tp in partitions if await self._consumer.position(tp) < ends[tp]]
            if not behind:
                return True
            if time.monotonic() > deadline:
                return False
            await self.poll()

    # -- the consumed barrier ---------------------------------------------------------------------

    def _groups_consuming(self, topic: str) -> list[str]:
        """The service groups that consume `topic`: the topic registry's consumers (a unit test keeps the
        registry equal to the services' handlers)."""
        return [self.settings.topic(group) for group in BY_NAME[topic].consumers if group in SERVICES]

    async def consumed(self, published: list[Published], timeout_s: float) -> list[str]:
        """Wait until every service group subscribed to each record's topic has committed past it.

        Returns the (group, topic) pairs still behind at the deadline (empty: all digested).
        """
        waits: dict[tuple[str, TopicPartition], int] = {}
        for p in published:
            for group in self._groups_consuming(p.topic):
                tp = TopicPartition(self.settings.topic(p.topic), p.partition)
                waits[(group, tp)] = max(waits.get((group, tp), -1), p.offset)
        deadline = time.monotonic() + timeout_s
        while waits:
            for group in sorted({g for g, _ in waits}):
                tps = [tp for g, tp in waits if g == group]
                committed = await self._admin.list_consumer_group_offsets(group, partitions=tps)
                for tp in tps:
                    meta = committed.get(tp)
                    if meta is not None and meta.offset > waits[(group, tp)]:
                        del waits[(group, tp)]
            if not waits or time.monotonic() > deadline:
                break
            await self.poll()  # keep observing while waiting
            await asyncio.sleep(0.02)
        return sorted(f"{g} on {tp.topic}[{tp.partition}]" for g, tp in waits)


@dataclass
class DryRunTransport:
    """Records what a live run would send; answers resync and topology reads from what it was sent."""

    live: bool = False
    lines: list[str] = field(default_factory=list)
    observed: list[Observed] = field(default_factory=list)
    _circuits: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    _nodes: list[dict[str, Any]] = field(default_factory=list)
    _version: int = 0

    async def publish(self, publication: Publication) -> Published:
        self.lines.append(json.dumps(publication.line(), sort_keys=True))
        payload = publication.message.payload
        if publication.topic == "legacy_circuit.circuit_updated":
            self._circuits[payload.circuit_id] = payload.model_dump(mode="json")
        return Published(publication.topic, 0, len(self.lines))

    async def call(self, call: HttpCall) -> HttpAnswer:
        self.lines.append(json.dumps(call.line(), sort_keys=True))
        if call.path.endswith("/microgrid/resync"):
            depot_id = call.path.split("/")[3]
            microgrid_id = UUID(int=UUID(depot_id).int ^ 1)  # any stable id: the dry run has no service
            self._nodes = [
                {"node_id": str(UUID(int=UUID(cid).int ^ 2)), "parent_node_id": None, "name": c["name"],
                 "node_type": "GRID_CONNECTION", "attached_asset_type": "CIRCUIT", "attached_asset_id": cid,
                 "status": "ACTIVE", "display_order": 0, "children": []}
                for cid, c in sorted((str(k), v) for k, v in self._circuits.items()) if c["parent_circuit_id"] is None
            ]
            self._version = 1
            return HttpAnswer(200, self._topology(microgrid_id))
        if call.path.endswith("/topology"):
            microgrid_id = UUID(call.path.split("/")[3])
            if call.method == "POST":
                if call.body["version"] != self._version:
                    return HttpAnswer(409, {"reason_code": "TOPOLOGY_VERSION_CONFLICT"})
                self._version += 1
                self._nodes = [dict(n, children=[]) for n in call.body["nodes"]]
            return HttpAnswer(200, self._topology(microgrid_id))
        return HttpAnswer(200, {})

    def _topology(self, microgrid_id: UUID) -> dict[str, Any]:
        return {"result": {"microgrid": {"microgrid_id": str(microgrid_id), "version": self._version},
                           "nodes": self._nodes}}

    async def poll(self) -> list[Observed]:
        return []

    async def consumed(self, published: list[Published], timeout_s: float) -> list[str]:
        return []

    async def caught_up(self, timeout_s: float) -> bool:
        return True

    def unprefixed(self, topic: str) -> str:
        return topic
