"""GET/POST /api/circuit/{circuit_id}/tou_limits through the envelope write port (Compatibility Matrix)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from contracts.commands import SubmitOperatingEnvelope, WithdrawOperatingEnvelope
from contracts.enums import AssetType, ConstraintType, EnvelopeStatus, EnvelopeType, NodeType
from contracts.events import OperatingEnvelopeReceived
from contracts.records import MicrogridNodeRecord, OperatingEnvelopeRecord
from libs.platform.auth import Grant
from tests.integration.compatibility_adapter.conftest import Adapter, known_site, new_site
from tests.support import eventually
from tests.support_services import auth_headers

pytestmark = pytest.mark.integration

T0 = datetime(2030, 1, 7, tzinfo=UTC)
SCHEDULE = {
    "periods": [
        {
            "start": (T0 + timedelta(hours=17)).isoformat(),
            "end": (T0 + timedelta(hours=21)).isoformat(),
            "limit_watts": 40_000,
        },
        {
            "start": (T0 + timedelta(hours=7)).isoformat(),
            "end": (T0 + timedelta(hours=9)).isoformat(),
            "limit_watts": 55_000,
        },
    ]
}
WRITE, READ = auth_headers("integration:write"), auth_headers("operator:read")


async def commands_for(adapter: Adapter, site_node: uuid.UUID) -> list[SubmitOperatingEnvelope]:
    return [m for m in await adapter.outbox("microgrid.submit_operating_envelope") if m.payload.node_id == site_node]


@pytest.mark.req("FR-008", "FR-029", "FR-033", "NFR-005")
async def test_tou_write_becomes_one_envelope_command_and_reads_back_once_received(adapter: Adapter) -> None:
    site = await known_site(adapter)
    url = f"/api/circuit/{site.circuit_id}/tou_limits"

    posted = await adapter.service.client.post(url, json=SCHEDULE, headers=WRITE)
    assert posted.status_code == 202, posted.text
    assert posted.headers["Deprecation"] == "true"
    assert posted.json()["status"] == "SUBMITTED"
    [command] = await commands_for(adapter, site.node_id)
    p = command.payload
    assert (p.microgrid_id, p.node_id, p.envelope_type, p.constraint_type) == (
        site.microgrid_id,
        site.node_id,
        EnvelopeType.TOU_LIMIT,
        ConstraintType.CONSUMPTION_CAP,
    )
    assert [(b.block_from.hour, b.block_to.hour, b.max_limit_watts) for b in p.blocks] == [
        (7, 9, 55_000),
        (17, 21, 40_000),
    ]
    assert p.source_ref == posted.json()["source_ref"]

    # A replay of the same schedule submits nothing new.
    replay = await adapter.service.client.post(url, json=SCHEDULE, headers=WRITE)
    assert replay.json()["status"] == "UNCHANGED"
    assert len(await commands_for(adapter, site.node_id)) == 1

    # Before the envelope service reports it, the microgrid holds no TOU limit for the node.
    empty = await adapter.service.client.get(url, headers=READ)
    assert empty.status_code == 200 and empty.json()["periods"] == []

    # Play the envelope service: it accepted the command.
    record = OperatingEnvelopeRecord(
        envelope_id=uuid.uuid4(),
        status=EnvelopeStatus.PENDING,
        received_at=datetime.now(UTC),
        **p.model_dump(exclude={"submitted_by", "supersedes_source_refs"}),
    )
    await adapter.send(
        OperatingEnvelopeReceived.create(
            record, producer="envelope_lifecycle", occurred_at=datetime.now(UTC), causation=command
        )
    )

    async def read_back() -> dict | None:
        body = (await adapter.service.client.get(url, headers=READ)).json()
        return body if body["periods"] else None

    body = await eventually(read_back)
    assert (body["microgrid_id"], body["node_id"]) == (str(site.microgrid_id), str(site.node_id))
    assert [(p["limit_watts"]) for p in body["periods"]] == [55_000, 40_000]
    assert body["envelopes"][0]["source_ref"] == command.payload.source_ref


@pytest.mark.req("FR-008", "NFR-005")
async def test_a_new_schedule_replaces_the_previous_one(adapter: Adapter) -> None:
    site = await known_site(adapter)
    url = f"/api/circuit/{site.circuit_id}/tou_limits"
    first = (await adapter.service.client.post(url, json=SCHEDULE, headers=WRITE)).json()
    changed = {"periods": [SCHEDULE["periods"][0] | {"limit_watts": 30_000}]}
    second = (await adapter.service.client.post(url, json=changed, headers=WRITE)).json()
    assert second["status"] == "SUBMITTED"
    assert second["withdrawn_source_ref"] == first["source_ref"] != second["source_ref"]

    async def withdrawals_of(source_ref: str) -> list[WithdrawOperatingEnvelope]:
        return [
            m
            for m in await adapter.outbox("microgrid.withdraw_operating_envelope")
            if isinstance(m, WithdrawOperatingEnvelope) and m.payload.source_ref == source_ref
        ]

    # The replacement names what it supersedes; the write port withdraws it only when it accepts the
    # replacement (a rejected one leaves the old limit in force), so no separate withdrawal goes out.
    commands = await commands_for(adapter, site.node_id)
    assert len(commands) == 2
    assert commands[1].payload.supersedes_source_refs == [first["source_ref"]]
    assert await withdrawals_of(first["source_ref"]) == []
    cleared = (await adapter.service.client.post(url, json={"periods": []}, headers=WRITE)).json()
    assert (cleared["status"], cleared["withdrawn_source_ref"]) == ("CLEARED", second["source_ref"])
    assert len(await withdrawals_of(second["source_ref"])) == 1


@pytest.mark.req("FR-016", "NFR-006")
async def test_unmapped_or_ambiguous_circuit_is_a_422_with_the_matrix_reason_code(adapter: Adapter) -> None:
    unknown = uuid.uuid4()
    response = await adapter.service.client.post(f"/api/circuit/{unknown}/tou_limits", json=SCHEDULE, headers=WRITE)
    assert response.status_code == 422
    assert response.json()["reason_code"] == "LIMIT_SCOPE_TRANSLATION_FAILED"
    assert response.headers["Deprecation"] == "true"

    # The same circuit attached to nodes in two microgrids: ambiguous, never guessed.
    site, other = await known_site(adapter), new_site()
    stray = MicrogridNodeRecord(
        node_id=uuid.uuid4(),
        microgrid_id=other.microgrid_id,
        name="Sub-circuit",
        node_type=NodeType.CIRCUIT,
        attached_asset_type=AssetType.CIRCUIT,
        attached_asset_id=site.circuit_id,
    )
    await adapter.send(other.topology(extra=[stray]))
    await eventually(
        lambda: adapter.service.ctx.pool.fetchval(
            "SELECT count(*) = 2 FROM circuit_alias WHERE circuit_id = $1", site.circuit_id
        )
    )
    for method in ("post", "get"):
        kwargs = {"json": SCHEDULE, "headers": WRITE} if method == "post" else {"headers": READ}
        answer = await getattr(adapter.service.client, method)(f"/api/circuit/{site.circuit_id}/tou_limits", **kwargs)
        assert answer.status_code == 422
        assert answer.json()["reason_code"] == "LEGACY_POLICY_SCOPE_AMBIGUOUS"
    assert not await commands_for(adapter, stray.node_id)
    assert not await commands_for(adapter, site.node_id)


@pytest.mark.req("FR-016", "NFR-006")
async def test_a_circuit_carried_only_by_a_sub_circuit_node_is_no_tou_scope(adapter: Adapter) -> None:
    # The Compatibility Matrix maps a TOU scope "to the target managed node": the managed grid connection.
    site = await known_site(adapter)
    sub_circuit = uuid.uuid4()
    branch = MicrogridNodeRecord(
        node_id=uuid.uuid4(),
        microgrid_id=site.microgrid_id,
        parent_node_id=site.node_id,
        name="Sub-circuit",
        node_type=NodeType.CIRCUIT,
        attached_asset_type=AssetType.CIRCUIT,
        attached_asset_id=sub_circuit,
    )
    await adapter.send(site.topology(version=2, extra=[branch]))
    await eventually(
        lambda: adapter.service.ctx.pool.fetchval("SELECT 1 FROM circuit_alias WHERE circuit_id = $1", sub_circuit)
    )
    url = f"/api/circuit/{sub_circuit}/tou_limits"
    for answer in (
        await adapter.service.client.post(url, json=SCHEDULE, headers=WRITE),
        await adapter.service.client.get(url, headers=READ),
    ):
        assert answer.status_code == 422
        assert answer.json()["reason_code"] == "LIMIT_SCOPE_TRANSLATION_FAILED"
    assert not await commands_for(adapter, branch.node_id)


async def test_overlapping_periods_are_refused(adapter: Adapter) -> None:
    site = await known_site(adapter)
    overlapping = {"periods": [SCHEDULE["periods"][0], SCHEDULE["periods"][0]]}
    response = await adapter.service.client.post(
        f"/api/circuit/{site.circuit_id}/tou_limits", json=overlapping, headers=WRITE
    )
    assert response.status_code == 422
    assert response.json()["reason_code"] == "VALIDATION_FAILED"


async def test_an_ambiguity_refusal_names_only_the_callers_microgrids(adapter: Adapter) -> None:
    # Issue 14: the 422 listed every candidate microgrid, including ones the caller has no grant on.
    site, other = await known_site(adapter), new_site()
    stray = MicrogridNodeRecord(
        node_id=uuid.uuid4(),
        microgrid_id=other.microgrid_id,
        name="Sub-circuit",
        node_type=NodeType.CIRCUIT,
        attached_asset_type=AssetType.CIRCUIT,
        attached_asset_id=site.circuit_id,
    )
    await adapter.send(other.topology(extra=[stray]))
    await eventually(
        lambda: adapter.service.ctx.pool.fetchval(
            "SELECT count(*) = 2 FROM circuit_alias WHERE circuit_id = $1", site.circuit_id
        )
    )
    mine = auth_headers("integration:write", grant=Grant(microgrids=frozenset({site.microgrid_id})))

    url = f"/api/circuit/{site.circuit_id}/tou_limits"

    answer = await adapter.service.client.post(url, json=SCHEDULE, headers=mine)

    assert answer.status_code == 422
    assert answer.json()["reason_code"] == "LEGACY_POLICY_SCOPE_AMBIGUOUS"
    assert [c["microgrid_id"] for c in answer.json()["details"]["candidates"]] == [str(site.microgrid_id)]
    assert str(other.microgrid_id) not in answer.text
