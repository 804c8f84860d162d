"""Effective feeder-circuit capacity as the legacy side sees it: each projection change updates the
circuit-facing value and requests one legacy rebalance (through the one translate path); a
reconciliation by a cycle's guard updates the value and never requests another.
"""

from __future__ import annotations

from datetime import datetime

from contracts.enums import AliasPath, ProjectionTrigger, RebalanceSource
from contracts.events import EffectiveCircuitCapacityChanged, EffectiveCircuitCapacityReconciled
from libs.platform.messaging.unit_of_work import UnitOfWork
from services.compatibility_adapter.adapters import circuit_capacity
from services.compatibility_adapter.translation import PRODUCER, AliasedRequest, apply_alias
from services.compatibility_adapter.translation_keys import capacity_change_request_key


async def apply_capacity_changed(*, uow: UnitOfWork, message: EffectiveCircuitCapacityChanged, now: datetime) -> None:
    """Update the circuit-facing value; request one legacy rebalance per change of the projection.

    A cycle's guard may have reconciled the same new value first (a rebalance right at a block
    boundary): the projection's change still requests its rebalance, so how many cycles run does not
    depend on which of the two events arrived first (NFR-007). Only a projection no newer than one
    already applied (replayed, or late) changes nothing.
    """
    change = message.payload
    held = await circuit_capacity.current(uow.conn, change.circuit_id, lock=True)
    if held is not None and held.projected_at is not None and held.projected_at >= change.evaluated_at:
        return  # an older evaluation arriving late changes nothing
    if held is None or held.evaluated_at <= change.evaluated_at:
        await circuit_capacity.save(uow.conn, change, message.event_id, projected=True)
    else:  # a reconciliation newer than this projection holds the value already
        await circuit_capacity.mark_projected(uow.conn, change.circuit_id, change.evaluated_at)
    reference = (
        held.effective_capacity_watts
        if held is not None and held.projection_trigger != ProjectionTrigger.REBALANCE_GUARD.value
        else change.previous_capacity_watts
    )
    if reference == change.effective_capacity_watts:
        return
    request = AliasedRequest(
        circuit_id=change.circuit_id,
        microgrid_id=change.microgrid_id,
        node_id=change.node_id,
        request_key=capacity_change_request_key(message.event_id),
        correlation_id=message.correlation_id,
    )
    await apply_alias(
        uow,
        request=request,
        path=AliasPath.CAPACITY_CHANGE,
        legacy_ref=str(message.event_id),
        source=RebalanceSource.ENVELOPE_CHANGE,
        requested_by=PRODUCER,
        now=now,
        causation=message,
    )


async def apply_capacity_reconciled(*, uow: UnitOfWork, message: EffectiveCircuitCapacityReconciled) -> None:
    """The rebalance-time guard corrected the value: update it, never request another rebalance."""
    held = await circuit_capacity.current(uow.conn, message.payload.circuit_id, lock=True)
    if held is None or held.evaluated_at <= message.payload.evaluated_at:
        await circuit_capacity.save(uow.conn, message.payload, message.event_id, projected=False)
