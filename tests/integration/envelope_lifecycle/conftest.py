"""One envelope-lifecycle service for this package's tests, on a ManualClock with the scheduler loop off:
tests drive lifecycle time with `evaluate_due_timers(ctx, instant)`, never with sleeps.

Upstream state (topology, legacy circuits, control points, capability status) is published to Kafka as
its owners would; each test builds its own depot, so tests can share the service.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from contracts.base import Message
from contracts.enums import AssetType, CapabilityState, CapabilityType, ControlSource, NodeType
from contracts.events import (
    CapabilityControlPointUpdated,
    CapabilityControlPointUpdatedPayload,
    CapabilityStatusRecorded,
    LegacyCircuitUpdated,
    LegacyCircuitUpdatedPayload,
    TopologyUpdated,
    TopologyUpdatedPayload,
)
from contracts.records import CapabilityStatusEventRecord, MicrogridNodeRecord
from libs.platform.clock import ManualClock
from libs.platform.settings import PlatformSettings
from services.envelope_lifecycle.bootstrap import DEFINITION
from services.envelope_lifecycle.settings import EnvelopeLifecycleSettings
from tests.support import TopicReader, eventually, publish_as_owner
from tests.support_services import RunningService, auth_headers, running_service

WRITE = auth_headers("integration:write")
READ = auth_headers("operator:read")
T0 = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
DEFAULT_W = 100_000
FAIL_SAFE_W = 40_000
STALE_AFTER = timedelta(minutes=10)
OFFLINE_AFTER = timedelta(minutes=30)


def service_settings(settings: PlatformSettings, **overrides: Any) -> EnvelopeLifecycleSettings:
    knobs: dict[str, Any] = {
        "lifecycle_scheduler_enabled": False,
        "forecast_stale_after_s": STALE_AFTER.total_seconds(),
        "forecast_offline_after_s": OFFLINE_AFTER.total_seconds(),
    }
    return EnvelopeLifecycleSettings(**{**settings.model_dump(), **knobs, **overrides})


@pytest.fixture(scope="package")
async def service(settings: PlatformSettings) -> AsyncIterator[RunningService]:
    async with running_service(DEFINITION, service_settings(settings), ManualClock(T0)) as svc:
        yield svc


@pytest.fixture
def clock(service: RunningService) -> ManualClock:
    clock: ManualClock = service.ctx.clock
    clock.set(T0)
    return clock


@dataclass
class Depot:
    """A microgrid with one managed grid connection (feeder circuit `circuit_id`) and a plain branch."""

    depot_id: uuid.UUID
    microgrid_id: uuid.UUID
    grid_connection_id: uuid.UUID  # managed, first level, attached to the feeder circuit
    circuit_id: uuid.UUID
    branch_id: uuid.UUID  # an operator-authored CIRCUIT node below it (envelopes apply, never project)
    unmapped_gc_id: uuid.UUID  # a managed grid connection with no circuit attached (D-022 failure)

    def path(self, suffix: str = "") -> str:
        return f"/internal/microgrid/{self.microgrid_id}/operating-envelopes{suffix}"

    def feeder_node(self) -> MicrogridNodeRecord:
        """The managed first-level grid connection built from the feeder circuit."""
        return MicrogridNodeRecord(
            node_id=self.grid_connection_id,
            microgrid_id=self.microgrid_id,
            name="Feeder 1",
            node_type=NodeType.GRID_CONNECTION,
            attached_asset_type=AssetType.CIRCUIT,
            attached_asset_id=self.circuit_id,
            managed=True,
        )


async def make_depot(svc: RunningService, settings: PlatformSettings, producer: AIOKafkaProducer) -> Depot:
    depot = Depot(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
    now = datetime.now(UTC)
    circuit = LegacyCircuitUpdatedPayload(
        circuit_id=depot.circuit_id,
        depot_id=depot.depot_id,
        name="Feeder 1",
        default_capacity_watts=DEFAULT_W,
        fail_safe_capacity_watts=FAIL_SAFE_W,
    )
    nodes = [
        depot.feeder_node(),
        MicrogridNodeRecord(
            node_id=depot.branch_id,
            microgrid_id=depot.microgrid_id,
            parent_node_id=depot.grid_connection_id,
            name="Branch A",
            node_type=NodeType.CIRCUIT,
        ),
        MicrogridNodeRecord(
            node_id=depot.unmapped_gc_id,
            microgrid_id=depot.microgrid_id,
            name="Feeder without circuit",
            node_type=NodeType.GRID_CONNECTION,
            managed=True,
        ),
    ]
    topology = TopologyUpdatedPayload(
        microgrid_id=depot.microgrid_id, depot_id=depot.depot_id, version=1, updated_by="test", nodes=nodes
    )
    await publish_as_owner(producer, settings, LegacyCircuitUpdated.create(circuit, producer="legacy", occurred_at=now))
    await publish_as_owner(producer, settings, TopologyUpdated.create(topology, producer="topology", occurred_at=now))

    async def consumed() -> bool:
        row = await svc.ctx.pool.fetchval(
            "SELECT count(*) FROM microgrid_node n JOIN legacy_circuit c ON c.circuit_id = $2"
            " WHERE n.microgrid_id = $1",
            depot.microgrid_id,
            depot.circuit_id,
        )
        return row == len(nodes)

    await eventually(consumed, timeout=30, interval=0.05)
    return depot


async def add_control_point(
    svc: RunningService, settings: PlatformSettings, producer: AIOKafkaProducer, depot: Depot
) -> uuid.UUID:
    """A forecast-originating control point (external, e.g. an OSCP adapter's) on the managed node."""
    cp = CapabilityControlPointUpdatedPayload(
        control_point_id=uuid.uuid4(),
        microgrid_id=depot.microgrid_id,
        node_id=depot.grid_connection_id,
        capability_type=CapabilityType.LOAD_BALANCING,
        state=CapabilityState.ENABLED,
        control_source=ControlSource.EXTERNAL,
        external_config_type="capacity-forecast",
        external_config_ref="forecast-adapter/1",
        updated_by="test",
    )
    await publish_as_owner(
        producer, settings, CapabilityControlPointUpdated.create(cp, producer="topology", occurred_at=T0)
    )

    async def consumed() -> bool:
        found = await svc.ctx.pool.fetchval(
            "SELECT 1 FROM capability_control_point WHERE control_point_id = $1", cp.control_point_id
        )
        return found == 1

    await eventually(consumed, timeout=30, interval=0.05)
    return cp.control_point_id


def status_event(depot: Depot, control_point_id: uuid.UUID, status: str, observed_at: datetime) -> Message:
    record = CapabilityStatusEventRecord(
        status_event_id=uuid.uuid4(),
        microgrid_id=depot.microgrid_id,
        control_point_id=control_point_id,
        node_id=depot.grid_connection_id,
        capability_type=CapabilityType.LOAD_BALANCING,
        operational_status=status,
        reported_by=ControlSource.EXTERNAL,
        observed_at=observed_at,
        ingested_at=observed_at,
    )
    return CapabilityStatusRecorded.create(record, producer="topology", occurred_at=observed_at)


def block(start: timedelta, end: timedelta, watts: int, **bounds: int) -> dict[str, Any]:
    return {
        "block_from": (T0 + start).isoformat(),
        "block_to": (T0 + end).isoformat(),
        "target_watts": watts,
        **bounds,
    }


def envelope_body(
    node_id: uuid.UUID,
    *,
    envelope_type: str = "FORECAST",
    start: timedelta,
    end: timedelta,
    blocks: list[dict[str, Any]],
    origin: uuid.UUID | None = None,
    constraint_type: str = "CONSUMPTION_CAP",
    source_ref: str | None = None,
) -> dict[str, Any]:
    return {
        "node_id": str(node_id),
        "origin_control_point_id": str(origin) if origin else None,
        "envelope_type": envelope_type,
        "constraint_type": constraint_type,
        "effective_from": (T0 + start).isoformat(),
        "effective_to": (T0 + end).isoformat(),
        "source_ref": source_ref or f"upstream-{uuid.uuid4()}",
        "blocks": blocks,
    }


async def events_for(reader: TopicReader, microgrid_id: uuid.UUID, topic_suffix: str) -> list[dict[str, Any]]:
    """Payloads published on a topic for one microgrid, in log order (the reader keeps polling)."""
    await reader.poll()
    return [
        json.loads(r.value)["payload"]
        for r in reader.records
        if r.topic.endswith(topic_suffix) and json.loads(r.value)["payload"].get("microgrid_id") == str(microgrid_id)
    ]
