"""The envelope write port, through both doors (internal HTTP and the command topic): receipt, rejection
(stored and reported, never dropped), idempotent ingest by source_ref, withdrawal."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from contracts.commands import (
    SubmitOperatingEnvelope,
    SubmitOperatingEnvelopePayload,
    WithdrawOperatingEnvelope,
    WithdrawOperatingEnvelopePayload,
)
from contracts.enums import ConstraintType, EnvelopeType, NodeType
from contracts.events import TopologyUpdated, TopologyUpdatedPayload
from contracts.records import EnvelopeBlockRecord, MicrogridNodeRecord
from libs.platform.clock import ManualClock
from libs.platform.settings import PlatformSettings
from services.envelope_lifecycle.service import evaluate_due_timers
from tests.integration.envelope_lifecycle.conftest import (
    DEFAULT_W,
    READ,
    T0,
    WRITE,
    Depot,
    block,
    envelope_body,
    events_for,
    make_depot,
)
from tests.support import TopicReader, eventually, publish_as_owner
from tests.support_services import RunningService, auth_headers

pytestmark = pytest.mark.integration
H = timedelta(hours=1)
RECEIVED = "microgrid.operating_envelope_received"
REJECTED = "microgrid.operating_envelope_rejected"
CAPACITY = "compatibility.effective_circuit_capacity_changed"
LIFECYCLE = "microgrid.operating_envelope_lifecycle_evaluated"


async def envelopes(svc: RunningService, depot: Depot, **params: Any) -> list[dict[str, Any]]:
    r = await svc.client.get(depot.path(), params=params, headers=READ)
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["result"]
    return found


@pytest.mark.req("FR-026", "FR-027", "FR-029", "FR-033")
async def test_active_envelope_received_over_http_is_stored_visible_and_projected(
    service: RunningService, clock: ManualClock, settings: PlatformSettings, kafka: Any
) -> None:
    depot = await make_depot(service, settings, kafka)
    body = envelope_body(
        depot.grid_connection_id,
        envelope_type="OVERRIDE",
        start=-H,
        end=2 * H,
        blocks=[block(-H, 2 * H, 55_000, min_limit_watts=10_000, max_limit_watts=90_000)],
    )
    r = await service.client.post(depot.path(), json=body, headers=WRITE)
    assert r.status_code == 201, r.text
    assert r.json()["microgrid_id"] == str(depot.microgrid_id)
    envelope = r.json()["result"]["envelope"]
    assert envelope["status"] == "ACTIVE"  # its window had begun at receipt

    # FR-033: active envelopes per microgrid and node, and the effective capacity of the managed circuit.
    active = await envelopes(service, depot, status="ACTIVE", node_id=str(depot.grid_connection_id))
    assert [e["envelope_id"] for e in active] == [envelope["envelope_id"]]
    assert active[0]["submitted_by"] == "test-operator"
    assert await envelopes(service, depot, status="ACTIVE", node_id=str(depot.branch_id)) == []
    r = await service.client.get(f"/internal/microgrid/{depot.microgrid_id}/effective-circuit-capacity", headers=READ)
    [capacity] = r.json()["result"]["circuits"]
    assert (capacity["effective_capacity_watts"], capacity["basis"], capacity["projection_trigger"]) == (
        55_000,
        "OVERRIDE",
        "ENVELOPE_CHANGE",
    )

    async with TopicReader(settings, RECEIVED, CAPACITY) as reader:

        async def published() -> bool:
            return bool(await events_for(reader, depot.microgrid_id, CAPACITY))

        await eventually(published, timeout=30)
        [received] = await events_for(reader, depot.microgrid_id, RECEIVED)
        [change] = await events_for(reader, depot.microgrid_id, CAPACITY)
    assert received["envelope_id"] == envelope["envelope_id"] and len(received["blocks"]) == 1
    assert (change["circuit_id"], change["node_id"]) == (str(depot.circuit_id), str(depot.grid_connection_id))
    assert (change["previous_capacity_watts"], change["effective_capacity_watts"]) == (DEFAULT_W, 55_000)


@pytest.mark.req("FR-026", "NFR-010")
@pytest.mark.parametrize(
    ("mutate", "rule"),
    [
        (lambda b, d: b.update(blocks=[block(0 * H, 2 * H, 50_000), block(H, 3 * H, 40_000)]), "ENVELOPE_INVARIANTS"),
        (lambda b, d: b.update(blocks=[block(0 * H, 5 * H, 50_000)]), "ENVELOPE_INVARIANTS"),
        (lambda b, d: b.update(blocks=[block(0 * H, H, 95_000, max_limit_watts=90_000)]), "ENVELOPE_INVARIANTS"),
        (lambda b, d: b.update(node_id=str(uuid.uuid4())), "TARGET_NODE_IN_MICROGRID"),
        (lambda b, d: b.update(constraint_type="APPARENT_POWER_CAP"), "CONSTRAINT_TYPE_KNOWN"),
        (lambda b, d: b.update(envelope_type="OSCP_FORECAST"), "ENVELOPE_TYPE_KNOWN"),
        (
            lambda b, d: b.update(
                effective_from=(T0 - 3 * H).isoformat(),
                effective_to=(T0 - H).isoformat(),
                blocks=[block(-3 * H, -H, 50_000)],
            ),
            "EFFECTIVE_WINDOW_NOT_ELAPSED",
        ),
    ],
    ids=[
        "overlap",
        "outside-window",
        "target-above-max",
        "unknown-node",
        "unknown-constraint",
        "unknown-type",
        "elapsed",
    ],
)
async def test_invalid_envelope_is_stored_rejected_and_reported(
    service: RunningService, clock: ManualClock, settings: PlatformSettings, kafka: Any, mutate: Any, rule: str
) -> None:
    depot = await make_depot(service, settings, kafka)
    body = envelope_body(depot.grid_connection_id, start=0 * H, end=3 * H, blocks=[block(0 * H, H, 50_000)])
    mutate(body, depot)
    r = await service.client.post(depot.path(), json=body, headers=WRITE)
    assert r.status_code == 422, r.text
    error = r.json()
    assert (error["reason_code"], error["violated_rule"]) == ("ENVELOPE_INVALID", rule)
    envelope_id = error["details"]["envelope_id"]

    [stored] = await envelopes(service, depot, status="REJECTED")
    assert (stored["envelope_id"], stored["violated_rule"], stored["source_ref"]) == (
        envelope_id,
        rule,
        body["source_ref"],
    )
    assert stored["rejection_reason"] == error["message"]
    # The same submission again: the same stored rejection, nothing new emitted (NFR-010).
    again = await service.client.post(depot.path(), json=body, headers=WRITE)
    assert again.status_code == 422 and again.json()["details"] == {**error["details"], "replay": True}

    async with TopicReader(settings, REJECTED) as reader:

        async def reported() -> list[dict[str, Any]] | None:
            return await events_for(reader, depot.microgrid_id, REJECTED) or None

        [event] = await eventually(reported, timeout=30)
    assert (event["envelope_id"], event["reason_code"], event["violated_rule"]) == (
        envelope_id,
        "ENVELOPE_INVALID",
        rule,
    )
    assert await outbox_count(service, depot, REJECTED) == 1
    assert (
        await service.ctx.pool.fetchval(
            "SELECT count(*) FROM lifecycle_timer WHERE envelope_id = $1", uuid.UUID(envelope_id)
        )
        == 0
    )


@pytest.mark.req("NFR-010", "FR-026")
async def test_ingest_is_idempotent_by_source_ref_across_both_doors(
    service: RunningService, clock: ManualClock, settings: PlatformSettings, kafka: Any
) -> None:
    depot = await make_depot(service, settings, kafka)
    body = envelope_body(
        depot.grid_connection_id,
        envelope_type=EnvelopeType.TOU_LIMIT,
        start=H,
        end=2 * H,
        blocks=[block(H, 2 * H, 45_000)],
        source_ref="oscp:forecast:4711",
    )
    first = await service.client.post(depot.path(), json=body, headers=WRITE)
    assert first.status_code == 201, first.text
    replay = await service.client.post(depot.path(), json=body, headers=auth_headers("integration:write", subject="b"))
    assert replay.status_code == 200 and replay.json()["result"]["replay"] is True
    assert replay.json()["result"]["envelope"] == first.json()["result"]["envelope"]

    # The same source_ref through the command topic is the same envelope too; nothing new happens.
    p = body
    command = SubmitOperatingEnvelope.create(
        SubmitOperatingEnvelopePayload(
            microgrid_id=depot.microgrid_id,
            node_id=depot.grid_connection_id,
            envelope_type=EnvelopeType.TOU_LIMIT,
            constraint_type=ConstraintType.CONSUMPTION_CAP,
            effective_from=p["effective_from"],
            effective_to=p["effective_to"],
            source_ref=p["source_ref"],
            blocks=[EnvelopeBlockRecord(**b) for b in p["blocks"]],
        ),
        producer="adapter",
        occurred_at=T0,
    )
    await publish_as_owner(kafka, settings, command)
    await eventually(lambda: _inbox_has(service, command.event_id), timeout=30)

    # Same source_ref, different content: refused, the stored envelope stands.
    changed = {**body, "blocks": [block(H, 2 * H, 30_000)]}
    conflict = await service.client.post(depot.path(), json=changed, headers=WRITE)
    assert conflict.status_code == 409 and conflict.json()["reason_code"] == "CONFLICT"

    assert len(await envelopes(service, depot)) == 1
    history = await service.client.get(
        depot.path(f"/{first.json()['result']['envelope']['envelope_id']}"), headers=READ
    )
    assert [e["transition"] for e in history.json()["result"]["entries"]] == ["RECEIVED"]
    assert await outbox_count(service, depot, RECEIVED) == 1
    # ... and the refusal is audited as a rejection naming the rule, not lost (NFR-010).
    assert await outbox_count(service, depot, REJECTED) == 1
    refusal = await service.ctx.pool.fetchval(
        "SELECT convert_from(value, 'UTF8')::jsonb -> 'payload' ->> 'violated_rule' FROM outbox"
        " WHERE topic LIKE '%' || $1 AND convert_from(value, 'UTF8')::jsonb -> 'payload' ->> 'microgrid_id' = $2",
        REJECTED,
        str(depot.microgrid_id),
    )
    assert refusal == "SOURCE_REF_CONTENT_UNCHANGED"


@pytest.mark.req("NFR-010", "FR-026")
async def test_an_envelope_rejected_for_an_unknown_node_is_accepted_when_sent_again_after_the_node_arrives(
    service: RunningService, clock: ManualClock, settings: PlatformSettings, kafka: Any
) -> None:
    depot = await make_depot(service, settings, kafka)
    new_node = uuid.uuid4()
    body = envelope_body(new_node, start=0 * H, end=3 * H, blocks=[block(0 * H, H, 50_000)])
    early = await service.client.post(depot.path(), json=body, headers=WRITE)
    assert early.status_code == 422 and early.json()["violated_rule"] == "TARGET_NODE_IN_MICROGRID"

    # The topology event naming the node arrives after the envelope did.
    nodes = [
        depot.feeder_node(),
        MicrogridNodeRecord(
            node_id=new_node,
            microgrid_id=depot.microgrid_id,
            parent_node_id=depot.grid_connection_id,
            name="New branch",
            node_type=NodeType.CIRCUIT,
        ),
    ]
    topology = TopologyUpdatedPayload(
        microgrid_id=depot.microgrid_id, depot_id=depot.depot_id, version=2, updated_by="test", nodes=nodes
    )
    await publish_as_owner(kafka, settings, TopologyUpdated.create(topology, producer="topology", occurred_at=T0))

    async def node_known() -> bool:
        found = await service.ctx.pool.fetchval("SELECT count(*) FROM microgrid_node WHERE node_id = $1", new_node)
        return found == 1

    await eventually(node_known, timeout=30, interval=0.05)
    later = await service.client.post(depot.path(), json=body, headers=WRITE)
    assert later.status_code == 201, later.text
    accepted = later.json()["result"]["envelope"]
    assert accepted["envelope_id"] == early.json()["details"]["envelope_id"]
    assert accepted["status"] == "ACTIVE"
    assert [e["envelope_id"] for e in await envelopes(service, depot)] == [accepted["envelope_id"]]
    history = await service.client.get(depot.path(f"/{accepted['envelope_id']}"), headers=READ)
    assert [e["transition"] for e in history.json()["result"]["entries"]] == ["REJECTED", "RECEIVED"]
    assert await outbox_count(service, depot, RECEIVED) == 1


async def outbox_count(svc: RunningService, depot: Depot, topic_suffix: str) -> int:
    """Events this service recorded for publication (the outbox), by topic, for one microgrid."""
    count: int = await svc.ctx.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE topic LIKE '%' || $1"
        " AND convert_from(value, 'UTF8')::jsonb -> 'payload' ->> 'microgrid_id' = $2",
        topic_suffix,
        str(depot.microgrid_id),
    )
    return count


async def _inbox_has(svc: RunningService, event_id: uuid.UUID) -> bool:
    return await svc.ctx.pool.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", str(event_id)) == 1


@pytest.mark.req("FR-026", "FR-029")
async def test_withdrawal_restores_the_baseline_and_cancels_timers(
    service: RunningService, clock: ManualClock, settings: PlatformSettings, kafka: Any
) -> None:
    depot = await make_depot(service, settings, kafka)
    body = envelope_body(
        depot.grid_connection_id,
        envelope_type="OVERRIDE",
        start=0 * H,
        end=2 * H,
        blocks=[block(0 * H, H, 35_000), block(H, 2 * H, 45_000)],
    )
    r = await service.client.post(depot.path(), json=body, headers=WRITE)
    envelope_id = r.json()["result"]["envelope"]["envelope_id"]

    clock.set(T0 + timedelta(minutes=20))
    r = await service.client.post(depot.path(f"/{envelope_id}/withdraw"), json={}, headers=WRITE)
    assert r.status_code == 200, r.text
    assert r.json()["result"]["envelope"]["status"] == "WITHDRAWN" and r.json()["result"]["replay"] is False
    again = await service.client.post(depot.path(f"/{envelope_id}/withdraw"), headers=WRITE)
    assert again.status_code == 200 and again.json()["result"]["replay"] is True
    missing = await service.client.post(depot.path(f"/{uuid.uuid4()}/withdraw"), headers=WRITE)
    assert missing.status_code == 404

    # Its boundaries no longer fire: a later evaluation leaves it WITHDRAWN and emits nothing for it.
    await evaluate_due_timers(service.ctx, T0 + 3 * H)
    history = await service.client.get(depot.path(f"/{envelope_id}"), headers=READ)
    assert [(e["transition"], e["status"]) for e in history.json()["result"]["entries"]] == [
        ("RECEIVED", "ACTIVE"),
        ("WITHDRAWAL", "WITHDRAWN"),
    ]
    outcomes = await service.ctx.pool.fetch(
        "SELECT DISTINCT outcome FROM lifecycle_timer WHERE envelope_id = $1", uuid.UUID(envelope_id)
    )
    assert [o["outcome"] for o in outcomes] == ["CANCELLED"]

    async with TopicReader(settings, CAPACITY, LIFECYCLE) as reader:

        async def both() -> list[dict[str, Any]] | None:
            found = await events_for(reader, depot.microgrid_id, CAPACITY)
            return found if len(found) == 2 else None

        changes = await eventually(both, timeout=30)
        [withdrawal] = await events_for(reader, depot.microgrid_id, LIFECYCLE)
    assert [(c["effective_capacity_watts"], c["projection_trigger"]) for c in changes] == [
        (35_000, "ENVELOPE_CHANGE"),
        (DEFAULT_W, "ENVELOPE_CHANGE"),
    ]
    assert changes[1]["evaluated_at"] == "2030-06-01T12:20:00Z"
    assert (withdrawal["timer_kind"], withdrawal["previous_status"], withdrawal["status"]) == (
        "WITHDRAWAL",
        "ACTIVE",
        "WITHDRAWN",
    )


@pytest.mark.req("FR-026")
async def test_command_topic_submits_and_withdraws_by_source_ref(
    service: RunningService, clock: ManualClock, settings: PlatformSettings, kafka: Any
) -> None:
    depot = await make_depot(service, settings, kafka)
    submit = SubmitOperatingEnvelope.create(
        SubmitOperatingEnvelopePayload(
            microgrid_id=depot.microgrid_id,
            node_id=depot.branch_id,
            envelope_type=EnvelopeType.TOU_LIMIT,
            constraint_type=ConstraintType.CONSUMPTION_CAP,
            effective_from=T0 + H,
            effective_to=T0 + 2 * H,
            source_ref="legacy-tou:r1",
            blocks=[EnvelopeBlockRecord(block_from=T0 + H, block_to=T0 + 2 * H, max_limit_watts=20_000)],
        ),
        producer="compatibility_adapter",
        occurred_at=T0,
    )
    withdraw = WithdrawOperatingEnvelope.create(
        WithdrawOperatingEnvelopePayload(microgrid_id=depot.microgrid_id, source_ref="legacy-tou:r1"),
        producer="compatibility_adapter",
        occurred_at=T0,
    )
    await publish_as_owner(kafka, settings, submit)
    await publish_as_owner(kafka, settings, withdraw)  # same key (microgrid), so consumed after the submission

    async def withdrawn() -> bool:
        found = await envelopes(service, depot)
        return len(found) == 1 and found[0]["status"] == "WITHDRAWN"

    await eventually(withdrawn, timeout=30)
    [stored] = await envelopes(service, depot)
    assert (stored["node_id"], stored["submitted_by"]) == (str(depot.branch_id), "adapter")
    # A branch node is not a projection scope: applies in balancing, never projected, never a failure.
    r = await service.client.get(f"/internal/microgrid/{depot.microgrid_id}/effective-circuit-capacity", headers=READ)
    assert r.json()["result"] == {"circuits": [], "failures": []}


async def test_the_actor_is_the_token_subject_and_a_body_submitted_by_is_only_a_claim(
    service: RunningService, clock: ManualClock, settings: PlatformSettings, kafka: Any
) -> None:
    # Issue 14 (mass assignment): `submitted_by` in the body was stored as the actor.
    depot = await make_depot(service, settings, kafka)
    body = envelope_body(depot.grid_connection_id, start=-H, end=H, blocks=[block(-H, H, 50_000)])
    headers = auth_headers("integration:write", subject="forecast-integration")

    r = await service.client.post(depot.path(), json={**body, "submitted_by": "grid-operator-admin"}, headers=headers)

    assert r.status_code == 201, r.text
    [stored] = await envelopes(service, depot)
    assert stored["submitted_by"] == "forecast-integration"
    assert stored["claimed_by"] == "grid-operator-admin"
    row = await service.ctx.pool.fetchrow(
        "SELECT submitted_by, claimed_by FROM operating_envelope WHERE envelope_id = $1",
        uuid.UUID(stored["envelope_id"]),
    )
    assert (row["submitted_by"], row["claimed_by"]) == ("forecast-integration", "grid-operator-admin")
