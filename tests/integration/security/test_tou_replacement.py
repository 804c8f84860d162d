"""A TOU replacement that fails leaves the old limit in force (issue 14).

On the old main, `POST /api/circuit/{id}/tou_limits` with `limit_watts` 2^63 answered 202 and withdrew
the live 100 kW TOU envelope; the replacement was then dead-lettered and the circuit ran on its looser
baseline. Now the replacement is judged in full before anything is sent, and the envelope write port
withdraws the old envelope only in the transaction that accepts its replacement.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.commands import SubmitOperatingEnvelope
from contracts.enums import ConstraintType, EnvelopeType
from contracts.records import EnvelopeBlockRecord
from tests.integration.security.conftest import WRITE, Depot, Services, resynced_depot
from tests.support import eventually

pytestmark = pytest.mark.integration

LIVE_WATTS = 100_000


def _schedule(watts: Any, start: datetime, hours: int = 4) -> dict[str, Any]:
    return {"periods": [{"start": start.isoformat(), "end": (start + timedelta(hours=hours)).isoformat(),
                         "limit_watts": watts}]}


async def _envelopes(services: Services, depot: Depot) -> dict[str, str]:
    """source_ref -> status of every envelope the envelope service holds for the microgrid."""
    r = await services["envelope_lifecycle"].client.get(
        f"/internal/microgrid/{depot.microgrid_id}/operating-envelopes", headers=WRITE
    )
    assert r.status_code == 200, r.text
    return {e["source_ref"]: e["status"] for e in r.json()["result"]}


async def _tou_periods(services: Services, depot: Depot) -> list[int]:
    r = await services["compatibility_adapter"].client.get(f"/api/circuit/{depot.circuit_id}/tou_limits", headers=WRITE)
    assert r.status_code == 200, r.text
    return [p["limit_watts"] for p in r.json()["periods"]]


async def _withdrawals(services: Services) -> int:
    topic = services.settings.topic("microgrid.withdraw_operating_envelope")
    pool = services["compatibility_adapter"].ctx.pool
    return await pool.fetchval("SELECT count(*) FROM outbox WHERE topic = $1", topic)


@pytest.mark.req("FR-008", "NFR-005")
async def test_a_failing_tou_replacement_leaves_the_live_limit_in_force(services: Services) -> None:
    depot = await resynced_depot(services)
    adapter = services["compatibility_adapter"].client
    url = f"/api/circuit/{depot.circuit_id}/tou_limits"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)  # in force now

    live = await adapter.post(url, json=_schedule(LIVE_WATTS, start), headers=WRITE)
    assert live.status_code == 202, live.text
    live_ref = live.json()["source_ref"]
    assert await eventually(lambda: _status_is(services, depot, live_ref, "ACTIVE"))
    assert await eventually(lambda: _periods_are(services, depot, [LIVE_WATTS]))
    withdrawals_before = await _withdrawals(services)

    # 1. The replacement from the issue: 2^63 W. Refused at the door.
    huge = await adapter.post(url, json=_schedule(2**63, start), headers=WRITE)
    assert huge.status_code == 422, huge.text
    assert "limit_watts" in {part for e in huge.json()["details"] for part in e["loc"]}

    # 2. A replacement the envelope rules refuse (its window has already elapsed): judged before
    #    anything is withdrawn.
    elapsed = await adapter.post(url, json=_schedule(50_000, start - timedelta(days=2), hours=1), headers=WRITE)
    assert elapsed.status_code == 422, elapsed.text
    assert (elapsed.json()["reason_code"], elapsed.json()["violated_rule"]) == ("ENVELOPE_INVALID",
                                                                                 "ENVELOPE_INVARIANTS")
    assert await _withdrawals(services) == withdrawals_before

    # 3. A replacement only the write port can judge (a node outside the microgrid) that supersedes the
    #    live envelope: the write port rejects it and withdraws nothing.
    stray = SubmitOperatingEnvelope.create(
        _replacement_payload(depot, node_id=uuid.uuid4(), supersedes=[live_ref], start=start),
        producer="compatibility_adapter",
        occurred_at=datetime.now(UTC),
    )
    await services.send(stray)
    assert await eventually(lambda: _status_is(services, depot, stray.payload.source_ref, "REJECTED"))

    # The live 100 kW limit is still in force, in the envelope service and as the legacy schedule.
    assert (await _envelopes(services, depot))[live_ref] == "ACTIVE"
    assert await _tou_periods(services, depot) == [LIVE_WATTS]

    # 4. A valid replacement takes over: the old envelope is withdrawn in the same transaction.
    tighter = await adapter.post(url, json=_schedule(80_000, start), headers=WRITE)
    assert tighter.status_code == 202, tighter.text
    new_ref = tighter.json()["source_ref"]
    assert await eventually(lambda: _status_is(services, depot, live_ref, "WITHDRAWN"))
    assert (await _envelopes(services, depot))[new_ref] == "ACTIVE"
    assert await eventually(lambda: _periods_are(services, depot, [80_000]))


def _replacement_payload(depot: Depot, *, node_id: uuid.UUID, supersedes: list[str], start: datetime) -> Any:
    from contracts.commands import SubmitOperatingEnvelopePayload

    end = start + timedelta(hours=4)
    return SubmitOperatingEnvelopePayload(
        microgrid_id=depot.microgrid_id,
        node_id=node_id,
        envelope_type=EnvelopeType.TOU_LIMIT,
        constraint_type=ConstraintType.CONSUMPTION_CAP,
        effective_from=start,
        effective_to=end,
        source_ref=f"stray-{uuid.uuid4()}",
        blocks=[EnvelopeBlockRecord(block_from=start, block_to=end, max_limit_watts=1_000_000)],
        supersedes_source_refs=supersedes,
    )


async def _status_is(services: Services, depot: Depot, source_ref: str, status: str) -> bool:
    return (await _envelopes(services, depot)).get(source_ref) == status


async def _periods_are(services: Services, depot: Depot, watts: list[int]) -> bool:
    return await _tou_periods(services, depot) == watts
