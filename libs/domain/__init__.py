"""The microgrid domain core: pure, synchronous, deterministic (no I/O, no clock; ``now`` is passed in).

Module map (read top to bottom to follow one balancing cycle):

- ``topology``            Microgrid, MicrogridNode; the tree invariants (`validate_topology`) and
                          `TopologyIndex` (preorder walk, subtree ranges) the cycle runs on.
- ``topology_edits``      a whole new node set, accepted all-or-nothing against the authored
                          version (`replace_topology`).
- ``circuit_alias``       legacy circuit_id -> node, per door (`resolve_circuit_alias`, `alias_rows`).
- ``limits``              NodeLimit, AggregateCap (from the LOAD_BALANCING control point's
                          local_config), ConstraintSource / ConstraintCandidate provenance.
- ``envelopes``           OperatingEnvelope, EnvelopeBlock, what "active at now" means, validation.
- ``envelope_lifecycle``  scheduled PENDING -> ACTIVE -> EXPIRED evaluation and timer boundaries.
- ``circuit_capacity``    forecast / fallback / gap / fail-safe then TOU and overrides;
                          `resolve_effective_circuit_capacity` (services wrap it as
                          get_effective_circuit_capacity).
- ``effective_constraints`` most restrictive limit per node and constraint type, with provenance.
- ``demand``              TelemetryReading, FallbackRule; measured-first demand resolution.
- ``physical_view``       per node: caps, uncontrolled load, generation, headroom (tree view).
- ``allocation``          max-min fair water-filling under nested caps, minimums, priorities, weights.
- ``cycle_inputs`` / ``cycle_result``  the cycle's input and output records.
- ``cycle``               `run_balancing_cycle(inputs) -> CycleResult`.
- ``engine``              `ENGINE_VERSION`: which rules made a cycle (recorded with every stored one).
- ``collection_view``     resource sets and `validate_candidate_allocation` (FR-018, FR-019).
- ``explanation``         `explain_cycle(result)`: a short human account of a result.
- ``codec``               canonical JSON (`to_canonical_json`), `cycle_inputs_to_dict` /
                          `cycle_inputs_from_dict`, `inputs_digest`.
- ``cycle_output``        a cycle's stored output bytes (`encode_cycle_output`: the canonical JSON
                          with its node allocations and demand resolutions as tables).

All power values are integer watts; all times are timezone-aware UTC datetimes.
"""

from libs.domain.allocation import AllocationState
from libs.domain.circuit_alias import AliasFailure, AliasScope, AliasTarget, alias_rows, resolve_circuit_alias
from libs.domain.circuit_capacity import (
    CircuitCapacity,
    CircuitCapacityResolution,
    ForecastBasis,
    ForecastSource,
    GapPolicy,
    resolve_effective_circuit_capacity,
)
from libs.domain.codec import (
    cycle_inputs_from_dict,
    cycle_inputs_to_dict,
    from_jsonable,
    inputs_digest,
    to_canonical_json,
    to_jsonable,
)
from libs.domain.collection_view import (
    CandidateValidation,
    ResourceQuery,
    ResourceSet,
    select_resources,
    validate_candidate_allocation,
)
from libs.domain.cycle import run_balancing_cycle
from libs.domain.cycle_inputs import ConnectorDemand, CycleInputs
from libs.domain.cycle_output import decode_cycle_output, encode_cycle_output, is_tabular
from libs.domain.cycle_result import AllocationSummary, Binding, Breach, CycleResult, NodeAllocation
from libs.domain.demand import DemandResolution, FallbackRule, TelemetryReading
from libs.domain.effective_constraints import EffectiveConstraint, managed_circuit_id
from libs.domain.engine import ENGINE_VERSION, UNVERSIONED_ENGINE
from libs.domain.envelope_lifecycle import evaluate_lifecycle, lifecycle_boundaries
from libs.domain.envelopes import EnvelopeBlock, OperatingEnvelope, envelope_violations
from libs.domain.explanation import explain_cycle
from libs.domain.limits import AggregateCap, NodeLimit, aggregate_caps_from_local_config
from libs.domain.topology import Microgrid, MicrogridNode, TopologyRule, TopologyViolation, validate_topology
from libs.domain.topology_edits import TopologyEditResult, replace_topology

__all__ = [
    "AggregateCap",
    "AliasFailure",
    "AliasScope",
    "AliasTarget",
    "AllocationState",
    "AllocationSummary",
    "Binding",
    "Breach",
    "CandidateValidation",
    "CircuitCapacity",
    "CircuitCapacityResolution",
    "ConnectorDemand",
    "CycleInputs",
    "CycleResult",
    "DemandResolution",
    "ENGINE_VERSION",
    "EffectiveConstraint",
    "EnvelopeBlock",
    "FallbackRule",
    "ForecastBasis",
    "ForecastSource",
    "GapPolicy",
    "Microgrid",
    "MicrogridNode",
    "NodeAllocation",
    "NodeLimit",
    "OperatingEnvelope",
    "ResourceQuery",
    "ResourceSet",
    "TelemetryReading",
    "TopologyEditResult",
    "TopologyRule",
    "TopologyViolation",
    "UNVERSIONED_ENGINE",
    "aggregate_caps_from_local_config",
    "cycle_inputs_from_dict",
    "decode_cycle_output",
    "encode_cycle_output",
    "is_tabular",
    "cycle_inputs_to_dict",
    "envelope_violations",
    "evaluate_lifecycle",
    "explain_cycle",
    "from_jsonable",
    "inputs_digest",
    "lifecycle_boundaries",
    "managed_circuit_id",
    "replace_topology",
    "alias_rows",
    "resolve_circuit_alias",
    "resolve_effective_circuit_capacity",
    "run_balancing_cycle",
    "select_resources",
    "to_canonical_json",
    "to_jsonable",
    "validate_candidate_allocation",
    "validate_topology",
]
