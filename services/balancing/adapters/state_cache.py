"""Balancing's read models of a microgrid, kept in memory between cycles and reloaded only when stale.

Postgres stays the source of truth: every read-model write stamps the part of the microgrid it
changed (`read_models.stamp`, one sequence for all), and a cycle first reads the current stamps in
its transaction (`CyclePreflight`). A part whose stamp still matches is used from memory, together
with the domain values already derived from it; any other part is read again, in one round trip.
A telemetry report this process wrote brings its part forward in memory once it commits
(`telemetry_saved`): the records it upserted applied by the upsert's rule under the new stamp, but only
onto the part at the stamp the write replaced.
A restart, another replica's write or a rolled-back transaction can only make a stamp differ,
never make stale data look current, so the cache needs no invalidation messages.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from libs.domain import CycleInputs
from libs.domain.codec import encode_inputs_field
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
class EncodedField:
    """One cycle-inputs field as canonical JSON text, and the digest it is stored under (cycle_input_parts)."""

    text: str
    digest: str


def _encoded(values: object, names: tuple[str, ...]) -> dict[str, EncodedField]:
    out = {}
    for name in names:
        value = getattr(values, name)
        if value is None:
            continue
        text = encode_inputs_field(CycleInputs, name, value)
        out[name] = EncodedField(text, hashlib.sha256(text.encode()).hexdigest())
    return out


_STATIC_FIELDS = (
    "microgrid", "nodes", "node_limits", "envelopes", "forecast_sources", "circuit_capacities", "aggregate_caps",
    "fallback_rules",
)
_TELEMETRY_FIELDS = ("telemetry", "connector_demands")


@dataclass(frozen=True)
class CachedStatic:
    part: StaticPart
    inputs: StaticCycleInputs
    # The inputs' text of these fields: encoded once per stamp, not once per cycle.
    encoded: dict[str, EncodedField]


@dataclass(frozen=True)
class CachedTelemetry:
    part: TelemetryPart
    inputs: TelemetryCycleInputs
    encoded: dict[str, EncodedField]

    @classmethod
    def of(cls, part: TelemetryPart) -> CachedTelemetry:
        """The part with the cycle inputs derived from it and their canonical text."""
        inputs = telemetry_cycle_inputs(part)
        return cls(part, inputs, _encoded(inputs, _TELEMETRY_FIELDS))


@dataclass(frozen=True)
class CycleState:
    """One microgrid's read models and the domain values derived from them, as of the preflight's stamps."""

    static: CachedStatic
    telemetry: CachedTelemetry

    @property
    def encoded(self) -> dict[str, EncodedField]:
        return {**self.static.encoded, **self.telemetry.encoded}

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
        # Digests of input parts known to be committed in cycle_input_parts (content-addressed, never
        # rewritten): a cycle inserts only the parts not in here. Bounded; forgetting only costs a no-op insert.
        self.stored_parts: OrderedDict[str, None] = OrderedDict()

    def parts_to_store(self, digests: set[str]) -> set[str]:
        return {d for d in digests if d not in self.stored_parts}

    def mark_stored(self, digests: set[str]) -> None:
        for digest in digests:
            self.stored_parts[digest] = None
            self.stored_parts.move_to_end(digest)
        while len(self.stored_parts) > 8 * self._max:
            self.stored_parts.popitem(last=False)

    async def state(self, conn: asyncpg.Connection, microgrid_id: UUID, stamps: CyclePreflight) -> CycleState:
        static = self._static.get(microgrid_id)
        if static is None or stamps.static_stamp is None or static.part.stamp != stamps.static_stamp:
            part = await read_models.load_static_part(conn, microgrid_id)
            static_inputs = static_cycle_inputs(part)
            static = CachedStatic(part, static_inputs, _encoded(static_inputs, _STATIC_FIELDS))
            self.loads += 1
        else:
            self.hits += 1
        telemetry = self._telemetry.get(microgrid_id)
        if telemetry is None or stamps.telemetry_stamp is None or telemetry.part.stamp != stamps.telemetry_stamp:
            telemetry = CachedTelemetry.of(await read_models.load_telemetry_part(conn, microgrid_id))
            self.loads += 1
        else:
            self.hits += 1
        self._keep(self._static, microgrid_id, static)
        self._keep(self._telemetry, microgrid_id, telemetry)
        return CycleState(static, telemetry)

    def telemetry_saved(self, microgrid_id: UUID, saved: read_models.TelemetrySaved) -> None:
        """After a telemetry write committed: the cached part brought up to date in memory, when it is the
        state the write was made on (else the next cycle finds the stamp moved and reads the part again).

        A report every few seconds per depot was a read of every reading and demand back from the tables
        and their validation into records, ~5 % of balancing's CPU in a fleet run (issue 13)."""
        entry = self._telemetry.get(microgrid_id)
        if entry is None:
            return
        part = read_models.telemetry_after(entry.part, saved)
        if part is not None:
            self._telemetry[microgrid_id] = CachedTelemetry.of(part)

    def _keep(self, table: OrderedDict, microgrid_id: UUID, entry: object) -> None:
        table[microgrid_id] = entry
        table.move_to_end(microgrid_id)
        while len(table) > self._max:
            table.popitem(last=False)
