"""Playing one scenario: each step's actor acts (simulator/actors/actions.py), the system's outputs are
observed, expectations checked, and the run is finished with its invariants.

The runner never sleeps to wait for the system. After sending, it waits on the consumed barrier
(Kafka says every subscribed service group committed past the record) or polls the output topics until
the step's expectations hold or their deadline passes; the negative checks (exact counts, absences)
are made once the step's inputs are digested. The only waiting on the clock is the pacer's: a step
planned for t = 4 s does not run before t = 4 s.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from contracts.topics import BY_NAME, decode
from simulator.actors import operator_steps
from simulator.actors.actions import act
from simulator.actors.stage import BARRIER_TIMEOUT_S, Sample, Stage, StepAborted
from simulator.clock import DEFAULT_ANCHOR, Pacer, ScenarioClock
from simulator.depot_state import DepotState
from simulator.expectations import (
    CycleContext,
    Finding,
    StepTrace,
    belongs,
    check_invariants,
    check_step,
    step_cycles,
)
from simulator.identity import Identities, run_namespace
from simulator.scenario import Scenario, Step
from simulator.transport import Observed, Transport
from simulator.wire import Published


@dataclass
class RunResult:
    scenario: Scenario
    seed: int
    anchor: datetime
    live: bool
    steps: list[StepTrace] = field(default_factory=list)
    invariants: list[Finding] = field(default_factory=list)
    contexts: list[CycleContext] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    time_axis: str = "scenario time (s)"
    dead_letters: list[Observed] = field(default_factory=list)
    error: str | None = None
    wall_s: float = 0.0
    sent: int = 0

    def cycle_fingerprint(self) -> list[tuple[str, tuple[str, ...], int, tuple[tuple[str, int], ...]]]:
        """Every cycle's outcome, reason codes, total and allocations (by node type), in a stable order:
        what two runs with the same seed must share. Ids and timestamps differ between runs by
        construction, and the watt or two of a rounding remainder goes to nodes in id order, so the
        allocations are a sorted multiset per node type, to be compared within a few watts."""
        out = []
        for ctx in self.contexts:
            result = ctx.cycle.result
            by_node = result.allocation_summary.by_node
            allocations = tuple(sorted((n.node_type.value, n.allocated_watts) for n in by_node))
            out.append((result.outcome.value, tuple(str(c.value) for c in result.reason_codes),
                        result.allocation_summary.total_allocated_watts, allocations))
        return sorted(out)

    @property
    def findings(self) -> list[Finding]:
        return [f for s in self.steps for f in s.findings] + self.invariants

    @property
    def failures(self) -> list[tuple[str, Finding]]:
        out = [(s.title, f) for s in self.steps for f in s.findings if not f.ok]
        out += [("invariants", f) for f in self.invariants if not f.ok]
        return out

    @property
    def passed(self) -> bool:
        return self.error is None and not self.failures

    @property
    def checked(self) -> int:
        return len(self.findings)


class ScenarioRun:
    def __init__(self, scenario: Scenario, transport: Transport, *, seed: int | None = None,
                 anchor: datetime | None = None, on_step: Callable[[StepTrace], None] | None = None) -> None:
        self.scenario = scenario
        self.transport = transport
        self.seed = scenario.seed if seed is None else seed
        self.anchor = anchor or DEFAULT_ANCHOR
        self.rng = random.Random(self.seed)
        self.ids = Identities(run_namespace(scenario.name, self.seed, self.anchor))
        self.clock = ScenarioClock(self.anchor)
        self.pacer = Pacer(transport.live)
        self.state = DepotState.create(scenario.layout(), self.ids)
        self.result = RunResult(scenario, self.seed, self.anchor, transport.live)
        self.stage = Stage(transport, self.state, self.clock, self.pacer, self.rng, self.ids, self.result)
        self.chargers = self.stage.chargers
        self.on_step = on_step

    # ---- the run ----------------------------------------------------------------------------------

    async def play(self) -> RunResult:
        started = time.monotonic()
        planned = previous = 0.0
        try:
            for index, step in enumerate(self.scenario.steps):
                if step.at is not None:
                    planned = step.at
                elif step.after is not None:
                    planned = previous + step.after
                offset = await self.pacer.reach(planned)
                planned = previous = offset
                self.clock.advance_to(offset)
                trace = StepTrace(index, step.title(index), step.action_name, offset, len(self.transport.observed))
                for earlier in self.result.steps:  # an uncorrelated step must not claim an earlier step's cycle
                    trace.foreign_correlations |= earlier.correlation_ids | earlier.request_keys
                    trace.foreign_cycle_ids |= {c.cycle_id for c in earlier.answer_cycles}
                self.result.steps.append(trace)
                step_started = time.monotonic()
                try:
                    await self._play_step(step, trace)
                    if step.expect is not None:
                        await self._check(step, trace)
                except StepAborted as exc:
                    trace.findings.append(Finding(False, "step", "the step completes", str(exc)))
                    break
                finally:
                    trace.duration_s = time.monotonic() - step_started
                    if self.on_step:
                        self.on_step(trace)
                planned = self.clock.offset_s
            await self._finish()
        except Exception as exc:  # a run always ends with a report, a crash included
            self.result.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
        self.result.wall_s = time.monotonic() - started
        return self.result

    async def _play_step(self, step: Step, trace: StepTrace) -> None:
        correlation = self.ids.key("step", str(trace.index))
        trace.correlation_ids.add(correlation)
        await act(self.stage, step.action, trace, correlation)

    async def _finish(self) -> None:
        if self.transport.live:
            await self.transport.consumed(self.stage.all_published, BARRIER_TIMEOUT_S)
            if self.result.steps:
                await self.stage.follow_through(self.result.steps[-1])
            await self.transport.poll()
            self.stage.process_cycles()
        self.result.dead_letters = [r for r in self.transport.observed if r.dead_letter is not None
                                    and self._dead_letter_is_ours(r)]
        if not self.transport.live:
            return
        names = [n for n in self.scenario.invariants if n != "no_dead_letters"]
        self.result.invariants = check_invariants(names, self.result.contexts, self.state)
        if "no_dead_letters" in self.scenario.invariants:
            letters = [f"{d.get('consumer_group')}: {d.get('reason')} on {d.get('original_topic')} "
                       f"{d.get('error', '')[:200]}" for d in (r.dead_letter or {} for r in self.result.dead_letters)]
            self.result.invariants.append(Finding(not letters, "no dead letters", "none", "; ".join(letters) or "none"))

    def _dead_letter_is_ours(self, record: Observed) -> bool:
        letter = record.dead_letter or {}
        if letter.get("reason") == "OFF_CONTRACT":
            return True
        topic = self.transport.unprefixed(letter.get("original_topic", ""))
        if topic not in BY_NAME:
            return False
        try:
            message = decode(topic, letter.get("value", "").encode())
        except ValueError:
            return True  # unreadable, so nobody can claim it: report it
        return belongs(Observed(0, topic, 0, 0, 0.0, message=message), self.state)

    # ---- checking ---------------------------------------------------------------------------------

    async def _check(self, step: Step, trace: StepTrace) -> None:
        expect = step.expect
        assert expect is not None
        if not self.transport.live:
            trace.notes.append("dry run: expectations not checked")
            return
        if expect.cycle is not None and expect.cycle.same_allocations_as is not None:
            label = expect.cycle.same_allocations_as
            earlier = next((t for t in self.result.steps if t.title == label), None)
            if earlier is None:
                raise StepAborted(f"no earlier step labelled {label!r}")
            trace.reference_cycles = step_cycles(earlier, self.transport.observed, self.state)
        deadline = time.monotonic() + expect.timeout_s
        last_read = time.monotonic()
        while True:
            if step.operator_view is not None and time.monotonic() - last_read > 0.3:
                # Reads are eventually consistent (the views are built from events): read again.
                trace.answers.clear()
                await operator_steps.operator_view(self.stage, None, trace, next(iter(trace.correlation_ids)))
                last_read = time.monotonic()
            await self.transport.poll()
            self.stage.process_cycles()
            findings = check_step(expect, trace, self.transport.observed, self.state, final=False)
            if all(f.ok for f in findings) or time.monotonic() > deadline:
                break
        # Negative checks need the inputs digested: the step's own, and what the services made of them.
        await self.transport.consumed(trace.published, BARRIER_TIMEOUT_S)
        outputs = [Published(r.topic, r.partition, r.offset) for r in self.transport.observed[trace.start_observed:]
                   if r.message is not None]
        await self.transport.consumed(outputs, BARRIER_TIMEOUT_S)
        await self.transport.poll()
        self.stage.process_cycles()
        trace.findings.extend(check_step(expect, trace, self.transport.observed, self.state, final=True))
