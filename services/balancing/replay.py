"""Explain and replay a stored cycle from its stored inputs (NFR-001, NFR-003).

A stored cycle keeps its inputs (the domain's serialisation) and the canonical bytes of its output.
Replay decodes the inputs, runs the same pure cycle and compares the bytes; explain renders the
stored output with the domain's explanation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from libs.domain import (
    CycleResult,
    cycle_inputs_from_dict,
    explain_cycle,
    from_jsonable,
    inputs_digest,
    run_balancing_cycle,
    to_canonical_json,
)
from services.balancing.adapters.cycles import StoredCycle
from services.balancing.cycle_execution import output_digest


@dataclass(frozen=True)
class ReplayReport:
    stored_digest: str
    recomputed_digest: str
    inputs_digest_matches: bool

    @property
    def identical(self) -> bool:
        return self.stored_digest == self.recomputed_digest and self.inputs_digest_matches


def replay_cycle(stored: StoredCycle) -> ReplayReport:
    inputs = cycle_inputs_from_dict(stored.inputs)
    recomputed = to_canonical_json(run_balancing_cycle(inputs))
    return ReplayReport(
        stored_digest=output_digest(stored.output),
        recomputed_digest=output_digest(recomputed),
        inputs_digest_matches=inputs_digest(inputs) == stored.inputs_digest,
    )


def explain_stored_cycle(stored: StoredCycle) -> str:
    result = stored.result
    decided: CycleResult = from_jsonable(CycleResult, json.loads(stored.output))
    audit = result.audit
    header = [
        f"request {stored.request_key} by {audit.actor} via {audit.source.value} (correlation {audit.correlation_id})",
        f"ran {result.started_at.isoformat()} .. {result.ended_at.isoformat()}; inputs digest {stored.inputs_digest}",
    ]
    return "\n".join([*header, explain_cycle(decided)])
