"""Kafka ACLs generated from the topic registry (contracts/topics.py): who may write and read what.

- A service writes only the topics the registry says it owns or also produces (`also_produced_by`),
  plus its own dead-letter topic, and reads only the topics it consumes, in its own consumer group.
- Owners outside the four services are played by principals: the legacy producers (`legacy`) write the
  legacy and scheduler topics; the simulator stands in for every outside actor of a depot (external
  adapters included) and observes everything.
- Nobody but the admin (a super user) creates, deletes or alters topics or ACLs.

ACLs name literal topics and groups, so a topic prefix (a test session, a second environment on one
cluster) gets its own set: `ensure_acls(admin_settings, prefix)`, and gives it back with its topics:
`drop_acls(admin_settings, prefix)` (left behind, a shared test broker gathered 11,058 ACLs of 94 finished
prefixes). aiokafka has no ACL call, so the CreateAcls and DeleteAcls requests (API keys 30 and 31, v1)
go through its protocol classes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from enum import IntEnum

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest_v1, DeleteAclsRequest_v1, DescribeAclsRequest
from aiokafka.protocol.api import Request

from contracts.topics import TOPICS, dead_letter_topic
from libs.platform.messaging.kafka import client_options
from libs.platform.settings import PlatformSettings
from libs.platform.stack_credentials import KAFKA_LEGACY, KAFKA_SIMULATOR, SERVICES


class ResourceType(IntEnum):
    TOPIC = 2
    GROUP = 3


class Operation(IntEnum):
    READ = 3
    WRITE = 4
    DESCRIBE = 8


_LITERAL = 3
_ALLOW = 3

# Registry owners that are not one of the four services, and the principals that write as them.
WRITERS_FOR_OWNER: dict[str, tuple[str, ...]] = {
    **{service: (service,) for service in SERVICES},
    "simulator": (KAFKA_SIMULATOR,),
    "legacy": (KAFKA_LEGACY, KAFKA_SIMULATOR),
    "scheduler": (KAFKA_LEGACY, KAFKA_SIMULATOR),
    "external_adapter": (KAFKA_SIMULATOR,),
}


@dataclass(frozen=True, order=True)
class AclBinding:
    principal: str
    operation: Operation
    resource_type: ResourceType
    name: str

    def describe(self) -> str:
        return f"User:{self.principal} {self.operation.name} {self.resource_type.name}:{self.name}"


def acl_bindings(prefix: str = "") -> list[AclBinding]:
    """Every ACL the registry implies, for topics and groups named with `prefix`."""
    bindings: set[AclBinding] = set()

    def allow(principal: str, operation: Operation, kind: ResourceType, name: str) -> None:
        bindings.add(AclBinding(principal, operation, kind, f"{prefix}{name}"))

    for topic in TOPICS:
        for writer in {*WRITERS_FOR_OWNER[topic.owner], *topic.also_produced_by}:
            allow(writer, Operation.WRITE, ResourceType.TOPIC, topic.name)
        for consumer in (*topic.consumers, *topic.also_read_by):
            if consumer in SERVICES:
                allow(consumer, Operation.READ, ResourceType.TOPIC, topic.name)
        # The simulator observes every output, as a depot operator watching the system.
        allow(KAFKA_SIMULATOR, Operation.READ, ResourceType.TOPIC, topic.name)
    for service in SERVICES:
        allow(service, Operation.READ, ResourceType.GROUP, service)
        allow(service, Operation.WRITE, ResourceType.TOPIC, dead_letter_topic(service))
        allow(KAFKA_SIMULATOR, Operation.READ, ResourceType.TOPIC, dead_letter_topic(service))
        # Its consumed barrier reads the services' committed offsets (OffsetFetch needs Describe).
        allow(KAFKA_SIMULATOR, Operation.DESCRIBE, ResourceType.GROUP, service)
    return sorted(bindings)


class _CreateAcls(Request[CreateAclsRequest_v1]):
    API_KEY = 30

    def __init__(self, bindings: list[AclBinding]) -> None:
        self._bindings = bindings

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class(
            [
                (b.resource_type, b.name, _LITERAL, f"User:{b.principal}", "*", b.operation, _ALLOW)
                for b in self._bindings
            ]
        )


class _DeleteAcls(Request[DeleteAclsRequest_v1]):
    """One exact filter per ACL: deletes those and nothing else."""

    API_KEY = 31

    def __init__(self, acls: list[_Acl]) -> None:
        self._acls = acls

    def build(self, request_struct_class: type[DeleteAclsRequest_v1]) -> DeleteAclsRequest_v1:
        return request_struct_class([a.filter() for a in self._acls])


@dataclass(frozen=True)
class _Acl:
    """An ACL as the broker describes it."""

    resource_type: int
    resource_name: str
    pattern_type: int
    principal: str
    host: str
    operation: int
    permission: int

    def filter(self) -> tuple[int, str, int, str, str, int, int]:
        return (self.resource_type, self.resource_name, self.pattern_type, self.principal, self.host,
                self.operation, self.permission)


async def ensure_acls(admin_settings: PlatformSettings, prefix: str = "") -> int:
    """Create the registry's ACLs for `prefix` (creating an existing ACL changes nothing). Returns how many."""
    bindings = acl_bindings(prefix)
    admin = AIOKafkaAdminClient(**client_options(admin_settings), client_id="mgrid-acls")
    await admin.start()
    try:
        response = await admin._send_to_controller(_CreateAcls(bindings))  # noqa: SLF001 - no public call
        failed = [(b.describe(), r[1]) for b, r in zip(bindings, response.creation_responses, strict=True) if r[0]]
        if failed:
            raise RuntimeError(f"Kafka refused ACLs: {failed[:5]}")
        await _wait_until_effective(admin, bindings)
    finally:
        await admin.close()
    return len(bindings)


async def drop_acls(admin_settings: PlatformSettings, prefix: str) -> int:
    """Delete every ACL on a topic or group named `prefix`... (nested prefixes included): a run gives its
    set back with its topics. Returns how many were deleted.

    The empty prefix (the deployment's own set) is refused: only a prefixed run gives its ACLs back.
    """
    if not prefix:
        raise ValueError("drop_acls: the unprefixed ACLs are the deployment's own; give a prefix")
    admin = AIOKafkaAdminClient(**client_options(admin_settings), client_id="mgrid-acls")
    await admin.start()
    try:
        doomed = [a for a in await _all_acls(admin) if a.resource_name.startswith(prefix)]
        return await _delete(admin, doomed)
    finally:
        await admin.close()


async def prune_orphaned_acls(admin_settings: PlatformSettings) -> int:
    """Delete the ACLs of prefixes that have no topic left (runs that ended without giving them back, before
    runs did). The unprefixed set and every prefix with a topic are kept. Returns how many were deleted."""
    admin = AIOKafkaAdminClient(**client_options(admin_settings), client_id="mgrid-acls")
    await admin.start()
    try:
        live = {_prefix_of(t) for t in await admin.list_topics()}
        doomed = []
        for acl in await _all_acls(admin):
            prefix = _prefix_of(acl.resource_name)
            if prefix and prefix not in live:
                doomed.append(acl)
        return await _delete(admin, doomed)
    finally:
        await admin.close()


def _registry_names() -> tuple[str, ...]:
    """What the registry's ACLs name after a prefix: topics, dead-letter topics and consumer groups."""
    names = {t.name for t in TOPICS} | set(SERVICES) | {dead_letter_topic(s) for s in SERVICES}
    return tuple(sorted(names, key=len, reverse=True))  # longest first: "dlq.balancing" before "balancing"


def _prefix_of(name: str) -> str | None:
    """The prefix of a registry name (`""` for the deployment's own), or None for a name the registry does
    not make (kept as it is: ACLs this module did not write are not its to delete)."""
    for suffix in _registry_names():
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


async def _all_acls(admin: AIOKafkaAdminClient) -> list[_Acl]:
    any_ = 1  # ANY for resource type, pattern type, operation and permission; None for the strings
    response = await admin._send_to_controller(  # noqa: SLF001 - no public call
        DescribeAclsRequest(any_, None, any_, None, None, any_, any_)
    )
    if response.error_code:
        raise RuntimeError(f"Kafka refused to describe ACLs: {response.error_message}")
    return [
        _Acl(resource_type, name, pattern, *acl)
        for resource_type, name, pattern, acls in response.resources
        for acl in acls
    ]


async def _delete(admin: AIOKafkaAdminClient, acls: list[_Acl]) -> int:
    deleted = 0
    for start in range(0, len(acls), _DELETE_CHUNK):
        chunk = acls[start:start + _DELETE_CHUNK]
        response = await admin._send_to_controller(_DeleteAcls(chunk))  # noqa: SLF001 - no public call
        failed = [(a.resource_name, r[1]) for a, r in zip(chunk, response.filter_responses, strict=True) if r[0]]
        if failed:
            raise RuntimeError(f"Kafka refused to delete ACLs: {failed[:5]}")
        deleted += sum(len(r[2]) for r in response.filter_responses)
    return deleted


_DELETE_CHUNK = 500  # exact filters per DeleteAcls request


async def _wait_until_effective(admin: AIOKafkaAdminClient, bindings: list[AclBinding], timeout_s: float = 20.0
                                ) -> None:
    """New ACLs reach each broker's authorizer a moment after the controller accepts them (measured:
    up to ~3 s): wait until every broker reports the last one, so a service started next is not refused."""
    last = bindings[-1]
    describe = DescribeAclsRequest(last.resource_type, last.name, _LITERAL, f"User:{last.principal}", "*",
                                   last.operation, _ALLOW)
    deadline = time.monotonic() + timeout_s
    for broker in admin._client.cluster.brokers():  # noqa: SLF001
        while not (await admin._send_request_to_node(broker.nodeId, describe)).resources:  # noqa: SLF001
            if time.monotonic() > deadline:
                raise TimeoutError(f"ACLs not effective on broker {broker.nodeId} after {timeout_s}s")
            await asyncio.sleep(0.1)


if __name__ == "__main__":  # print the generated ACLs: python -m libs.platform.messaging.acls
    for binding in acl_bindings():
        print(binding.describe())
