"""The one place where the domain's CycleResult becomes the spec's records (cycle result, breaches, demand)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contracts.base import encode_json
from contracts.enums import ConstraintType, CycleOutcome, SourceMode
from contracts.events import MAX_EMBEDDED_BREACHES, DemandResolvedPayload, RebalanceRequestedPayload
from contracts.records import CycleResultRecord
from libs.domain import ENGINE_VERSION, CycleInputs, CycleResult, EffectiveConstraint
from libs.domain.codec import to_jsonable
from libs.domain.cycle_result import LazyRecords
from libs.domain.limits import NodeLimit

# Which cap a node's allocation summary reports as its effective limit, first found wins.
_REPORTED_LIMIT = (ConstraintType.CONSUMPTION_CAP, ConstraintType.NET_CAP)


def cycle_record_document(
    result: CycleResult,
    *,
    inputs: CycleInputs,
    request: RebalanceRequestedPayload,
    started_at: datetime,
    ended_at: datetime,
) -> dict[str, Any]:
    """The Cycle Result Payload as plain JSON data, field for field in CycleResultRecord's order.

    `started_at`/`ended_at` are when the cycle ran (the decision used `now`). The one mapping from the
    domain's result to the record: the model (`cycle_result_record`) and the stored and published bytes
    (`encode_cycle`) are both made from it, so they can't drift apart (tests/unit/balancing hold them equal).
    """
    limits: dict[str, EffectiveConstraint] = {}
    for constraint_type in reversed(_REPORTED_LIMIT):
        for c in result.effective_constraints:
            if c.node_id is not None and c.constraint_type is constraint_type:
                limits[c.node_id] = c
    cycle_id = result.cycle_id
    return {
        "cycle_id": cycle_id,
        "microgrid_id": result.microgrid_id,
        "node_id": result.node_id or None,
        "topology_version": result.topology_version,
        "started_at": started_at.astimezone(UTC),
        "ended_at": ended_at.astimezone(UTC),
        "outcome": result.outcome,
        "reason_codes": list(result.reason_codes),
        "allocation_summary": {
            "total_allocated_watts": result.allocation_summary.total_allocated_watts,
            "total_requested_watts": result.allocation_summary.total_requested_watts,
            "by_node": [
                {
                    "node_id": node_id,
                    "node_type": node_type,
                    "allocated_watts": allocated,
                    "requested_watts": requested,
                    "effective_limit_watts": limits[node_id].limit_watts if node_id in limits else None,
                    "binding_constraint_ref": (
                        binding.constraint_ref if binding is not None
                        else limits[node_id].binding.ref if node_id in limits else None
                    ),
                }
                for node_id, node_type, requested, allocated, _, _, _, binding in _fields(
                    result.allocation_summary.nodes
                )
            ],
        },
        "breaches": [
            {
                "breach_id": breach_id,
                "microgrid_id": microgrid_id,
                "cycle_id": cycle_id,
                "node_id": node_id or None,
                "constraint_ref": constraint_ref,
                "constraint_type": constraint_type,
                "reason_code": reason_code,
                "effective_demand_watts": demand,
                "resolved_limit_watts": limit,
                "source_mode": source_mode,
                "detected_at": detected_at.astimezone(UTC),
            }
            for (
                breach_id, microgrid_id, node_id, constraint_type, constraint_ref, reason_code, demand, limit,
                source_mode, detected_at,
            ) in _fields(result.breaches)
        ],
        "breaches_total": None,
        "audit": {
            "actor": request.requested_by,
            "source": request.source,
            "correlation_id": request.correlation_id,
            "request_key": request.request_key,
            "policy_versions": policy_versions(inputs),
            "inputs_digest": result.inputs_digest,
        },
    }


def _fields(records: Sequence[Any]) -> Iterable[tuple[Any, ...]]:
    """Each record's field values, in field order: from the cycle's columns when it left them (no record
    built per node or breach), else from the records."""
    columns = records.columns() if isinstance(records, LazyRecords) else None
    if columns is not None:
        return zip(*columns, strict=True)
    return (tuple(getattr(r, f.name) for f in dataclasses.fields(r)) for r in records)


def cycle_result_record(
    result: CycleResult,
    *,
    inputs: CycleInputs,
    request: RebalanceRequestedPayload,
    started_at: datetime,
    ended_at: datetime,
) -> CycleResultRecord:
    """The Cycle Result Payload as its model (the what-if page, tests); the cycle itself uses `encode_cycle`."""
    document = cycle_record_document(result, inputs=inputs, request=request, started_at=started_at, ended_at=ended_at)
    return CycleResultRecord.model_validate_json(encode_json(document))


@dataclass(frozen=True)
class EncodedCycle:
    """A cycle's record serialised once for everything that stores or publishes it (issue 13: the hot path
    built and validated a model per node and breach, then wrote the same record three times)."""

    document: dict[str, Any]
    record_json: bytes  # the whole record: the cycles row
    breach_jsons: list[bytes]  # each breach record: its row and its constraint_breach_detected payload
    event_json: bytes  # cycle_completed's payload: the record with at most MAX_EMBEDDED_BREACHES breaches
    missing_inputs: tuple[str, ...] = ()  # scopes with no telemetry and no fallback (stored beside the record)

    @property
    def outcome(self) -> CycleOutcome:
        return CycleOutcome(self.document["outcome"])


def encode_cycle(document: dict[str, Any], missing_inputs: Sequence[str] = ()) -> EncodedCycle:
    breaches = document["breaches"]
    record_json = encode_json(document)
    if len(breaches) <= MAX_EMBEDDED_BREACHES:
        event_json = record_json
    else:
        event_json = encode_json(
            {**document, "breaches": breaches[:MAX_EMBEDDED_BREACHES], "breaches_total": len(breaches)}
        )
    return EncodedCycle(document, record_json, [encode_json(b) for b in breaches], event_json, tuple(missing_inputs))


def policy_versions(inputs: CycleInputs) -> dict[str, Any]:
    """References to the policy state the cycle used (the inputs themselves are stored with the cycle),
    and the engine version that decided it (replay compares against it)."""
    return {
        "engine_version": ENGINE_VERSION,
        "topology_version": inputs.microgrid.version,
        "node_limits": _node_limit_stamps(inputs.node_limits),
        "envelopes": {e.envelope_id: e.status.value for e in sorted(inputs.envelopes, key=lambda e: e.envelope_id)},
        "aggregate_caps": sorted({c.control_point_id for c in inputs.aggregate_caps}),
        "circuit_capacities": sorted(c.circuit_id for c in inputs.circuit_capacities),
        "freshness_threshold_seconds": inputs.freshness_threshold_seconds,
        "gap_policy": inputs.gap_policy.value,
    }


# The node limits' stamps by the identity of their tuple: the state cache hands a microgrid's cycles the
# same tuple until a limit changes, and a depot has hundreds of limits (read only: never mutate it).
_STAMPS: dict[int, tuple[tuple[NodeLimit, ...], dict[str, Any]]] = {}
_STAMPS_MAX = 4_096


def _node_limit_stamps(limits: Sequence[NodeLimit]) -> dict[str, Any]:
    if not isinstance(limits, tuple):  # a list may change under the same identity
        return _stamps_of(limits)
    hit = _STAMPS.get(id(limits))
    if hit is None or hit[0] is not limits:
        if len(_STAMPS) >= _STAMPS_MAX:
            _STAMPS.clear()
        hit = _STAMPS[id(limits)] = (limits, _stamps_of(limits))
    return hit[1]


def _stamps_of(limits: Sequence[NodeLimit]) -> dict[str, Any]:
    return {x.node_limit_id: to_jsonable(x.updated_at) for x in sorted(limits, key=_id)}


def _id(x: Any) -> str:
    return str(x.node_limit_id)


def demand_resolved_document(result: CycleResult) -> dict[str, Any]:
    """Demand resolution step: every checked scope with its source mode, inputs and threshold
    (DemandResolvedPayload's fields, as plain JSON data), read from the cycle's resolution columns when it
    left them (no record made per scope)."""
    used = []
    fallback = False
    for (
        node_id, role, source_mode, effective, telemetry_state, threshold, measured, observed_at, age, basis, rule,
        fail_safe,
    ) in _fields(result.demand_resolutions):
        used.append({
            "node_id": node_id or None,
            "source_mode": source_mode,
            "effective_demand_watts": effective,
            "measured_demand_watts": measured,
            "observed_at": observed_at.astimezone(UTC) if observed_at is not None else None,
            "freshness_threshold_seconds": threshold,
            # The enums as they are (str enums: orjson writes their values): `.value` is a Python-level
            # descriptor, three of them on each of a depot's ~110 scopes a cycle.
            "fallback_inputs": {
                "role": role,
                "telemetry_state": telemetry_state,
                "age_seconds": age,
                "fallback_basis": basis,
                "fallback_rule": to_jsonable(rule) if rule is not None else None,
                "fail_safe_limit_watts": fail_safe,
            },
        })
        fallback = fallback or source_mode is SourceMode.FALLBACK_DERIVED
    return {
        "microgrid_id": result.microgrid_id,
        "cycle_id": result.cycle_id,
        "source_mode": SourceMode.FALLBACK_DERIVED if fallback else SourceMode.MEASURED,
        "inputs_used": used,
    }


def demand_resolved_payload(result: CycleResult) -> DemandResolvedPayload:
    return DemandResolvedPayload.model_validate_json(encode_json(demand_resolved_document(result)))
