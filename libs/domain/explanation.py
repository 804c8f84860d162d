"""A short human explanation of a cycle result, for support and operators."""

from __future__ import annotations

from contracts.enums import ConstraintType, SourceMode
from libs.domain.allocation import AllocationState
from libs.domain.cycle_result import CycleResult


def explain_cycle(result: CycleResult) -> str:
    codes = ", ".join(c.value for c in result.reason_codes)
    scope = f" (subtree {result.node_id})" if result.node_id else ""
    lines = [
        f"Cycle {result.cycle_id} on microgrid {result.microgrid_id}{scope}, topology v{result.topology_version}: "
        f"{result.outcome.value}" + (f" [{codes}]" if codes else "") + "."
    ]
    if result.topology_violations:
        for v in result.topology_violations:
            lines.append(
                f"Topology rule {v.rule.value} broken by {', '.join(v.node_ids) or 'the microgrid'}: {v.detail}."
            )
    if result.expected_topology_version is not None and result.expected_topology_version != result.topology_version:
        lines.append(f"Expected topology v{result.expected_topology_version}, found v{result.topology_version}.")
    summary = result.allocation_summary
    if summary.nodes:
        lines.append(f"Allocated {summary.total_allocated_watts} W of {summary.total_requested_watts} W requested.")
    source: dict[tuple[str | None, ConstraintType], SourceMode] = {}
    for b in result.breaches:
        source[(b.node_id, b.constraint_type)] = b.source_mode
        where = f"node {b.node_id}" if b.node_id else "the aggregate"
        lines.append(
            f"{b.reason_code.value}: {b.constraint_type.value} on {where} is {b.resolved_limit_watts} W "
            f"({b.constraint_ref}); demand {b.effective_demand_watts} W exceeds it by {b.excess_watts} W "
            f"({b.source_mode.value})."
        )
    for node in summary.nodes:
        if node.state is AllocationState.CURTAILED and node.binding is not None:
            bnd = node.binding
            where = f"node {bnd.node_id}" if bnd.node_id else "the aggregate"
            mode = source.get((bnd.node_id, bnd.constraint_type), SourceMode.MEASURED)
            lines.append(
                f"Connector {node.node_id}: {node.allocated_watts} W of {node.requested_watts} W "
                f"(-{node.requested_watts - node.allocated_watts} W), bound by {bnd.constraint_type.value} "
                f"{bnd.limit_watts} W on {where} from {bnd.source.value} {bnd.constraint_ref}, "
                f"which left {max(0, bnd.headroom_watts)} W for controllable load (demand {mode.value})."
            )
        elif node.state is AllocationState.PAUSED and node.binding is not None:
            bnd = node.binding
            where = f"node {bnd.node_id}" if bnd.node_id else "the aggregate"
            lines.append(
                f"Connector {node.node_id}: paused at 0 W; its minimum {node.min_watts} W did not fit under "
                f"{bnd.constraint_type.value} {bnd.limit_watts} W on {where} ({bnd.constraint_ref})."
            )
    for res in result.demand_resolutions:
        if res.source_mode is SourceMode.FALLBACK_DERIVED and res.node_id is not None:
            lines.append(
                f"Telemetry for {res.node_id} ({res.role.value}) was {res.telemetry_state.value}: used "
                f"{res.effective_demand_watts} W from {res.fallback_basis.value if res.fallback_basis else 'fallback'} "
                f"(freshness threshold {res.freshness_threshold_seconds} s)."
            )
    if result.missing_inputs:
        lines.append(
            f"No usable telemetry and no fallback rule for {', '.join(result.missing_inputs)}: "
            f"{result.safe_action_taken}."
        )
    return "\n".join(lines)
