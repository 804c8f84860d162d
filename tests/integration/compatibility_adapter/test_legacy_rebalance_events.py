"""Legacy events and periodic jobs -> exactly one microgrid cycle request, idempotently (FR-015, FR-016)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from contracts.enums import AliasPath, ReasonCode, RebalanceSource
from contracts.events import (
    CircuitAliasApplied,
    CircuitAliasFailed,
    LegacyRebalanceRequested,
    LegacyRebalanceRequestedPayload,
    RebalanceRequested,
    ScheduledRebalancePeriodic,
    ScheduledRebalancePeriodicPayload,
    SchedulerDispatchFailed,
)
from tests.integration.compatibility_adapter.conftest import Adapter, known_site
from tests.support import TopicReader, eventually

pytestmark = pytest.mark.integration


def legacy_request(circuit_id: uuid.UUID) -> LegacyRebalanceRequested:
    return LegacyRebalanceRequested.create(
        LegacyRebalanceRequestedPayload(circuit_id=circuit_id, requested_by="legacy-lb"),
        producer="legacy-load-balancer",
        occurred_at=datetime.now(UTC),
    )


def for_circuit(circuit_id: uuid.UUID, model):  # noqa: ANN001, ANN201
    def select(records: list) -> list:
        found = [model.model_validate_json(r.value) for r in records]
        return [m for m in found if m.payload.circuit_id == circuit_id]

    return select


@pytest.mark.req("FR-008", "FR-015", "NFR-005")
async def test_known_circuit_yields_one_rebalance_and_one_alias_event_and_a_replay_yields_none(
    adapter: Adapter,
) -> None:
    site = await known_site(adapter)
    legacy = legacy_request(site.circuit_id)
    await adapter.send(legacy)

    async with TopicReader(
        adapter.settings, "microgrid.rebalance_requested", "compatibility.circuit_alias_applied"
    ) as r:
        rebalances = for_circuit(site.circuit_id, RebalanceRequested)
        aliases = for_circuit(site.circuit_id, CircuitAliasApplied)
        await r.wait_for(
            lambda rs: (
                rebalances(_on(rs, adapter, "microgrid.rebalance_requested"))
                and aliases(_on(rs, adapter, "compatibility.circuit_alias_applied"))
            )
        )

        # Replay the very same event, then a second legacy event on the same partition (keyed by circuit)
        # as a barrier: once the second is translated, the replay has been consumed before it.
        await adapter.send(legacy)
        barrier = legacy_request(site.circuit_id)
        await adapter.send(barrier)
        await r.wait_for(lambda rs: len(rebalances(_on(rs, adapter, "microgrid.rebalance_requested"))) >= 2)
        await eventually(adapter.outbox_drained)
        await r.poll()

    [first, second] = rebalances(_on(r.records, adapter, "microgrid.rebalance_requested"))
    [alias, _] = aliases(_on(r.records, adapter, "compatibility.circuit_alias_applied"))
    p = first.payload
    assert (p.microgrid_id, p.node_id, p.source) == (site.microgrid_id, site.node_id, RebalanceSource.LEGACY_ALIAS)
    assert first.correlation_id == p.correlation_id == legacy.correlation_id
    assert p.request_key == f"legacy-event:{legacy.event_id}"
    assert first.causation_id == str(legacy.event_id)
    assert second.payload.request_key == f"legacy-event:{barrier.event_id}"
    assert (alias.payload.microgrid_id, alias.payload.node_id, alias.payload.path) == (
        site.microgrid_id,
        site.node_id,
        AliasPath.LEGACY_EVENT,
    )
    assert alias.payload.legacy_ref == str(legacy.event_id)
    assert alias.payload.rebalance_request_key == p.request_key
    audit = await adapter.service.ctx.pool.fetch(
        "SELECT result, microgrid_id, node_id FROM translation_audit WHERE legacy_ref = $1", str(legacy.event_id)
    )
    assert [tuple(a) for a in audit] == [("APPLIED", site.microgrid_id, site.node_id)]


@pytest.mark.req("FR-016", "NFR-006")
async def test_unknown_circuit_yields_the_failure_event_and_no_rebalance(adapter: Adapter) -> None:
    unknown = uuid.uuid4()
    legacy = legacy_request(unknown)
    await adapter.send(legacy)
    async with TopicReader(adapter.settings, "compatibility.circuit_alias_failed") as r:
        failures = for_circuit(unknown, CircuitAliasFailed)
        [failure] = failures(await r.wait_for(lambda rs: failures(rs)))
    assert failure.payload.reason_code == ReasonCode.CIRCUIT_ALIAS_NOT_RESOLVABLE
    assert (failure.payload.path, failure.payload.legacy_ref) == (AliasPath.LEGACY_EVENT, str(legacy.event_id))
    assert failure.correlation_id == legacy.correlation_id
    # The failure and any rebalance would come from the same transaction: it is committed, so look at
    # everything the adapter ever published.
    assert not [m for m in await adapter.outbox("microgrid.rebalance_requested") if m.payload.circuit_id == unknown]
    row = await adapter.service.ctx.pool.fetchrow(
        "SELECT result, reason_code, circuit_id, path FROM translation_audit WHERE legacy_ref = $1",
        str(legacy.event_id),
    )
    assert tuple(row) == ("FAILED", "CIRCUIT_ALIAS_NOT_RESOLVABLE", unknown, "LEGACY_EVENT")


def periodic(
    *, circuit_id: uuid.UUID | None = None, microgrid_id: uuid.UUID | None = None, ref: str = "every-5-min"
) -> ScheduledRebalancePeriodic:
    payload = ScheduledRebalancePeriodicPayload(
        circuit_id=circuit_id,
        microgrid_id=microgrid_id,
        schedule_ref=ref,
        scheduled_for=datetime(2025, 6, 1, 12, 5, tzinfo=UTC),
    )
    return ScheduledRebalancePeriodic.create(payload, producer="scheduler", occurred_at=datetime.now(UTC))


@pytest.mark.req("FR-008", "FR-015", "FR-016", "NFR-005")
async def test_periodic_jobs_resolve_at_dispatch_skip_on_failure_and_pass_microgrid_keyed_through(
    adapter: Adapter,
) -> None:
    site = await known_site(adapter)
    unknown = uuid.uuid4()
    by_circuit = periodic(circuit_id=site.circuit_id)
    # A second scheduler replica firing the same occurrence must not give a second cycle.
    same_slot = periodic(circuit_id=site.circuit_id)
    by_microgrid = periodic(microgrid_id=site.microgrid_id, ref="mg-job")
    failing = periodic(circuit_id=unknown)
    for job in (by_circuit, same_slot, by_microgrid, failing):
        await adapter.send(job)

    async with TopicReader(
        adapter.settings, "microgrid.rebalance_requested", "compatibility.scheduler_dispatch_failed"
    ) as r:

        def requests(rs: list) -> list[RebalanceRequested]:
            msgs = [
                RebalanceRequested.model_validate_json(x.value)
                for x in _on(rs, adapter, "microgrid.rebalance_requested")
            ]
            return [m for m in msgs if m.payload.microgrid_id == site.microgrid_id]

        def skipped(rs: list) -> list[SchedulerDispatchFailed]:
            msgs = [
                SchedulerDispatchFailed.model_validate_json(x.value)
                for x in _on(rs, adapter, "compatibility.scheduler_dispatch_failed")
            ]
            return [m for m in msgs if m.payload.circuit_id == unknown]

        await r.wait_for(lambda rs: len(requests(rs)) >= 2 and skipped(rs))
        await eventually(lambda: _consumed(adapter, by_circuit, same_slot, by_microgrid, failing))
        await eventually(adapter.outbox_drained)
        await r.poll()

    aliased = [m for m in requests(r.records) if m.payload.circuit_id == site.circuit_id]
    passed = [m for m in requests(r.records) if m.payload.circuit_id is None]
    assert len(aliased) == 1 and len(passed) == 1
    assert (aliased[0].payload.node_id, aliased[0].payload.source) == (site.node_id, RebalanceSource.SCHEDULER)
    assert aliased[0].correlation_id == by_circuit.correlation_id
    assert (passed[0].payload.node_id, passed[0].payload.source) == (None, RebalanceSource.SCHEDULER)
    [failure] = skipped(r.records)
    assert failure.payload.reason_code == ReasonCode.CIRCUIT_ALIAS_NOT_RESOLVABLE
    assert (failure.payload.schedule_ref, failure.payload.action_taken) == ("every-5-min", "CYCLE_SKIPPED")
    assert not [m for m in await adapter.outbox("microgrid.rebalance_requested") if m.payload.circuit_id == unknown]


def _on(records: list, adapter: Adapter, topic: str) -> list:
    return [r for r in records if r.topic == adapter.settings.topic(topic)]


async def _consumed(adapter: Adapter, *messages) -> bool:  # noqa: ANN002
    ids = [str(m.event_id) for m in messages]
    done = await adapter.service.ctx.pool.fetchval("SELECT count(*) FROM inbox WHERE event_id = ANY($1::text[])", ids)
    return done == len(ids)
