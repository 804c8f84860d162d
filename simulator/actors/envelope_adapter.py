"""External envelope adapters (OSCP-like): forecasts with blocks, fallback forecasts, withdrawals.

They speak only the protocol-agnostic write port: the `microgrid.submit_operating_envelope` and
`microgrid.withdraw_operating_envelope` command topics, targeted by microgrid_id + node_id. A source
going silent is played by its health reports (see `operator.status_event`) and by sending nothing.
"""

from __future__ import annotations

from contracts.commands import (
    SubmitOperatingEnvelope,
    SubmitOperatingEnvelopePayload,
    WithdrawOperatingEnvelope,
    WithdrawOperatingEnvelopePayload,
)
from contracts.enums import EnvelopeType
from contracts.records import EnvelopeBlockRecord
from simulator.actors.messages import new_message
from simulator.clock import ScenarioClock
from simulator.depot_state import DepotState
from simulator.scenario import EnvelopeAction
from simulator.wire import Publication

PRODUCER = "simulator.envelope-adapter"


def source_ref(state: DepotState, name: str) -> str:
    return state.ids.key("envelope", name)


def origin_of(state: DepotState, action: EnvelopeAction) -> str | None:
    """The forecast source the envelope comes from: named, else the node's own for forecast types."""
    if action.no_origin:
        return None
    if action.origin is not None:
        return action.origin
    if action.type in (EnvelopeType.FORECAST, EnvelopeType.FALLBACK):
        for source in state.layout.forecast_sources():
            if source.node == action.node:
                return source.name
    return None


def submit(state: DepotState, clock: ScenarioClock, action: EnvelopeAction, *, correlation_id: str) -> Publication:
    base = clock.offset_s
    blocks = [
        EnvelopeBlockRecord(block_from=clock.at(base + b.from_s), block_to=clock.at(base + b.to_s),
                            target_watts=b.watts, max_limit_watts=b.max_watts, min_limit_watts=b.min_watts)
        for b in action.blocks
    ]
    start = action.effective_from if action.effective_from is not None else min(b.from_s for b in action.blocks)
    end = action.effective_to if action.effective_to is not None else max(b.to_s for b in action.blocks)
    origin = origin_of(state, action)
    assert state.microgrid_id is not None and action.node is not None
    payload = SubmitOperatingEnvelopePayload(
        microgrid_id=state.microgrid_id, node_id=state.node_id(action.node),
        origin_control_point_id=state.control_point_id(origin) if origin else None,
        envelope_type=action.type, constraint_type=action.constraint_type,
        effective_from=clock.at(base + start), effective_to=clock.at(base + end),
        source_ref=source_ref(state, action.name), blocks=blocks, submitted_by=PRODUCER,
    )
    return Publication(new_message(SubmitOperatingEnvelope, payload, producer=PRODUCER, ids=state.ids, clock=clock,
                                   correlation_id=correlation_id))


def withdraw(state: DepotState, clock: ScenarioClock, name: str, *, correlation_id: str) -> Publication:
    assert state.microgrid_id is not None
    payload = WithdrawOperatingEnvelopePayload(microgrid_id=state.microgrid_id, source_ref=source_ref(state, name),
                                               withdrawn_by=PRODUCER)
    return Publication(new_message(WithdrawOperatingEnvelope, payload, producer=PRODUCER, ids=state.ids, clock=clock,
                                   correlation_id=correlation_id))
