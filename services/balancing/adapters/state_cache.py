"""Balancing's read models of a microgrid, kept in memory between cycles and reloaded only when stale.

Postgres stays the source of truth: every read-model write stamps the part of the microgrid it
changed (`read_models.stamp`, one sequence for all), and a cycle first reads the current stamps in
its transaction (`CyclePreflight`). A part whose stamp still matches is used from memory, together
with the domain values already derived from it; any other part is read again, in one round trip.
A restart, another replica's write or a rolled-back transaction can only make a stamp differ,
never make stale data look current, so the cache needs no invalidation messages.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from services.balancing.adapters import read_models
from services.balancing.adapters.read_models import MicrogridState, StaticPart, TelemetryPart
from services.balancing.cycle_inputs import (
    StaticCycleInputs,
    TelemetryCycleInputs,
    static_cycle_inputs,
    telemetry_cycle_inputs,
)


@dataclass(frozen=True)
class CyclePreflight:
    """What a cycle checks first, read in one round trip after it holds the microgrid's lock."""

    topology_version: int | None
    static_stamp: int | None
    telemetry_stamp: int | None
    cycle_done: bool  # a cycle already exists for the request key
    last_rotation: int | None


async def preflight(conn: asyncpg.Connection, microgrid_id: UUID, request_key: str) -> CyclePreflight:
    row = await conn.fetchrow(
        "SELECT (SELECT version FROM microgrids WHERE microgrid_id = $1) AS version,"
        " s.static_stamp, s.telemetry_stamp,"
        " EXISTS (SELECT 1 FROM cycles WHERE request_key = $2) AS done,"
        " (SELECT rotation FROM cycles WHERE microgrid_id = $1 ORDER BY seq DESC LIMIT 1) AS last_rotation"
        " FROM (SELECT 1) AS one LEFT JOIN microgrid_stamps s ON s.microgrid_id = $1",
        microgrid_id,
        request_key,
    )
    assert row is not None
    return CyclePreflight(
        topology_version=row["version"],
        static_stamp=row["static_stamp"],
        telemetry_stamp=row["telemetry_stamp"],
        cycle_done=row["done"],
        last_rotation=row["last_rotation"],
    )


@dataclass(frozen=True)
class CachedStatic:
    part: StaticPart
    inputs: StaticCycleInputs


@dataclass(frozen=True)
class CachedTelemetry:
    part: TelemetryPart
    inputs: TelemetryCycleInputs


@dataclass(frozen=True)
class CycleState:
    """One microgrid's read models and the domain values derived from them, as of the preflight's stamps."""

    static: CachedStatic
    telemetry: CachedTelemetry

    @property
    def records(self) -> MicrogridState:
        return read_models.combine(self.static.part, self.telemetry.part)


class MicrogridStateCache:
    """Most recently balanced microgrids first; bounded, so a fleet's memory use is bounded too."""

    def __init__(self, max_microgrids: int = 2000) -> None:
        self._max = max_microgrids
        self._static: OrderedDict[UUID, CachedStatic] = OrderedDict()
        self._telemetry: OrderedDict[UUID, CachedTelemetry] = OrderedDict()
        self.hits = 0
        self.loads = 0

    async def state(self, conn: asyncpg.Connection, microgrid_id: UUID, stamps: CyclePreflight) -> CycleState:
        static = self._static.get(microgrid_id)
        if static is None or stamps.static_stamp is None or static.part.stamp != stamps.static_stamp:
            part = await read_models.load_static_part(conn, microgrid_id)
            static = CachedStatic(part, static_cycle_inputs(part))
            self.loads += 1
        else:
            self.hits += 1
        telemetry = self._telemetry.get(microgrid_id)
        if telemetry is None or stamps.telemetry_stamp is None or telemetry.part.stamp != stamps.telemetry_stamp:
            tpart = await read_models.load_telemetry_part(conn, microgrid_id)
            telemetry = CachedTelemetry(tpart, telemetry_cycle_inputs(tpart))
            self.loads += 1
        else:
            self.hits += 1
        self._keep(self._static, microgrid_id, static)
        self._keep(self._telemetry, microgrid_id, telemetry)
        return CycleState(static, telemetry)

    def _keep(self, table: OrderedDict, microgrid_id: UUID, entry: object) -> None:
        table[microgrid_id] = entry
        table.move_to_end(microgrid_id)
        while len(table) > self._max:
            table.popitem(last=False)
