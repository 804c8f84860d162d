"""Explain and replay a stored cycle from its stored inputs (NFR-001, NFR-003).

A stored cycle keeps its inputs (the domain's serialisation), the canonical bytes of its output and
the engine version that made it. Replay decodes the inputs, runs the same pure cycle and compares
the bytes: a cycle made by this engine version must come out identical. When the bytes differ the
report says which engine made the cycle and which connector allocations changed, so a cycle made
by an older engine (whose rules have since changed) reads as that, not as a broken replay.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from libs.domain import (
    ENGINE_VERSION,
    UNVERSIONED_ENGINE,
    CycleResult,
    cycle_inputs_from_dict,
    decode_cycle_output,
    encode_cycle_output,
    explain_cycle,
    inputs_digest,
    is_tabular,
    run_balancing_cycle,
)
from services.balancing.adapters.cycles import StoredCycle
from services.balancing.cycle_execution import output_digest


@dataclass(frozen=True)
class AllocationChange:
    """A connector whose allocation differs between the stored cycle and its replay."""

    node_id: str
    stored_watts: int | None  # None: not in that cycle's allocation
    replayed_watts: int | None
    stored_state: str | None
    replayed_state: str | None


@dataclass(frozen=True)
class ReplayReport:
    stored_digest: str
    recomputed_digest: str
    inputs_digest_matches: bool
    stored_engine_version: str = ENGINE_VERSION
    engine_version: str = ENGINE_VERSION  # the engine that replayed it
    stored_outcome: str | None = None  # set when the bytes differ
    replayed_outcome: str | None = None
    stored_total_watts: int | None = None
    replayed_total_watts: int | None = None
    changes: tuple[AllocationChange, ...] = ()

    @property
    def identical(self) -> bool:
        return self.stored_digest == self.recomputed_digest and self.inputs_digest_matches

    @property
    def made_by_other_engine(self) -> bool:
        return self.stored_engine_version != self.engine_version


def stored_engine_version(stored: StoredCycle) -> str:
    return str(stored.result.audit.policy_versions.get("engine_version", UNVERSIONED_ENGINE))


def replay_cycle(stored: StoredCycle) -> ReplayReport:
    assert stored.inputs is not None, "replay reads the cycle with its inputs (cycle_by_id(..., with_inputs=True))"
    inputs = cycle_inputs_from_dict(stored.inputs)
    digest = inputs_digest(inputs)
    replayed = run_balancing_cycle(inputs, digest=digest)
    recomputed = encode_cycle_output(replayed, tabular=_tabular(stored.output))
    report = ReplayReport(
        stored_digest=output_digest(stored.output),
        recomputed_digest=output_digest(recomputed),
        inputs_digest_matches=digest == stored.inputs_digest,
        stored_engine_version=stored_engine_version(stored),
    )
    if report.stored_digest == report.recomputed_digest:
        return report
    try:
        decided = decode_cycle_output(stored.output)
    except (ValueError, TypeError, KeyError):  # an output this engine cannot read: the digests say enough
        return report
    return dataclasses.replace(
        report,
        stored_outcome=decided.outcome.value,
        replayed_outcome=replayed.outcome.value,
        stored_total_watts=decided.allocation_summary.total_allocated_watts,
        replayed_total_watts=replayed.allocation_summary.total_allocated_watts,
        changes=allocation_changes(decided, replayed),
    )


def _tabular(output: bytes) -> bool:
    """Replayed in the stored output's own layout (an output stored before the tabular one is in the record
    layout); an output that is not JSON at all cannot match either way."""
    try:
        return is_tabular(output)
    except (ValueError, AttributeError):
        return True


def allocation_changes(stored: CycleResult, replayed: CycleResult) -> tuple[AllocationChange, ...]:
    """Connectors whose watts or state differ, in the replay's tree order, then those only stored."""
    before = {n.node_id: n for n in stored.allocation_summary.nodes if n.state is not None}
    after = {n.node_id: n for n in replayed.allocation_summary.nodes if n.state is not None}
    out = []
    for node_id in [*after, *(k for k in before if k not in after)]:
        b, a = before.get(node_id), after.get(node_id)
        was = (b.allocated_watts, b.state.value) if b is not None and b.state is not None else (None, None)
        now = (a.allocated_watts, a.state.value) if a is not None and a.state is not None else (None, None)
        if was != now:
            out.append(AllocationChange(node_id, was[0], now[0], was[1], now[1]))
    return tuple(out)


def replay_lines(report: ReplayReport) -> list[str]:
    """What `mgrid cycle replay` prints; the last line is the verdict."""
    lines = [f"stored     sha256 {report.stored_digest}", f"recomputed sha256 {report.recomputed_digest}"]
    if not report.inputs_digest_matches:
        lines.append("inputs digest does not match the stored inputs")
    if report.identical:
        return [*lines, "identical"]
    lines.append(f"made by engine {report.stored_engine_version}; replayed with engine {report.engine_version}")
    if report.stored_outcome is not None:
        if report.stored_outcome != report.replayed_outcome:
            lines.append(f"outcome {report.stored_outcome} -> {report.replayed_outcome}")
        lines.append(f"total allocated {report.stored_total_watts} W -> {report.replayed_total_watts} W")
        lines.append(f"allocations changed: {len(report.changes)}")
        for c in report.changes:
            lines.append(
                f"  {c.node_id}: {_watts(c.stored_watts)} {c.stored_state or '-'}"
                f" -> {_watts(c.replayed_watts)} {c.replayed_state or '-'}"
            )
    if report.made_by_other_engine:
        lines.append(
            f"DIFFERENT: made by engine {report.stored_engine_version}, whose rules have changed since"
            f" (this is engine {report.engine_version})"
        )
    else:
        lines.append("DIFFERENT")
    return lines


def _watts(value: int | None) -> str:
    return "absent" if value is None else f"{value} W"


def explain_stored_cycle(stored: StoredCycle) -> str:
    result = stored.result
    decided = decode_cycle_output(stored.output)
    audit = result.audit
    header = [
        f"request {stored.request_key} by {audit.actor} via {audit.source.value} (correlation {audit.correlation_id})",
        f"ran {result.started_at.isoformat()} .. {result.ended_at.isoformat()}; inputs digest {stored.inputs_digest}",
    ]
    return "\n".join([*header, explain_cycle(decided)])
