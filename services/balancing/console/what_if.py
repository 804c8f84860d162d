"""What-if before apply: the cycle a proposed change would produce, on the current inputs, stored nowhere.

The same path as a real cycle up to the decision: balancing's read models, `assemble_cycle_inputs`,
the domain's `run_balancing_cycle`. The proposal is applied to the inputs only (a node limit replaces
the node's active limit of that type; an envelope is added as ACTIVE; a legacy TOU schedule replaces
the circuit's TOU envelope, translated as the compatibility adapter translates it). No cycle, no
event, no read-model row is written: only an audit row saying who previewed what.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from uuid import UUID, uuid4

import asyncpg

from contracts.api.compatibility_adapter import LegacyTouPeriod
from contracts.api.console import (
    ConnectorChange,
    CycleSketch,
    ProposedEnvelope,
    ProposedNodeLimit,
    ProposedTouLimit,
    WhatIfRequest,
    WhatIfResponse,
)
from contracts.enums import EnvelopeStatus, EnvelopeType, LimitSourceType, NodeType, ReasonCode, RebalanceSource
from contracts.events import RebalanceRequestedPayload
from libs.domain import (
    AliasFailure,
    AliasScope,
    CycleInputs,
    CycleResult,
    EnvelopeBlock,
    NodeLimit,
    OperatingEnvelope,
    alias_rows,
    envelope_violations,
    inputs_digest,
    resolve_circuit_alias,
    run_balancing_cycle,
)
from libs.domain.tou_translation import envelope_for_schedule
from libs.platform.http import ApiError
from services.balancing.adapters import cycles, read_models
from services.balancing.console import store
from services.balancing.cycle_inputs import CycleSettings, assemble_cycle_inputs
from services.balancing.cycle_records import cycle_result_record


def _with_node_limit(inputs: CycleInputs, p: ProposedNodeLimit, preview_id: UUID) -> CycleInputs:
    node_id = str(p.node_id)
    if node_id not in {n.node_id for n in inputs.nodes}:
        raise _unknown_node(p.node_id)
    kept = tuple(x for x in inputs.node_limits if not (x.node_id == node_id and x.constraint_type is p.constraint_type))
    proposed = NodeLimit(f"what-if:{preview_id}", inputs.microgrid.microgrid_id, node_id, p.constraint_type,
                         p.limit_watts, LimitSourceType.MANUAL)
    return dataclasses.replace(inputs, node_limits=(*kept, proposed))


def _checked(inputs: CycleInputs, envelope: OperatingEnvelope) -> OperatingEnvelope:
    problems = envelope_violations(envelope, inputs.microgrid.microgrid_id, [n.node_id for n in inputs.nodes])
    if problems:
        raise ApiError.invalid("; ".join(problems), violated_rule="envelope_valid_for_microgrid",
                               details={"problems": list(problems)}, reason_code=ReasonCode.ENVELOPE_INVALID)
    return envelope


def _with_envelope(inputs: CycleInputs, p: ProposedEnvelope, preview_id: UUID, now: datetime) -> CycleInputs:
    blocks = tuple(EnvelopeBlock(b.block_from, b.block_to, None, b.max_limit_watts, b.target_watts) for b in p.blocks)
    envelope = OperatingEnvelope(
        envelope_id=str(preview_id), microgrid_id=inputs.microgrid.microgrid_id, node_id=str(p.node_id),
        envelope_type=p.envelope_type, constraint_type=p.constraint_type,
        effective_from=min(b.block_from for b in blocks), effective_to=max(b.block_to for b in blocks),
        status=EnvelopeStatus.ACTIVE, blocks=blocks, source_ref=f"what-if:{preview_id}", received_at=now,
    )
    return dataclasses.replace(inputs, envelopes=(*inputs.envelopes, _checked(inputs, envelope)))


def _with_tou(inputs: CycleInputs, p: ProposedTouLimit, preview_id: UUID, now: datetime) -> CycleInputs:
    circuit_id = str(p.circuit_id)
    scope = resolve_circuit_alias(circuit_id, alias_rows(inputs.nodes, circuit_id), AliasScope.LIMIT)
    if isinstance(scope, AliasFailure):
        raise ApiError.invalid(
            f"circuit {p.circuit_id} does not resolve to one managed grid connection",
            violated_rule="circuit_alias_limit_scope",
            details={"candidates": list(scope.node_ids)},
            reason_code=scope.reason_code,
        )
    command = envelope_for_schedule(
        microgrid_id=UUID(inputs.microgrid.microgrid_id), node_id=UUID(scope.node_id),
        periods=[LegacyTouPeriod(start=x.start, end=x.end, limit_watts=x.limit_watts) for x in p.periods],
        source_ref=f"what-if:{preview_id}", submitted_by="what-if",
    )
    envelope = OperatingEnvelope(
        envelope_id=str(preview_id), microgrid_id=inputs.microgrid.microgrid_id, node_id=scope.node_id,
        envelope_type=command.envelope_type, constraint_type=command.constraint_type,
        effective_from=command.effective_from, effective_to=command.effective_to, status=EnvelopeStatus.ACTIVE,
        blocks=tuple(EnvelopeBlock(b.block_from, b.block_to, b.min_limit_watts, b.max_limit_watts, b.target_watts)
                     for b in command.blocks),
        source_ref=command.source_ref, received_at=now,
    )
    # A new schedule replaces the circuit's previous one (the adapter withdraws it), so it stops counting.
    replaced = f"legacy-tou:{p.circuit_id}:"
    kept = tuple(e for e in inputs.envelopes
                 if not (e.envelope_type is EnvelopeType.TOU_LIMIT and e.source_ref.startswith(replaced)))
    return dataclasses.replace(inputs, envelopes=(*kept, _checked(inputs, envelope)))


def _unknown_node(node_id: UUID) -> ApiError:
    return ApiError.invalid(f"node {node_id} is not a node of this microgrid", violated_rule="node_in_microgrid",
                            details={"node_id": str(node_id)})


def propose(inputs: CycleInputs, request: WhatIfRequest, preview_id: UUID) -> CycleInputs:
    """The current inputs with the proposed change applied (pure)."""
    if request.node_limit:
        return _with_node_limit(inputs, request.node_limit, preview_id)
    if request.envelope:
        return _with_envelope(inputs, request.envelope, preview_id, inputs.now)
    assert request.tou_limit is not None
    return _with_tou(inputs, request.tou_limit, preview_id, inputs.now)


def compare(before: CycleResult, after: CycleResult, names: dict[str, str]) -> list[ConnectorChange]:
    """Per connector: what it gets now and what it would get."""
    was = {n.node_id: n for n in before.allocation_summary.nodes if n.node_type is NodeType.CONNECTOR}
    changes = []
    for n in after.allocation_summary.nodes:
        if n.node_type is not NodeType.CONNECTOR:
            continue
        old = was[n.node_id].allocated_watts if n.node_id in was else 0
        delta = n.allocated_watts - old
        changes.append(ConnectorChange(
            node_id=UUID(n.node_id), name=names.get(n.node_id, n.node_id), requested_watts=n.requested_watts,
            before_watts=old, after_watts=n.allocated_watts, delta_watts=delta,
            change="GAINS" if delta > 0 else "LOSES" if delta < 0 else "SAME",
            binding_after=n.binding.constraint_ref if n.binding else None,
        ))
    return changes


def _sketch(result: CycleResult, inputs: CycleInputs, request: RebalanceRequestedPayload) -> CycleSketch:
    record = cycle_result_record(result, inputs=inputs, request=request, started_at=inputs.now, ended_at=inputs.now)
    return CycleSketch(
        outcome=record.outcome, reason_codes=record.reason_codes,
        total_requested_watts=record.allocation_summary.total_requested_watts,
        total_allocated_watts=record.allocation_summary.total_allocated_watts, breaches=record.breaches,
    )


async def what_if(
    pool: asyncpg.Pool,
    microgrid_id: UUID,
    request: WhatIfRequest,
    *,
    actor: str,
    now: datetime,
    settings: CycleSettings,
) -> WhatIfResponse:
    preview_id = uuid4()
    async with pool.acquire() as conn:
        state = await read_models.load_microgrid_state(conn, microgrid_id)
        if state.topology is None:
            raise ApiError.not_found(f"microgrid {microgrid_id} is not known to balancing")
        rotation = await cycles.next_rotation(conn, microgrid_id)
    rebalance = RebalanceRequestedPayload(
        microgrid_id=microgrid_id, source=RebalanceSource.OPERATOR_HTTP, correlation_id=f"what-if:{preview_id}",
        request_key=f"what-if:{preview_id}", requested_by=actor,
    )
    current = assemble_cycle_inputs(state=state, request=rebalance, cycle_id=preview_id, now=now, rotation=rotation,
                                    settings=settings)
    proposed = propose(current, request, preview_id)
    before, after = run_balancing_cycle(current), run_balancing_cycle(proposed)
    names = {n.node_id: n.name for n in current.nodes}
    response = WhatIfResponse(
        microgrid_id=microgrid_id, timestamp=now, preview_id=preview_id, kind=request.kind,
        before=_sketch(before, current, rebalance), after=_sketch(after, proposed, rebalance),
        connectors=compare(before, after, names),
    )
    await store.record_preview(
        pool, preview_id=preview_id, microgrid_id=microgrid_id, actor=actor, kind=request.kind,
        proposal=request.model_dump_json(exclude_none=True), inputs_digest=inputs_digest(proposed),
        outcome_before=before.outcome.value, outcome_after=after.outcome.value, previewed_at=now,
    )
    return response
