"""The outside systems' steps: the legacy circuit registry, the envelope adapter and the legacy TOU route."""

from __future__ import annotations

from simulator.actors import envelope_adapter, legacy, registry
from simulator.actors.stage import Stage
from simulator.expectations import StepTrace
from simulator.scenario import CircuitAction, EnvelopeAction, TouLimitsAction, WithdrawEnvelopeAction
from simulator.wire import Publication


async def circuit(stage: Stage, action: CircuitAction, trace: StepTrace, correlation: str) -> None:
    spec = stage.state.layout.circuit(action.name)
    update = {k: v for k, v in (("default_capacity_watts", action.default_capacity_watts),
                                ("fail_safe_capacity_watts", action.fail_safe_capacity_watts)) if v is not None}
    await stage.publish(trace, registry.circuit_updated(stage.state, stage.clock, spec.model_copy(update=update),
                                                        correlation_id=correlation, removed=action.removed))
    await stage.digested(trace)


async def envelope(stage: Stage, action: EnvelopeAction, trace: StepTrace, correlation: str) -> None:
    if action.resend:
        first = stage.envelopes[action.name].message
        publication = Publication(type(first).create(first.payload, producer=first.producer,
                                                     occurred_at=stage.clock.now(), correlation_id=correlation,
                                                     event_id=stage.ids.next_event()))
    else:
        publication = envelope_adapter.submit(stage.state, stage.clock, action, correlation_id=correlation)
        stage.envelopes[action.name] = publication
    await stage.publish(trace, publication)
    await stage.digested(trace)


async def withdraw_envelope(stage: Stage, action: WithdrawEnvelopeAction, trace: StepTrace, correlation: str) -> None:
    await stage.publish(trace, envelope_adapter.withdraw(stage.state, stage.clock, action.name,
                                                         correlation_id=correlation))
    await stage.digested(trace)


async def tou_limits(stage: Stage, action: TouLimitsAction, trace: StepTrace, correlation: str) -> None:
    await stage.call(trace, legacy.tou_limits(stage.state, stage.clock, action, correlation_id=correlation),
                     correlation)
