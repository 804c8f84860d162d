"""Telemetry sources: the meters of every node and the chargers' demand, with degradation patterns.

A meter reads the power through its node: a connector its charger's draw, any other node the sum of
the connectors below it, a power source its generation. Patterns (per node):

- healthy: the true value, observed now;
- noisy: the true value with gaussian noise (`noise` is the relative standard deviation);
- stale: the true value, but observed `stale_age_s` ago (older than any freshness threshold);
- missing: no reading at all;
- dropout: missing with probability `dropout_rate`, else healthy;
- invalid: a reading flagged `valid: false` by the meter.

Chargers report their demand every tick, a free connector included (it asks for nothing).

Each node draws the same random numbers every tick whatever its pattern, so changing one node's
pattern never shifts another node's noise: scenarios stay comparable.
"""

from __future__ import annotations

import random
from datetime import timedelta

from contracts.enums import NodeType
from contracts.events import TelemetryReported, TelemetryReportedPayload
from contracts.records import ConnectorDemandRecord, TelemetryReadingRecord
from simulator.actors.chargers import Chargers
from simulator.actors.messages import new_message
from simulator.clock import ScenarioClock
from simulator.depot import PlacedNode
from simulator.depot_state import DepotState
from simulator.scenario import TelemetryAction, TelemetryPattern
from simulator.wire import Publication

PRODUCER = "simulator.telemetry"


def true_value(state: DepotState, chargers: Chargers, placed: PlacedNode) -> int:
    if placed.node.type is NodeType.CONNECTOR:
        return chargers.draw(placed.node.name)
    return sum(chargers.draw(p.node.name) for p in state.layout.subtree(placed.node.name)
               if p.node.type is NodeType.CONNECTOR)


def pattern_for(action: TelemetryAction, node: str) -> TelemetryPattern:
    if node in action.per_node:
        return action.per_node[node]
    if action.nodes is None or node in action.nodes:
        return action.pattern
    return action.others


def tick(state: DepotState, chargers: Chargers, clock: ScenarioClock, rng: random.Random, action: TelemetryAction,
         *, correlation_id: str, generation_factor: float = 1.0) -> Publication:
    now = clock.now()
    readings: list[TelemetryReadingRecord] = []
    for placed in state.layout.nodes():
        node = placed.node
        noise, drop = rng.gauss(0.0, 1.0), rng.random()
        if not node.metered or node.type is NodeType.VIRTUAL or node.name not in state.node_ids:
            continue
        pattern = pattern_for(action, node.name)
        if pattern == "missing" or (pattern == "dropout" and drop < action.dropout_rate):
            continue
        if node.type is NodeType.POWER_SOURCE:
            demand, generation = None, round((node.generation_watts or 0) * generation_factor)
        else:
            demand, generation = true_value(state, chargers, placed), None
        if pattern == "noisy":
            demand = None if demand is None else max(0, round(demand * (1 + action.noise * noise)))
            generation = None if generation is None else max(0, round(generation * (1 + action.noise * noise)))
        observed = now - timedelta(seconds=action.stale_age_s) if pattern == "stale" else now
        readings.append(TelemetryReadingRecord(
            node_id=state.node_id(node.name), measured_demand_watts=demand, measured_generation_watts=generation,
            observed_at=observed, valid=pattern != "invalid",
        ))
    # Every charger reports every tick: a free connector asks for nothing (so no old request lingers).
    demands = []
    for placed in state.layout.connectors():
        session = chargers.sessions.get(placed.node.name)
        demands.append(ConnectorDemandRecord(
            node_id=state.node_id(placed.node.name), requested_watts=session.requested_watts if session else 0,
            min_watts=session.min_watts if session else 0, session_ref=session.session_ref if session else None,
            observed_at=now,
        ))
    assert state.microgrid_id is not None
    payload = TelemetryReportedPayload(microgrid_id=state.microgrid_id, readings=readings, demands=demands)
    return Publication(new_message(TelemetryReported, payload, producer=PRODUCER, ids=state.ids, clock=clock,
                                   correlation_id=correlation_id))
