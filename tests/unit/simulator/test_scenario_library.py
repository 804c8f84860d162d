"""The scenario files: they load, and together they cover what the depot simulator must cover (FR-017)."""

from __future__ import annotations

from collections import Counter

import pytest

from simulator.depot import DEPOTS_DIR, load_depot
from simulator.scenario import library

pytestmark = pytest.mark.req("FR-017")

# The spec's "Edge Cases and Failure Modes", verbatim.
SPEC_EDGE_CASES = {
    "Reparent operation introduces a topology cycle.",
    "Node is detached from root (orphan).",
    "Aggregate cap breached while all individual nodes remain below local caps.",
    "Telemetry missing/stale for one or more nodes.",
    "Legacy circuit ID has no resolvable microgrid alias.",
    "Concurrent topology edits produce version conflict.",
}


def _actions() -> Counter[str]:
    return Counter(step.action_name for s in library() for step in s.steps)


def test_every_spec_edge_case_has_a_scenario() -> None:
    assert {s.edge_case for s in library() if s.edge_case} == SPEC_EDGE_CASES


def test_every_envelope_lifecycle_and_compatibility_path_is_played() -> None:
    envelopes = [step.envelope for s in library() for step in s.steps if step.envelope]
    assert {str(e.type) for e in envelopes} >= {"FORECAST", "FALLBACK", "OVERRIDE"}
    actions = _actions()
    assert actions["withdraw_envelope"] and actions["forecast_source"] and actions["tou_limits"]
    vias = {step.rebalance.via for s in library() for step in s.steps if step.rebalance}
    assert vias == {"operator", "legacy_event", "legacy_http", "scheduler_circuit", "scheduler_microgrid"}
    assert actions["depot_day"] >= 1


def test_every_depot_layout_is_used_and_valid() -> None:
    layouts = {p.stem for p in DEPOTS_DIR.glob("*.yaml")}
    assert {s.depot for s in library()} == layouts
    for name in layouts:
        layout = load_depot(name)
        assert layout.connectors(), name


def test_layouts_range_from_small_to_large_with_sources_and_virtual_nodes() -> None:
    types = {p.node.type for name in ("mixed-sources", "deep-tree") for p in load_depot(name).nodes()}
    assert {"POWER_SOURCE", "VIRTUAL", "CIRCUIT", "CHARGE_POINT", "CONNECTOR"} <= {str(t) for t in types}
    assert len(load_depot("two-grid-connections").managed_grid_connections()) == 2
    deep = load_depot("deep-tree")
    assert max(len(p.path) for p in deep.nodes()) >= 5  # grid connection, circuit, sub-circuit, CP, connector


def test_each_scenario_names_its_requirements_and_has_expectations() -> None:
    for s in library():
        assert s.requirements
        assert any(step.expect for step in s.steps), s.name
