"""The stage the actors play on: the depot's state, the run's clock and seed, and the one way to send.

Every action (simulator/actors/actions.py) gets the stage, its step's action model, the step's trace
and a correlation id. Sending goes through `publish` / `call` so the run counts it and the step owns
it; `digested` and `outputs` wait on the system without sleeping (the consumed barrier, or polling
an output topic until a deadline). Each new cycle of this microgrid is recorded here as it is seen,
because the chargers must follow it before the next telemetry tick.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from contracts.enums import NodeType
from simulator.actors.chargers import Chargers
from simulator.clock import Pacer, ScenarioClock
from simulator.depot_state import DepotState
from simulator.expectations import CycleContext, SeenCycle, StepTrace, belongs, cycles_seen
from simulator.follow_through import loose_ends
from simulator.identity import Identities
from simulator.transport import Observed, Transport
from simulator.wire import HttpAnswer, HttpCall, Publication, Published

if TYPE_CHECKING:
    from simulator.runner import RunResult

BARRIER_TIMEOUT_S = 30.0


class StepAborted(Exception):
    """The step could not do its part (a setup call refused, an output never came): later steps are moot."""


@dataclass(frozen=True)
class Sample:
    """One cycle seen from one grid connection: for the report's power-over-time plots."""

    t: float
    grid_connection: str
    requested_watts: int
    measured_watts: int
    allocated_watts: int
    limit_watts: int | None
    outcome: str
    reason_codes: tuple[str, ...]


class Stage:
    def __init__(self, transport: Transport, state: DepotState, clock: ScenarioClock, pacer: Pacer,
                 rng: random.Random, ids: Identities, result: RunResult) -> None:
        self.transport = transport
        self.state = state
        self.clock = clock
        self.pacer = pacer
        self.rng = rng
        self.ids = ids
        self.result = result
        self.chargers = Chargers()
        self.limits = {p.node.name: p.node.limit_watts for p in self.state.layout.nodes()
                       if p.node.limit_watts is not None}
        self.aggregate_cap = self.state.layout.aggregate_cap_watts
        self.sessions = 0
        self.day_hour: float | None = None  # set during a depot day: the samples' time axis
        self.all_published: list[Published] = []
        self.envelopes: dict[str, Publication] = {}
        self.configured_cps: list[str] = []  # configured by name (setup's and control_point steps')
        self._cycles_done = 0

    # ---- sending ----------------------------------------------------------------------------------

    async def publish(self, trace: StepTrace, publication: Publication) -> Published | None:
        published = await self.transport.publish(publication)
        self.result.sent += 1
        if published is not None:
            trace.published.append(published)
            self.all_published.append(published)
        return published

    async def call(self, trace: StepTrace, call: HttpCall, correlation: str, *, record: bool = True) -> HttpAnswer:
        """One HTTP call; `record=False` for the operator's own reads, which expectations do not judge."""
        headers = {"X-Correlation-ID": correlation, **call.headers}
        answer = await self.transport.call(HttpCall(call.service, call.method, call.path, call.body, headers))
        self.result.sent += 1
        if record:
            trace.answers.append(answer)
        return answer

    async def call_ok(self, trace: StepTrace, call: HttpCall, correlation: str, *, record: bool = True) -> HttpAnswer:
        answer = await self.call(trace, call, correlation, record=record)
        if not answer.ok:
            raise StepAborted(f"{call.method} {call.path} answered {answer.status}: {str(answer.body)[:400]}")
        return answer

    # ---- waiting on the system --------------------------------------------------------------------

    async def digested(self, trace: StepTrace, published: list[Published] | None = None) -> None:
        """The consumed barrier on what this step published (nothing to wait for in a dry run)."""
        behind = await self.transport.consumed(trace.published if published is None else published,
                                               BARRIER_TIMEOUT_S)
        if behind:
            raise StepAborted(f"not consumed within {BARRIER_TIMEOUT_S:.0f} s: {', '.join(behind)}")
        self.process_cycles()

    async def outputs(self, trace: StepTrace, topic: str, match: Callable[[Any], bool], count: int = 1,
                      timeout_s: float = BARRIER_TIMEOUT_S) -> list[Observed]:
        """Wait for `count` records on an output topic matching `match`, then for their consumers."""
        if not self.transport.live:
            return []
        deadline = time.monotonic() + timeout_s
        while True:
            hits = [r for r in self.transport.observed[trace.start_observed:]
                    if r.topic == topic and r.payload is not None and match(r.payload)]
            if len(hits) >= count:
                break
            if time.monotonic() > deadline:
                raise StepAborted(f"{topic}: saw {len(hits)} of {count} expected records within {timeout_s:.0f} s")
            await self.transport.poll()
        await self.digested(trace, [Published(r.topic, r.partition, r.offset) for r in hits])
        return hits

    async def follow_through(self, trace: StepTrace, timeout_s: float = BARRIER_TIMEOUT_S) -> None:
        """Wait until the chains the run set off have ended (simulator.follow_through): every record of
        this depot digested by its consumers and read to the topics' ends, nothing owed and nothing new."""
        if not self.transport.live:
            return
        deadline = time.monotonic() + timeout_s
        answered = {c.cycle_id for t in self.result.steps for c in t.answer_cycles}
        while True:
            ours = [r for r in self.transport.observed if r.message is not None and belongs(r, self.state)]
            await self.transport.consumed(self.all_published + [Published(r.topic, r.partition, r.offset)
                                                                for r in ours], max(0.0, deadline - time.monotonic()))
            await self.transport.caught_up(max(0.0, deadline - time.monotonic()))
            owed = loose_ends(self.transport.observed, self.state, self.clock.now(), answered)
            fresh = sum(1 for r in self.transport.observed if r.message is not None and belongs(r, self.state))
            if not owed and fresh == len(ours):
                return
            if time.monotonic() > deadline:
                trace.notes.append(f"follow-through: still owed after {timeout_s:.0f} s: "
                                   + "; ".join(map(str, owed[:5])))
                return
            await self.transport.poll()

    # ---- the cycles seen --------------------------------------------------------------------------

    def process_cycles(self) -> None:
        """Chargers follow every new cycle of this microgrid; the cycle is recorded with its context."""
        cycles = cycles_seen(self.transport.observed, self.state)
        seen_ids = {c.cycle.result.cycle_id for c in self.result.contexts}
        name_of = {v: k for k, v in self.state.node_ids.items()}
        for seen in cycles[self._cycles_done:]:
            if seen.result.cycle_id in seen_ids:
                continue
            seen_ids.add(seen.result.cycle_id)
            self._sample(seen)
            self.chargers.follow(seen.result, name_of)
            self.result.contexts.append(CycleContext(
                seen, dict(self.limits), self.aggregate_cap,
                {s.connector: s.min_watts for s in self.chargers.sessions.values()},
            ))
        self._cycles_done = len(cycles)

    def _sample(self, seen: SeenCycle) -> None:
        cycle = seen.result
        by_id = {n.node_id: n for n in cycle.allocation_summary.by_node}
        t = self.day_hour if self.day_hour is not None else seen.at_s
        for gc in self.state.layout.tree:
            node_id = self.state.node_ids.get(gc.name)
            connectors = [p.node.name for p in self.state.layout.subtree(gc.name) if p.node.type is NodeType.CONNECTOR]
            allocated = sum(by_id[self.state.node_ids[c]].allocated_watts for c in connectors
                            if self.state.node_ids.get(c) in by_id)
            gc_record = by_id.get(node_id) if node_id else None
            self.result.samples.append(Sample(
                t=round(t, 3), grid_connection=gc.name,
                requested_watts=sum(self.chargers.requested(c) for c in connectors),
                measured_watts=sum(self.chargers.draw(c) for c in connectors),
                allocated_watts=gc_record.allocated_watts if gc_record else allocated,
                limit_watts=gc_record.effective_limit_watts if gc_record else self.limits.get(gc.name),
                outcome=str(cycle.outcome), reason_codes=tuple(str(c) for c in cycle.reason_codes),
            ))
