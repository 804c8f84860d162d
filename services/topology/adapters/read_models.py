"""SQL for the read models this service keeps of other contexts, fed only by their events.

Each row remembers the instant of the event that wrote it (`as_of`) and is only overwritten by a
newer or equally recent one, so a redelivered older event cannot roll a view back.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from contracts.enums import EnvelopeStatus
from contracts.events import EffectiveCircuitCapacityPayload, LegacyCircuitUpdatedPayload
from contracts.records import LegacyCircuitRecord, OperatingEnvelopeRecord

# ---- legacy circuits (resync input) ------------------------------------------------------------


async def save_legacy_circuit(conn: asyncpg.Connection, circuit: LegacyCircuitUpdatedPayload, as_of: datetime) -> None:
    await conn.execute(
        "INSERT INTO legacy_circuit (circuit_id, depot_id, parent_circuit_id, name, default_capacity_watts,"
        " fail_safe_capacity_watts, removed, as_of) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (circuit_id) DO UPDATE SET depot_id = EXCLUDED.depot_id,"
        " parent_circuit_id = EXCLUDED.parent_circuit_id, name = EXCLUDED.name,"
        " default_capacity_watts = EXCLUDED.default_capacity_watts,"
        " fail_safe_capacity_watts = EXCLUDED.fail_safe_capacity_watts, removed = EXCLUDED.removed,"
        " as_of = EXCLUDED.as_of WHERE legacy_circuit.as_of <= EXCLUDED.as_of",
        circuit.circuit_id,
        circuit.depot_id,
        circuit.parent_circuit_id,
        circuit.name,
        circuit.default_capacity_watts,
        circuit.fail_safe_capacity_watts,
        circuit.removed,
        as_of,
    )


async def top_level_feeder_circuits(conn: asyncpg.Connection, depot_id: UUID) -> list[LegacyCircuitRecord]:
    """The depot's feeder circuits: no parent circuit and not removed, in circuit_id order."""
    rows = await conn.fetch(
        "SELECT circuit_id, depot_id, parent_circuit_id, name, default_capacity_watts, fail_safe_capacity_watts,"
        " removed FROM legacy_circuit WHERE depot_id = $1 AND parent_circuit_id IS NULL AND NOT removed"
        " ORDER BY circuit_id",
        depot_id,
    )
    return [LegacyCircuitRecord(**dict(r)) for r in rows]


async def depot_has_circuits(conn: asyncpg.Connection, depot_id: UUID) -> bool:
    """Whether any legacy circuit record (removed or not) names this depot."""
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM legacy_circuit WHERE depot_id = $1)", depot_id))


# ---- operating envelopes -----------------------------------------------------------------------


async def save_envelope(conn: asyncpg.Connection, envelope: OperatingEnvelopeRecord, as_of: datetime) -> None:
    await conn.execute(
        "INSERT INTO envelope_view (envelope_id, microgrid_id, node_id, status, record, as_of)"
        " VALUES ($1, $2, $3, $4, $5::jsonb, $6)"
        " ON CONFLICT (envelope_id) DO UPDATE SET status = EXCLUDED.status, record = EXCLUDED.record,"
        " node_id = EXCLUDED.node_id, as_of = EXCLUDED.as_of WHERE envelope_view.as_of <= EXCLUDED.as_of",
        envelope.envelope_id,
        envelope.microgrid_id,
        envelope.node_id,
        envelope.status.value,
        envelope.model_dump_json(),
        as_of,
    )


async def active_envelopes(conn: asyncpg.Connection, microgrid_id: UUID) -> list[OperatingEnvelopeRecord]:
    rows = await conn.fetch(
        "SELECT record FROM envelope_view WHERE microgrid_id = $1 AND status = $2 ORDER BY node_id, envelope_id",
        microgrid_id,
        EnvelopeStatus.ACTIVE.value,
    )
    return [OperatingEnvelopeRecord.model_validate_json(r["record"]) for r in rows]


# ---- effective feeder-circuit capacity ---------------------------------------------------------


async def save_effective_capacity(conn: asyncpg.Connection, capacity: EffectiveCircuitCapacityPayload) -> None:
    await conn.execute(
        "INSERT INTO effective_circuit_capacity_view (microgrid_id, circuit_id, node_id, record, as_of)"
        " VALUES ($1, $2, $3, $4::jsonb, $5)"
        " ON CONFLICT (microgrid_id, circuit_id) DO UPDATE SET node_id = EXCLUDED.node_id,"
        " record = EXCLUDED.record, as_of = EXCLUDED.as_of"
        " WHERE effective_circuit_capacity_view.as_of <= EXCLUDED.as_of",
        capacity.microgrid_id,
        capacity.circuit_id,
        capacity.node_id,
        capacity.model_dump_json(),
        capacity.evaluated_at,
    )


async def effective_capacities(conn: asyncpg.Connection, microgrid_id: UUID) -> list[EffectiveCircuitCapacityPayload]:
    rows = await conn.fetch(
        "SELECT record FROM effective_circuit_capacity_view WHERE microgrid_id = $1 ORDER BY circuit_id",
        microgrid_id,
    )
    return [EffectiveCircuitCapacityPayload.model_validate_json(r["record"]) for r in rows]
