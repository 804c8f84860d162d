"""The adapter's reads: whom a circuit route acts for, a circuit's effective capacity, the answer to a
legacy rebalance call, the translation counts. Reads never change state."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from contracts.api.compatibility_adapter import (
    CircuitEffectiveCapacityView,
    CircuitRebalanceResponse,
    TranslationSummary,
)
from contracts.enums import ReasonCode, order_reason_codes
from contracts.records import CycleResultRecord
from libs.domain.circuit_alias import AliasTarget, resolve_circuit_alias
from services.compatibility_adapter.adapters import alias_read_model, circuit_capacity, translation_audit
from services.compatibility_adapter.settings import CompatibilityAdapterContext
from services.compatibility_adapter.translation import AliasedRequest


async def circuit_owners(conn: asyncpg.Connection | asyncpg.Pool, circuit_id: UUID) -> tuple[UUID | None, list[UUID]]:
    """(depot_id from the legacy circuit record, microgrid_ids of every node carrying the circuit): whom a
    circuit route acts for, so the route can check the caller's grant before anything else."""
    legacy = await alias_read_model.legacy_circuit(conn, circuit_id)
    rows = await alias_read_model.rows_for_circuit(conn, circuit_id)
    return (legacy.depot_id if legacy else None), sorted({r.microgrid_id for r in rows}, key=str)


async def read_effective_capacity(
    *, ctx: CompatibilityAdapterContext, circuit_id: UUID, now: datetime
) -> CircuitEffectiveCapacityView | None:
    """The circuit-facing value, else the legacy default capacity; None when the circuit is unknown."""
    held = await circuit_capacity.current(ctx.pool, circuit_id)
    legacy = await alias_read_model.legacy_circuit(ctx.pool, circuit_id)
    if held is None and legacy is None:
        return None
    target = resolve_circuit_alias(circuit_id, await alias_read_model.rows_for_circuit(ctx.pool, circuit_id))
    view: dict[str, Any] = {"circuit_id": circuit_id, "timestamp": now}
    if isinstance(target, AliasTarget):
        view |= {"microgrid_id": target.microgrid_id, "node_id": target.node_id}
    if legacy is not None:
        view |= {
            "depot_id": legacy.depot_id,
            "parent_circuit_id": legacy.parent_circuit_id,
            "default_capacity_watts": legacy.default_capacity_watts,
            "fail_safe_capacity_watts": legacy.fail_safe_capacity_watts,
        }
    if held is not None:
        view |= {
            "microgrid_id": held.microgrid_id,
            "node_id": held.node_id,
            "effective_capacity_watts": held.effective_capacity_watts,
            "basis": held.basis,
            "projection_trigger": held.projection_trigger,
            "binding_envelope_id": held.binding_envelope_id,
            "evaluated_at": held.evaluated_at,
        }
    else:
        assert legacy is not None
        view |= {"effective_capacity_watts": legacy.default_capacity_watts, "basis": "LEGACY_DEFAULT"}
    return CircuitEffectiveCapacityView(**view)


def circuit_rebalance_response(
    request: AliasedRequest, cycle: CycleResultRecord | None, now: datetime
) -> CircuitRebalanceResponse:
    codes = [*cycle.reason_codes, ReasonCode.LEGACY_ALIAS_TRANSLATION_APPLIED] if cycle else []
    return CircuitRebalanceResponse(
        circuit_id=request.circuit_id,
        microgrid_id=request.microgrid_id,
        node_id=request.node_id,
        request_key=request.request_key,
        correlation_id=request.correlation_id,
        status="COMPLETED" if cycle else "PENDING",
        timestamp=now,
        reason_codes=order_reason_codes(codes),
        result=cycle,
    )


async def translation_summary(*, ctx: CompatibilityAdapterContext, now: datetime) -> TranslationSummary:
    return TranslationSummary(counts=await translation_audit.counts(ctx.pool), timestamp=now)
