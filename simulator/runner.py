"""Playing one scenario: each step's actor acts, the system's outputs are observed, expectations checked.

The runner never sleeps to wait for the system. After sending, it waits on the consumed barrier
(Kafka says every subscribed service group committed past the record) or polls the output topics until
the step's expectations hold or their deadline passes; the negative checks (exact counts, absences)
are made once the step's inputs are digested. The only waiting on the clock is the pacer's: a step
planned for t = 4 s does not run before t = 4 s.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contracts.api.balancing import CycleResultResponse
from contracts.api.compatibility_adapter import CircuitRebalanceResponse
from contracts.api.topology import ControlPointInput
from contracts.enums import NodeType
from contracts.topics import BY_NAME, decode
from simulator.actors import envelope_adapter, legacy, operator, registry, telemetry
from simulator.actors.chargers import Chargers
from simulator.clock import DEFAULT_ANCHOR, Pacer, ScenarioClock
from simulator.depot_state import LOAD_BALANCING_CONTROL_POINT, DepotState
from simulator.expectations import (
    CycleContext,
    Finding,
    SeenCycle,
    StepTrace,
    belongs,
    check_invariants,
    check_step,
    cycles_seen,
    step_cycles,
)
from simulator.identity import Identities, run_namespace
from simulator.scenario import (
    AggregateCapAction,
    CircuitAction,
    ConcurrentEditsAction,
    ControlPointAction,
    DepotDayAction,
    EnvelopeAction,
    ForecastSourceAction,
    NodeLimitAction,
    PlugInAction,
    RebalanceAction,
    Scenario,
    SetupAction,
    StatusEventAction,
    Step,
    TelemetryAction,
    TopologyEdit,
    TouLimitsAction,
    UnplugAction,
    WithdrawEnvelopeAction,
)
from simulator.transport import Observed, Transport
from simulator.wire import HttpAnswer, HttpCall, Publication, Published

BARRIER_TIMEOUT_S = 30.0
DEFAULT_SESSION_ENERGY_WH = 60000
DAY_START_HOUR = 6.0


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
        self.chargers = Chargers()
        self.limits = {p.node.name: p.node.limit_watts for p in self.state.layout.nodes()
                       if p.node.limit_watts is not None}
        self.aggregate_cap = self.state.layout.aggregate_cap_watts
        self.result = RunResult(scenario, self.seed, self.anchor, transport.live)
        self.on_step = on_step
        self._cycles_done = 0
        self._sessions = 0
        self._day_hour: float | None = None
        self._all_published: list[Published] = []
        self._envelopes: dict[str, Publication] = {}
        self._configured_cps: list[str] = []  # configured by name (setup's and control_point steps')

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
        handler = getattr(self, f"_{step.action_name}")
        await handler(step.action, trace, correlation)

    async def _finish(self) -> None:
        if self.transport.live:
            await self.transport.consumed(self._all_published, BARRIER_TIMEOUT_S)
            await self.transport.poll()
            self._process_cycles()
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

    # ---- sending ----------------------------------------------------------------------------------

    async def _publish(self, trace: StepTrace, publication: Publication) -> Published | None:
        published = await self.transport.publish(publication)
        self.result.sent += 1
        if published is not None:
            trace.published.append(published)
            self._all_published.append(published)
        return published

    async def _call(self, trace: StepTrace, call: HttpCall, correlation: str, *, record: bool = True) -> HttpAnswer:
        """One HTTP call; `record=False` for the operator's own reads, which expectations do not judge."""
        headers = {"X-Correlation-ID": correlation, **call.headers}
        answer = await self.transport.call(HttpCall(call.service, call.method, call.path, call.body, headers))
        self.result.sent += 1
        if record:
            trace.answers.append(answer)
        return answer

    async def _call_ok(self, trace: StepTrace, call: HttpCall, correlation: str, *, record: bool = True) -> HttpAnswer:
        answer = await self._call(trace, call, correlation, record=record)
        if not answer.ok:
            raise StepAborted(f"{call.method} {call.path} answered {answer.status}: {str(answer.body)[:400]}")
        return answer

    async def _digested(self, trace: StepTrace, published: list[Published] | None = None) -> None:
        """The consumed barrier on what this step published (nothing to wait for in a dry run)."""
        behind = await self.transport.consumed(trace.published if published is None else published,
                                               BARRIER_TIMEOUT_S)
        if behind:
            raise StepAborted(f"not consumed within {BARRIER_TIMEOUT_S:.0f} s: {', '.join(behind)}")
        self._process_cycles()

    async def _outputs(self, trace: StepTrace, topic: str, match: Callable[[Any], bool], count: int = 1,
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
        await self._digested(trace, [Published(r.topic, r.partition, r.offset) for r in hits])
        return hits

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
                await self._operator_view(None, trace, next(iter(trace.correlation_ids)))
                last_read = time.monotonic()
            await self.transport.poll()
            self._process_cycles()
            findings = check_step(expect, trace, self.transport.observed, self.state, final=False)
            if all(f.ok for f in findings) or time.monotonic() > deadline:
                break
        # Negative checks need the inputs digested: the step's own, and what the services made of them.
        await self.transport.consumed(trace.published, BARRIER_TIMEOUT_S)
        outputs = [Published(r.topic, r.partition, r.offset) for r in self.transport.observed[trace.start_observed:]
                   if r.message is not None]
        await self.transport.consumed(outputs, BARRIER_TIMEOUT_S)
        await self.transport.poll()
        self._process_cycles()
        trace.findings.extend(check_step(expect, trace, self.transport.observed, self.state, final=True))

    def _process_cycles(self) -> None:
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
        t = self._day_hour if self._day_hour is not None else seen.at_s
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

    # ---- actions ----------------------------------------------------------------------------------

    async def _setup(self, action: SetupAction, trace: StepTrace, correlation: str) -> None:
        phases: list[str] = []
        mark = time.monotonic()

        def done(phase: str) -> None:
            nonlocal mark
            phases.append(f"{phase} {time.monotonic() - mark:.2f}s")
            mark = time.monotonic()

        try:
            if action.circuits:
                for circuit in self.state.layout.circuits:
                    await self._publish(trace, registry.circuit_updated(self.state, self.clock, circuit,
                                                                        correlation_id=correlation))
                await self._digested(trace)
                done("circuits")
            if action.resync:
                await self._resync(None, trace, correlation)
                done("resync")
            if action.tree:
                await self._write_tree(trace, correlation)
                done("tree")
            if action.limits:
                limits = operator.layout_limits(self.state)
                if limits:
                    await self._write_limits(trace, correlation, limits)
                done("limits")
            if action.control_points:
                await self._control_points(trace, correlation)
                done("control points")
            if action.plug_in == "all":
                await self._plug_in(PlugInAction(), trace, correlation)
            if action.telemetry is not None:
                await self._telemetry(action.telemetry, trace, correlation)
                done("telemetry")
        finally:
            trace.notes.append("setup: " + ", ".join(phases))

    async def _resync(self, _: object, trace: StepTrace, correlation: str) -> None:
        answer = await self._call_ok(trace, operator.resync(self.state), correlation)
        self.state.microgrid_id, version = operator.microgrid_of(answer.body)
        await self._read_tree(trace, correlation)
        if answer.body.get("result", {}).get("changed", True):
            await self._outputs(trace, "microgrid.topology_updated",
                                lambda p: p.microgrid_id == self.state.microgrid_id and p.version >= version)

    async def _read_tree(self, trace: StepTrace, correlation: str) -> None:
        answer = await self._call_ok(trace, operator.read_topology(self.state), correlation, record=False)
        _, self.state.version = operator.microgrid_of(answer.body)
        result = answer.body.get("result", answer.body)
        self.state.tree = operator.node_inputs(result["nodes"])
        self.state.learn_managed_nodes(self.state.tree)

    async def _write_tree(self, trace: StepTrace, correlation: str) -> None:
        managed = [n for n in self.state.tree if n.parent_node_id is None and n.attached_asset_type is not None]
        nodes = self.state.authored_tree(managed)
        answer = await self._call_ok(trace, operator.write_topology(self.state, nodes, self.state.version), correlation)
        _, version = operator.microgrid_of(answer.body)
        self.state.version, self.state.tree = version, nodes
        await self._outputs(trace, "microgrid.topology_updated",
                            lambda p: p.microgrid_id == self.state.microgrid_id and p.version >= version)

    async def _write_limits(self, trace: StepTrace, correlation: str, limits: list[tuple[str, Any, int]]) -> None:
        answer = await self._call_ok(trace, operator.node_limits(self.state, limits), correlation)
        result = answer.body.get("result", answer.body)
        written = {str(limit["node_limit_id"]) for limit in result.get("limits", [])}
        await self._outputs(trace, "microgrid.node_limit_updated", lambda p: str(p.node_limit_id) in written,
                            count=len(written))
        for node, _, watts in limits:
            self.limits[node] = watts

    async def _control_points(self, trace: StepTrace, correlation: str) -> None:
        await self._call_ok(trace, operator.load_balancing_control_point(self.state, self.aggregate_cap), correlation)
        names = [LOAD_BALANCING_CONTROL_POINT]
        for source in self.state.layout.forecast_sources():
            await self._call_ok(trace, operator.forecast_source_control_point(self.state, source.name, source.node),
                                correlation)
            names.append(source.name)
        self._configured_cps.extend(names)
        wanted = {self.state.control_point_id(n) for n in names}
        await self._outputs(trace, "microgrid.capability_control_point_updated",
                            lambda p: p.control_point_id in wanted, count=len(wanted))
        for source in self.state.layout.forecast_sources():
            await self._forecast_source(ForecastSourceAction(name=source.name, status="HEALTHY"), trace, correlation)

    async def _circuit(self, action: CircuitAction, trace: StepTrace, correlation: str) -> None:
        spec = self.state.layout.circuit(action.name)
        update = {k: v for k, v in (("default_capacity_watts", action.default_capacity_watts),
                                    ("fail_safe_capacity_watts", action.fail_safe_capacity_watts)) if v is not None}
        await self._publish(trace, registry.circuit_updated(self.state, self.clock, spec.model_copy(update=update),
                                                            correlation_id=correlation, removed=action.removed))
        await self._digested(trace)

    async def _edit_topology(self, action: TopologyEdit, trace: StepTrace, correlation: str) -> None:
        await self._read_tree(trace, correlation)
        nodes = operator.apply_edit(self.state, self.state.tree, action)
        answer = await self._call(trace, operator.write_topology(self.state, nodes, operator.edit_version(self.state,
                                                                                                         action)),
                                  correlation)
        await self._after_write(trace, answer, nodes)

    async def _concurrent_edits(self, action: ConcurrentEditsAction, trace: StepTrace, correlation: str) -> None:
        await self._read_tree(trace, correlation)
        base = list(self.state.tree)
        calls = [operator.write_topology(self.state, operator.apply_edit(self.state, base, e),
                                         operator.edit_version(self.state, e)) for e in action.edits]
        answers = await asyncio.gather(*(self._call(trace, c, correlation) for c in calls))
        for call, answer in zip(calls, answers, strict=True):
            if answer.ok:
                await self._after_write(trace, answer, operator.node_inputs(call.body["nodes"]))

    async def _after_write(self, trace: StepTrace, answer: HttpAnswer, nodes: list[Any]) -> None:
        if not answer.ok:
            return
        _, version = operator.microgrid_of(answer.body)
        self.state.version, self.state.tree = version, nodes
        await self._outputs(trace, "microgrid.topology_updated",
                            lambda p: p.microgrid_id == self.state.microgrid_id and p.version >= version)

    async def _node_limit(self, action: NodeLimitAction, trace: StepTrace, correlation: str) -> None:
        await self._write_limits(trace, correlation, [(action.node, action.constraint_type, action.watts)])

    async def _aggregate_cap(self, action: AggregateCapAction, trace: StepTrace, correlation: str) -> None:
        self.aggregate_cap = action.watts
        await self._call_ok(trace, operator.load_balancing_control_point(self.state, action.watts), correlation)
        cp = self.state.control_point_id(LOAD_BALANCING_CONTROL_POINT)
        await self._outputs(trace, "microgrid.capability_control_point_updated", lambda p: p.control_point_id == cp)

    async def _plug_in(self, action: PlugInAction, trace: StepTrace, correlation: str) -> None:
        names = action.connectors or [p.node.name for p in self.state.layout.connectors()]
        for name in names:
            node = self.state.layout.node(name).node
            self._sessions += 1
            requested = action.requested_watts if action.requested_watts is not None else (node.max_watts or 22000)
            self.chargers.plug_in(name, requested_watts=requested,
                                  min_watts=action.min_watts if action.min_watts is not None else node.min_watts,
                                  energy_wh=action.energy_wh or DEFAULT_SESSION_ENERGY_WH,
                                  ref=self.ids.key("session", f"{name}:{self._sessions}"))

    async def _unplug(self, action: UnplugAction, trace: StepTrace, correlation: str) -> None:
        for name in action.connectors or list(self.chargers.sessions):
            self.chargers.unplug(name)

    async def _telemetry(self, action: TelemetryAction, trace: StepTrace, correlation: str) -> None:
        start = self.clock.offset_s
        for i in range(action.ticks):
            if i:
                offset = await self.pacer.reach(start + i * action.tick_s)
                self.chargers.advance((offset - self.clock.offset_s) / 3600)
                self.clock.advance_to(offset)
            await self._publish(trace, telemetry.tick(self.state, self.chargers, self.clock, self.rng, action,
                                                      correlation_id=correlation))
        await self._digested(trace)

    async def _envelope(self, action: EnvelopeAction, trace: StepTrace, correlation: str) -> None:
        if action.resend:
            first = self._envelopes[action.name].message
            publication = Publication(type(first).create(first.payload, producer=first.producer,
                                                         occurred_at=self.clock.now(), correlation_id=correlation,
                                                         event_id=self.ids.next_event()))
        else:
            publication = envelope_adapter.submit(self.state, self.clock, action, correlation_id=correlation)
            self._envelopes[action.name] = publication
        await self._publish(trace, publication)
        await self._digested(trace)

    async def _withdraw_envelope(self, action: WithdrawEnvelopeAction, trace: StepTrace, correlation: str) -> None:
        await self._publish(trace, envelope_adapter.withdraw(self.state, self.clock, action.name,
                                                             correlation_id=correlation))
        await self._digested(trace)

    async def _forecast_source(self, action: ForecastSourceAction, trace: StepTrace, correlation: str) -> None:
        ref = self.ids.key("status", f"{action.name}:{trace.index}:{action.status}")
        await self._call_ok(trace, operator.status_event(self.state, self.clock, action.name, action.status, ref),
                            correlation)
        cp = self.state.control_point_id(action.name)
        await self._outputs(trace, "microgrid.capability_status.recorded",
                            lambda p: p.control_point_id == cp and p.source_event_ref == ref)

    async def _tou_limits(self, action: TouLimitsAction, trace: StepTrace, correlation: str) -> None:
        await self._call(trace, legacy.tou_limits(self.state, self.clock, action, correlation_id=correlation),
                         correlation)

    async def _operator_view(self, _: object, trace: StepTrace, correlation: str) -> None:
        reads = {"depot": operator.read_depot(self.state), "status": operator.microgrid_status(self.state),
                 "control_points": operator.read_control_points(self.state)}
        for name in self._configured_cps:
            reads[f"history:{name}"] = operator.read_status_history(self.state, name)
        for key, call in reads.items():
            trace.reads[key] = await self._call(trace, call, correlation, record=False)

    async def _control_point(self, action: ControlPointAction, trace: StepTrace, correlation: str) -> None:
        body = ControlPointInput(
            node_id=self.state.node_id(action.node) if action.node else None, capability_type=action.capability_type,
            state=action.state, control_source=action.control_source, schedule_ref=action.schedule_ref,
            external_config_type=action.external_config_type, external_config_ref=action.external_config_ref,
            local_config=action.local_config, description=f"{action.name} (simulator)",
        )
        answer = await self._call(trace, operator.control_point(self.state, action.name, body), correlation)
        if answer.ok:
            self._configured_cps.append(action.name)
            cp = self.state.control_point_id(action.name)
            await self._outputs(trace, "microgrid.capability_control_point_updated", lambda p: p.control_point_id == cp)

    async def _status_event(self, action: StatusEventAction, trace: StepTrace, correlation: str) -> None:
        ref = self.ids.key("status", action.ref)
        answer = await self._call(trace, operator.status_event(
            self.state, self.clock, action.control_point, action.status, ref, observed_ago_s=action.observed_ago_s,
            detail=action.detail, via_depot=action.via == "depot"), correlation)
        replayed = isinstance(answer.body, dict) and (answer.body.get("result") or {}).get("replayed")
        if answer.ok and not replayed:  # a replay appends nothing, so there is nothing to wait for
            await self._outputs(trace, "microgrid.capability_status.recorded", lambda p: p.source_event_ref == ref)

    async def _settle(self, _: object, trace: StepTrace, correlation: str) -> None:
        outputs = [Published(r.topic, r.partition, r.offset) for r in self.transport.observed if r.message is not None]
        await self._digested(trace, self._all_published + outputs)

    async def _rebalance(self, action: RebalanceAction, trace: StepTrace, correlation: str) -> None:
        trace.correlated = True
        key = self.ids.key("rebalance", str(trace.index))
        trace.request_keys.add(key)
        if action.via == "operator":
            call = operator.rebalance(self.state, key, action.node, correlation)
            for _ in range(action.repeat):
                answer = await self._call(trace, call, correlation)
                if answer.status == 200 and self.transport.live:
                    trace.answer_cycles.append(CycleResultResponse.model_validate(answer.body).result)
        elif action.via == "legacy_http":
            assert action.circuit is not None
            call = legacy.rebalance_http(self.state, action.circuit, request_key=key, correlation_id=correlation)
            for _ in range(action.repeat):
                answer = await self._call(trace, call, correlation)
                if answer.ok and self.transport.live:
                    response = CircuitRebalanceResponse.model_validate(answer.body)
                    trace.request_keys.add(response.request_key)
                    if response.result is not None:
                        trace.answer_cycles.append(response.result)
        else:
            if action.via == "legacy_event":
                assert action.circuit is not None
                publication = legacy.rebalance_event(self.state, self.clock, action.circuit, correlation_id=correlation)
            else:
                circuit = action.circuit if action.via == "scheduler_circuit" else None
                publication = legacy.periodic(self.state, self.clock, circuit=circuit,
                                              schedule_ref=self.ids.key("schedule", str(trace.index)),
                                              correlation_id=correlation)
            for _ in range(action.repeat):  # a repeat is a replay of the very same message
                await self._publish(trace, publication)

    async def _depot_day(self, action: DepotDayAction, trace: StepTrace, correlation: str) -> None:
        """The busy day: per tick, energy delivered, arrivals, telemetry, one cycle, chargers follow."""
        connectors = [p.node for p in self.state.layout.connectors()]
        start, hours = self.clock.offset_s, action.period_minutes / 60
        trace.correlated = True
        tick_action = TelemetryAction(pattern="dropout", nodes=action.degraded_nodes, others=action.telemetry)
        for tick in range(action.ticks):
            offset = await self.pacer.reach(start + tick * action.tick_s)
            self.clock.advance_to(offset)
            self._day_hour = DAY_START_HOUR + tick * hours
            self.chargers.advance(hours)
            arrival_chance = action.arrival_rate * _arrival_profile(self._day_hour % 24)
            for node in connectors:  # one draw per connector per tick, occupied or not: a stable stream
                draw, energy = self.rng.random(), self.rng.expovariate(1 / action.mean_energy_wh)
                if node.name not in self.chargers.sessions and draw < arrival_chance:
                    self._sessions += 1
                    self.chargers.plug_in(node.name, requested_watts=node.max_watts or 22000, min_watts=node.min_watts,
                                          energy_wh=min(max(energy, 5000), 3 * action.mean_energy_wh),
                                          ref=self.ids.key("session", f"{node.name}:{self._sessions}"))
            tick_correlation = f"{correlation}-t{tick}"
            trace.correlation_ids.add(tick_correlation)
            published = await self._publish(trace, telemetry.tick(
                self.state, self.chargers, self.clock, self.rng, tick_action, correlation_id=tick_correlation,
                generation_factor=_solar_profile(self._day_hour % 24)))
            await self._digested(trace, [published] if published else [])
            await self._day_cycle(action, trace, tick, tick_correlation)
        self._day_hour = None

    async def _day_cycle(self, action: DepotDayAction, trace: StepTrace, tick: int, correlation: str) -> None:
        key = self.ids.key("day", str(tick))
        trace.request_keys.add(key)
        if action.via == "operator":
            answer = await self._call(trace, operator.rebalance(self.state, key, None, correlation), correlation)
            if answer.status == 200 and self.transport.live:
                trace.answer_cycles.append(CycleResultResponse.model_validate(answer.body).result)
                await self._await_cycle(trace, correlation, key)
            return
        circuit = self.state.layout.managed_grid_connections()[tick % len(self.state.layout.managed_grid_connections())]
        publication = legacy.periodic(self.state, self.clock,
                                      circuit=circuit.circuit if action.via == "scheduler_circuit" else None,
                                      schedule_ref=key, correlation_id=correlation)
        await self._publish(trace, publication)
        await self._await_cycle(trace, correlation, key)

    async def _await_cycle(self, trace: StepTrace, correlation: str, key: str, timeout_s: float = 20.0) -> None:
        if not self.transport.live:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for seen in cycles_seen(self.transport.observed[trace.start_observed:], self.state):
                audit = seen.result.audit
                if correlation in (seen.correlation_id, audit.correlation_id) or audit.request_key == key:
                    self._process_cycles()
                    return
            await self.transport.poll()
        trace.notes.append(f"no cycle for {correlation} within {timeout_s:.0f} s")


def _arrival_profile(hour: float) -> float:
    """Depot arrivals: a midday top-up bump and the evening return of the fleet."""
    return min(1.0, 0.1 + 0.9 * math.exp(-(((hour - 18) / 2.5) ** 2)) + 0.4 * math.exp(-(((hour - 12) / 1.5) ** 2)))


def _solar_profile(hour: float) -> float:
    return max(0.0, math.sin(math.pi * (hour - 6) / 14)) if 6 <= hour <= 20 else 0.0
