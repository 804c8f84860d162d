"""The fleet's depots, seeded the way the simulator seeds one: the same layout model, the same actors.

Each depot is a `setup` step of a one-step scenario played by `simulator.runner.ScenarioRun` against
the live services: legacy circuit records on Kafka, resync and the tree through the topology
service's HTTP door, node limits, the load-balancing control point, every connector plugged in and one
healthy telemetry tick. No second seeding path: what the system tests exercise is what gets seeded.
The demand a depot then reports all run long is one of `DEMANDS` (`with_demand`).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contracts.events import TelemetryReported
from simulator.actors import legacy, telemetry
from simulator.actors.chargers import Chargers
from simulator.actors.messages import new_message
from simulator.clock import ScenarioClock, wall_anchor
from simulator.depot import DepotLayout
from simulator.depot_state import DepotState
from simulator.runner import RunResult, ScenarioRun
from simulator.scenario import Scenario, TelemetryAction
from simulator.transport import LiveTransport, SimulatorSettings
from simulator.wire import Publication

FEEDER = "Feeder"
TRIGGERS = ("legacy_event", "scheduler_circuit", "scheduler_microgrid")
TELEMETRY_PRODUCER = telemetry.PRODUCER
# What the depots' chargers ask for, all run long. "peak": every connector plugged in and asking its
# charge point's full 22 kW, two to a charge point, so every charge point, every bay and the feeder is
# over its cap: 112 breaches, and 112 breach events, a cycle. "mixed": a depot between peaks, 40 % of
# connectors free and the rest asking 11 kW (an 11 kW on-board charger), so the charge points hold, a bay
# now and then and the site do not: a few breaches a cycle. Both are CURTAILED cycles of the same tree.
DEMANDS = ("peak", "mixed")
MIXED_FREE_SHARE = 0.4
MIXED_REQUEST_WATTS = 11_000
# A loaded machine can outlast the simulator's 30 s barrier while seeding: one more try, then give up.
SEED_ATTEMPTS = 2


def fleet_layout(bays: int = 10, charge_points_per_bay: int = 10, connectors_per_charge_point: int = 2
                 ) -> DepotLayout:
    """One feeder circuit (so a circuit-keyed trigger rebalances the whole depot) -> bays -> charge points
    -> connectors: 1 + 10 + 100 + 200 = 311 nodes and 200 connectors by default, caps on every level."""
    bay_cap = 22_000 * charge_points_per_bay * 2 // 3  # a bay cannot feed all its chargers at full power
    tree = [{
        "name": FEEDER, "type": "GRID_CONNECTION", "circuit": FEEDER, "limit_watts": 600_000,
        "fallback_demand_watts": 300_000,
        "children": [
            {"name": f"Bay {b}", "type": "CIRCUIT", "limit_watts": bay_cap, "children": [
                {"name": f"B{b}-CP{c}", "type": "CHARGE_POINT", "limit_watts": 22_000,
                 "connectors": connectors_per_charge_point, "max_watts": 22_000, "min_watts": 1_380}
                for c in range(1, charge_points_per_bay + 1)]}
            for b in range(1, bays + 1)],
    }]
    return DepotLayout.model_validate({
        "name": "fleet-depot",
        "description": "A fleet benchmark depot: one feeder, bays of AC charge points.",
        "aggregate_cap_watts": 550_000,
        "circuits": [{"name": FEEDER, "default_capacity_watts": 650_000, "fail_safe_capacity_watts": 250_000}],
        "tree": tree,
    })


FLEET_LAYOUT = fleet_layout()


class FleetDepotScenario(Scenario):
    """A one-step scenario (setup) on the fleet layout, which lives here rather than in the library."""

    def layout(self) -> DepotLayout:
        return FLEET_LAYOUT


def setup_scenario() -> FleetDepotScenario:
    return FleetDepotScenario.model_validate({
        "name": "fleet-depot", "title": "A fleet depot brought up for the fleet benchmark",
        "requirements": ["NFR-001"], "depot": "fleet-depot", "steps": [{"setup": {}}],
        "invariants": [],
    })


@dataclass
class FleetDepot:
    """One seeded depot: the simulator's state and clock for it, and what the trigger loop needs."""

    index: int
    run: ScenarioRun
    telemetry_template: TelemetryReported
    setup_notes: str = ""
    seeded_in_s: float = 0.0  # the whole fleet's seeding time, when this depot was seeded with it

    @property
    def state(self) -> DepotState:
        return self.run.state

    @property
    def microgrid_id(self) -> Any:
        return self.run.state.microgrid_id

    def _clock_now(self) -> ScenarioClock:
        clock = self.run.clock
        clock.advance_to((datetime.now(UTC) - clock.anchor).total_seconds())
        return clock

    def trigger(self, via: str, correlation_id: str, schedule_ref: str) -> Publication:
        """The periodic trigger as a legacy load balancer or the scheduler sends it (simulator actors)."""
        clock = self._clock_now()
        if via == "legacy_event":
            return legacy.rebalance_event(self.state, clock, FEEDER, correlation_id=correlation_id)
        return legacy.periodic(self.state, clock, circuit=FEEDER if via == "scheduler_circuit" else None,
                               schedule_ref=schedule_ref, correlation_id=correlation_id)

    def telemetry(self, correlation_id: str) -> Publication:
        """The setup tick's readings and demands, observed now (re-stamped: building a tick from the layout
        walks the tree once per node, too slow to repeat for a fleet every few seconds)."""
        clock = self._clock_now()
        now = clock.now()
        payload = self.telemetry_template.payload
        fresh = payload.model_copy(update={
            "readings": [r.model_copy(update={"observed_at": now}) for r in payload.readings],
            "demands": [d.model_copy(update={"observed_at": now}) for d in payload.demands],
        })
        return Publication(new_message(TelemetryReported, fresh, producer=TELEMETRY_PRODUCER, ids=self.state.ids,
                                       clock=clock, correlation_id=correlation_id))


def with_demand(chargers: Chargers, demand: str, rng: random.Random) -> None:
    """Set the seeded depot's sessions to `demand` (see DEMANDS); "peak" is what the setup plugged in."""
    if demand not in DEMANDS:
        raise ValueError(f"demand is one of {', '.join(DEMANDS)}")
    if demand == "peak":
        return
    for name, session in sorted(chargers.sessions.items()):
        if rng.random() < MIXED_FREE_SHARE:
            chargers.unplug(name)
        else:
            session.requested_watts = MIXED_REQUEST_WATTS
            session.min_watts = min(session.min_watts, MIXED_REQUEST_WATTS)


class SeedingFailed(RuntimeError):
    pass


async def seed_depot(index: int, transport: LiveTransport, anchor: datetime, seed: int, demand: str = "peak"
                     ) -> FleetDepot:
    run = ScenarioRun(setup_scenario(), transport, seed=seed + index, anchor=anchor)
    result: RunResult = await run.play()
    if not result.passed:
        problems = result.error or "; ".join(f"{title}: {f.check}: {f.observed}" for title, f in result.failures)
        raise SeedingFailed(f"depot {index}: setup failed: {problems}")
    assert run.state.microgrid_id is not None
    with_demand(run.chargers, demand, random.Random(f"demand-{seed + index}"))
    template = telemetry.tick(run.state, run.chargers, run.clock, random.Random(seed + index), TelemetryAction(),
                              correlation_id=f"fleet-seed-{index}").message
    assert isinstance(template, TelemetryReported)
    return FleetDepot(index, run, template, "; ".join(n for s in result.steps for n in s.notes))


async def seed_fleet(settings: SimulatorSettings, count: int, *, seed: int, workers: int,
                     on_done: Any = None, demand: str = "peak") -> list[FleetDepot]:
    """Seed `count` depots, `workers` at a time (each worker has its own transport: the simulator's
    observer is one consumer, not shared between concurrent runs)."""
    anchor = wall_anchor()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    depots: dict[int, FleetDepot] = {}

    async def worker() -> None:
        async with LiveTransport(settings) as transport:
            while not queue.empty():
                i = queue.get_nowait()
                for attempt in range(SEED_ATTEMPTS):
                    try:  # another seed: a fresh depot, the half-seeded one is left alone (never triggered)
                        depots[i] = await seed_depot(i, transport, anchor, seed + 100_000 * attempt, demand)
                        break
                    except SeedingFailed as exc:
                        if attempt + 1 == SEED_ATTEMPTS:
                            raise
                        print(f"  {exc}; seeding it again")
                if on_done is not None:
                    on_done(depots[i])

    await asyncio.gather(*(worker() for _ in range(max(1, min(workers, count)))))
    return [depots[i] for i in range(count)]
