"""POST /api/circuit/{circuit_id}/rebalance_load: resolve, request one cycle, answer with its result and the
mapped ids (sequence "Rebalance with Compatibility Alias"). The test plays the balancing service."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest

from contracts.enums import AliasPath, AssetType, CycleOutcome, NodeType, ReasonCode, RebalanceSource
from contracts.events import CycleCompleted, RebalanceRequested
from contracts.records import AllocationSummaryRecord, CycleAuditRecord, CycleResultRecord, MicrogridNodeRecord
from tests.integration.compatibility_adapter.conftest import Adapter, known_site, play_balancing
from tests.support import TopicReader, eventually
from tests.support_services import auth_headers

pytestmark = pytest.mark.integration


@pytest.mark.req("FR-008", "FR-015", "NFR-005", "NFR-006")
async def test_http_alias_returns_the_cycle_result_with_mapped_ids_once_per_idempotency_key(
    adapter: Adapter,
) -> None:
    site = await known_site(adapter)
    headers = auth_headers("integration:write") | {"Idempotency-Key": "lb-42", "X-Correlation-ID": "corr-lb-42"}
    url = f"/api/circuit/{site.circuit_id}/rebalance_load"

    call = asyncio.create_task(adapter.service.client.post(url, headers=headers, timeout=30))
    request = await play_balancing(adapter, site.circuit_id)
    response = await call

    assert response.status_code == 200, response.text
    assert response.headers["Deprecation"] == "true"
    assert response.headers["Link"] == f'</api/microgrid/{site.microgrid_id}/rebalance>; rel="successor-version"'
    body = response.json()
    assert (body["circuit_id"], body["microgrid_id"], body["node_id"]) == (
        str(site.circuit_id),
        str(site.microgrid_id),
        str(site.node_id),
    )
    assert body["status"] == "COMPLETED"
    assert body["reason_codes"] == ["ANCESTOR_CAP_EXCEEDED", "NODE_CAP_EXCEEDED", "LEGACY_ALIAS_TRANSLATION_APPLIED"]
    assert body["result"]["outcome"] == "CURTAILED"
    assert body["correlation_id"] == "corr-lb-42" == request.correlation_id
    assert request.payload.source == RebalanceSource.LEGACY_ALIAS
    assert (request.payload.microgrid_id, request.payload.node_id) == (site.microgrid_id, site.node_id)
    assert request.payload.request_key == body["request_key"]

    # Same key again: the same answer, and still exactly one cycle requested and one alias applied.
    again = await adapter.service.client.post(url, headers=headers)
    assert again.status_code == 200
    assert again.json()["result"] == body["result"]
    requests = [
        m for m in await adapter.outbox("microgrid.rebalance_requested") if m.payload.circuit_id == site.circuit_id
    ]
    aliases = [
        m
        for m in await adapter.outbox("compatibility.circuit_alias_applied")
        if m.payload.circuit_id == site.circuit_id
    ]
    assert len(requests) == 1
    assert [(a.payload.path, a.payload.rebalance_request_key) for a in aliases] == [
        (AliasPath.LEGACY_HTTP, request.payload.request_key)
    ]


@pytest.mark.req("FR-016", "NFR-006")
async def test_unresolvable_circuit_is_a_409_with_the_reason_code_and_an_audit_record(adapter: Adapter) -> None:
    unknown = uuid.uuid4()
    response = await adapter.service.client.post(
        f"/api/circuit/{unknown}/rebalance_load", headers=auth_headers("integration:write")
    )
    assert response.status_code == 409
    assert response.headers["Deprecation"] == "true"
    body = response.json()
    assert body["reason_code"] == "CIRCUIT_ALIAS_NOT_RESOLVABLE"
    # No topology carries this circuit: it failed on "no topology" (0); the first topology could resolve it.
    assert (body["expected_version"], body["actual_version"]) == (1, 0)
    assert not [m for m in await adapter.outbox("microgrid.rebalance_requested") if m.payload.circuit_id == unknown]
    failures = [
        m for m in await adapter.outbox("compatibility.circuit_alias_failed") if m.payload.circuit_id == unknown
    ]
    assert [(f.payload.path, f.payload.reason_code) for f in failures] == [
        (AliasPath.LEGACY_HTTP, ReasonCode.CIRCUIT_ALIAS_NOT_RESOLVABLE)
    ]
    audit = await adapter.service.ctx.pool.fetchval(
        "SELECT count(*) FROM translation_audit WHERE circuit_id = $1 AND result = 'FAILED'", unknown
    )
    assert audit == 1


async def test_an_ambiguous_alias_409_names_the_topology_version_it_failed_on(adapter: Adapter) -> None:
    site = await known_site(adapter)
    twin = MicrogridNodeRecord(node_id=uuid.uuid4(), microgrid_id=site.microgrid_id, name="Feeder 1 twin",
                               node_type=NodeType.GRID_CONNECTION, attached_asset_type=AssetType.CIRCUIT,
                               attached_asset_id=site.circuit_id)
    await adapter.send(site.topology(version=2, extra=[twin]))
    await eventually(lambda: adapter.service.ctx.pool.fetchval(
        "SELECT count(*) = 2 FROM circuit_alias WHERE circuit_id = $1", site.circuit_id))

    response = await adapter.service.client.post(
        f"/api/circuit/{site.circuit_id}/rebalance_load", headers=auth_headers("integration:write")
    )

    assert response.status_code == 409
    body = response.json()
    assert body["reason_code"] == "CIRCUIT_ALIAS_NOT_RESOLVABLE"
    assert (body["expected_version"], body["actual_version"]) == (3, 2)
    assert "topology v2" in body["message"]


async def test_circuit_routes_need_their_scopes(adapter: Adapter) -> None:
    circuit = uuid.uuid4()
    client = adapter.service.client
    assert (await client.post(f"/api/circuit/{circuit}/rebalance_load")).status_code == 401
    read_only = auth_headers("operator:read")
    assert (await client.post(f"/api/circuit/{circuit}/rebalance_load", headers=read_only)).status_code == 403
    assert (
        await client.post(f"/api/circuit/{circuit}/tou_limits", json={"periods": []}, headers=read_only)
    ).status_code == 403
    writer = auth_headers("integration:write")
    assert (await client.get(f"/api/circuit/{circuit}/tou_limits", headers=writer)).status_code == 403
    assert (await client.get(f"/api/circuit/{circuit}/effective_capacity", headers=writer)).status_code == 403


@pytest.mark.req("NFR-005")
async def test_translations_are_counted_by_path_result_and_reason(adapter: Adapter) -> None:
    await adapter.service.client.post(
        f"/api/circuit/{uuid.uuid4()}/rebalance_load", headers=auth_headers("integration:write")
    )
    response = await adapter.service.client.get(
        "/api/compatibility/translations", headers=auth_headers("operator:read")
    )
    assert response.status_code == 200
    counts = {(c["path"], c["result"], c["reason_code"]): c["count"] for c in response.json()["counts"]}
    assert counts[("LEGACY_HTTP", "FAILED", "CIRCUIT_ALIAS_NOT_RESOLVABLE")] >= 1


@pytest.mark.req("NFR-005")
async def test_a_cycle_slower_than_the_wait_bound_is_202_pending_then_collected_with_the_same_key(
    adapter: Adapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = await known_site(adapter)
    monkeypatch.setattr(adapter.service.ctx.settings, "compat_rebalance_wait_s", 0.2)
    headers = auth_headers("integration:write") | {"Idempotency-Key": "slow-1"}
    url = f"/api/circuit/{site.circuit_id}/rebalance_load"

    pending = await adapter.service.client.post(url, headers=headers)
    assert pending.status_code == 202
    assert (pending.json()["status"], pending.json()["result"]) == ("PENDING", None)
    assert pending.headers["Deprecation"] == "true"

    request = await play_balancing(adapter, site.circuit_id)
    monkeypatch.setattr(adapter.service.ctx.settings, "compat_rebalance_wait_s", 15.0)
    done = await adapter.service.client.post(url, headers=headers)
    assert done.status_code == 200
    assert done.json()["request_key"] == pending.json()["request_key"] == request.payload.request_key
    assert done.json()["result"]["audit"]["request_key"] == request.payload.request_key


async def test_a_result_the_http_door_waits_for_is_validated_whole_and_dead_lettered_if_broken(
    adapter: Adapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The adapter reads every cycle_completed as its summary; the one it keeps is validated whole, and a
    broken one goes to the dead-letter topic (INVALID_MESSAGE) instead of being answered."""
    site = await known_site(adapter)
    monkeypatch.setattr(adapter.service.ctx.settings, "compat_rebalance_wait_s", 0.2)
    headers = auth_headers("integration:write") | {"Idempotency-Key": "broken-1"}
    url = f"/api/circuit/{site.circuit_id}/rebalance_load"
    assert (await adapter.service.client.post(url, headers=headers)).status_code == 202

    async with TopicReader(adapter.settings, "microgrid.rebalance_requested") as reader:

        def mine(rs: list) -> list[RebalanceRequested]:
            found = [RebalanceRequested.model_validate_json(r.value) for r in rs]
            return [m for m in found if m.payload.circuit_id == site.circuit_id]

        [request] = mine(await reader.wait_for(mine))
    now = datetime.now(UTC)
    cycle = CycleResultRecord(
        cycle_id=uuid.uuid4(),
        microgrid_id=request.payload.microgrid_id,
        topology_version=1,
        started_at=now,
        ended_at=now,
        outcome=CycleOutcome.CURTAILED,
        reason_codes=[ReasonCode.NODE_CAP_EXCEEDED],
        allocation_summary=AllocationSummaryRecord(total_allocated_watts=11_000, total_requested_watts=22_000),
        audit=CycleAuditRecord(actor="a", source=RebalanceSource.LEGACY_ALIAS, correlation_id=request.correlation_id,
                               request_key=request.payload.request_key, inputs_digest="sha256:test"),
    )
    completed = json.loads(CycleCompleted.create(cycle, producer="balancing", occurred_at=now).to_bytes())
    completed["payload"]["allocation_summary"]["total_allocated_watts"] = "lots"  # outside the summary
    raw = json.dumps(completed).encode()
    await adapter.producer.send_and_wait(
        adapter.settings.topic("microgrid.cycle_completed"), raw, key=str(cycle.microgrid_id).encode()
    )

    async with TopicReader(adapter.settings, "dlq.compatibility_adapter") as dlq:
        [letter] = [r for r in await dlq.wait_for(lambda rs: any(r.value == raw for r in rs)) if r.value == raw]
    assert dict(letter.headers)["dlq.reason"] == b"INVALID_MESSAGE"
    still = await adapter.service.client.post(url, headers=headers)
    assert (still.status_code, still.json()["status"]) == (202, "PENDING")
