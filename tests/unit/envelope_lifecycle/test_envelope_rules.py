"""Pure parts of the envelope-lifecycle service: submission judgement, ids and digests, timers and the projection
scope (D-022). No infrastructure. Forecast-source health and the capacity basis are the domain's
(tests/unit/domain/test_forecast_health.py, test_circuit_capacity.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from contracts.enums import AssetType, EnvelopeStatus, NodeType, ReasonCode
from contracts.records import EnvelopeBlockRecord, LegacyCircuitRecord, MicrogridNodeRecord
from services.envelope_lifecycle.adapters.envelopes import StoredEnvelope
from services.envelope_lifecycle.adapters.timers import TimerKind
from services.envelope_lifecycle.projection import FeederScope, ScopeFailure, feeder_scope
from services.envelope_lifecycle.service import EnvelopeRule, _timers_after, judge_submission
from services.envelope_lifecycle.submission import EnvelopeSubmission

T0 = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
MG = uuid.uuid4()
NODE = uuid.uuid4()


def submission(**changes: object) -> EnvelopeSubmission:
    fields: dict[str, object] = {
        "microgrid_id": MG,
        "node_id": NODE,
        "origin_control_point_id": None,
        "envelope_type": "FORECAST",
        "constraint_type": "CONSUMPTION_CAP",
        "effective_from": T0,
        "effective_to": T0 + 2 * H,
        "source_ref": "upstream-1",
        "blocks": (EnvelopeBlockRecord(block_from=T0, block_to=T0 + H, target_watts=50_000),),
        "submitted_by": "adapter",
    }
    fields.update(changes)
    return EnvelopeSubmission(**fields)  # type: ignore[arg-type]


def blocks(*spans: tuple[int, int, int], **bounds: int) -> tuple[EnvelopeBlockRecord, ...]:
    return tuple(
        EnvelopeBlockRecord(block_from=T0 + a * H, block_to=T0 + b * H, target_watts=w, **bounds) for a, b, w in spans
    )


# ---- judgement of a submission --------------------------------------------------------------------------


@pytest.mark.req("FR-026")
def test_a_valid_submission_breaks_no_rule() -> None:
    assert judge_submission(submission(), node_known=True, now=T0) is None


@pytest.mark.req("FR-026", "FR-027")
@pytest.mark.parametrize(
    ("changes", "node_known", "rule"),
    [
        ({"envelope_type": "OSCP_FORECAST"}, True, EnvelopeRule.ENVELOPE_TYPE_KNOWN),
        ({"constraint_type": "KVA_CAP"}, True, EnvelopeRule.CONSTRAINT_TYPE_KNOWN),
        ({}, False, EnvelopeRule.TARGET_NODE_IN_MICROGRID),
        ({"blocks": blocks((0, 2, 5), (1, 2, 5))}, True, EnvelopeRule.ENVELOPE_INVARIANTS),  # overlap
        ({"blocks": blocks((1, 3, 5))}, True, EnvelopeRule.ENVELOPE_INVARIANTS),  # outside the window
        ({"blocks": blocks((0, 1, 70), max_limit_watts=60)}, True, EnvelopeRule.ENVELOPE_INVARIANTS),
        ({"blocks": blocks((0, 1, 10), min_limit_watts=20)}, True, EnvelopeRule.ENVELOPE_INVARIANTS),
        ({"effective_to": T0}, True, EnvelopeRule.ENVELOPE_INVARIANTS),  # empty window
    ],
)
def test_the_first_broken_rule_is_named(changes: dict[str, object], node_known: bool, rule: str) -> None:
    violation = judge_submission(submission(**changes), node_known=node_known, now=T0)
    assert violation is not None and violation.rule == rule and violation.message


def test_an_envelope_already_over_at_receipt_is_rejected() -> None:
    violation = judge_submission(submission(), node_known=True, now=T0 + 2 * H)
    assert violation is not None and violation.rule == EnvelopeRule.EFFECTIVE_WINDOW_NOT_ELAPSED


@pytest.mark.req("NFR-010")
def test_envelope_id_and_digest_follow_the_content_not_the_sender() -> None:
    a, b = submission(), submission(submitted_by="someone-else")
    assert a.envelope_id == b.envelope_id and a.digest() == b.digest()
    assert submission(source_ref="upstream-2").envelope_id != a.envelope_id
    assert submission(blocks=blocks((0, 1, 49_999))).digest() != a.digest()


# ---- timers --------------------------------------------------------------------------------------------


def stored(sub: EnvelopeSubmission) -> StoredEnvelope:
    return StoredEnvelope(
        envelope_id=sub.envelope_id,
        microgrid_id=MG,
        node_id=NODE,
        origin_control_point_id=None,
        envelope_type=sub.envelope_type,
        constraint_type=sub.constraint_type,
        effective_from=sub.effective_from,
        effective_to=sub.effective_to,
        source_ref=sub.source_ref,
        status=EnvelopeStatus.PENDING,
        received_at=T0,
        submission_digest=sub.digest(),
        submitted_by="adapter",
        blocks=sub.blocks,
    )


@pytest.mark.req("FR-032", "NFR-011")
def test_every_boundary_still_ahead_becomes_a_timer_and_the_window_end_is_the_expiry() -> None:
    env = stored(submission(effective_to=T0 + 4 * H, blocks=blocks((0, 1, 5), (2, 3, 6))))
    assert _timers_after(env, T0) == [
        (TimerKind.BLOCK_BOUNDARY, T0 + H),
        (TimerKind.BLOCK_BOUNDARY, T0 + 2 * H),
        (TimerKind.BLOCK_BOUNDARY, T0 + 3 * H),
        (TimerKind.EXPIRY, T0 + 4 * H),
    ]
    assert _timers_after(env, T0 + 2 * H) == [(TimerKind.BLOCK_BOUNDARY, T0 + 3 * H), (TimerKind.EXPIRY, T0 + 4 * H)]


# ---- the projection scope (D-022) ----------------------------------------------------------------------

CIRCUIT = uuid.uuid4()
FEEDER = LegacyCircuitRecord(
    circuit_id=CIRCUIT, depot_id=uuid.uuid4(), name="F1", default_capacity_watts=100, fail_safe_capacity_watts=40
)


def node(**changes: object) -> MicrogridNodeRecord:
    fields: dict[str, object] = {
        "node_id": NODE,
        "microgrid_id": MG,
        "name": "F1",
        "node_type": NodeType.GRID_CONNECTION,
        "attached_asset_type": AssetType.CIRCUIT,
        "attached_asset_id": CIRCUIT,
        "managed": True,
    }
    fields.update(changes)
    return MicrogridNodeRecord(**fields)  # type: ignore[arg-type]


@pytest.mark.req("FR-029")
def test_a_managed_grid_connection_projects_to_its_one_feeder_circuit() -> None:
    scope = feeder_scope(node(), nodes_on_circuit=[node()], circuit=FEEDER)
    assert isinstance(scope, FeederScope) and scope.circuit.circuit_id == CIRCUIT


@pytest.mark.req("FR-029")
def test_other_nodes_are_not_projection_scopes() -> None:
    assert feeder_scope(node(managed=False), nodes_on_circuit=[], circuit=FEEDER) is None
    branch = node(node_type=NodeType.CIRCUIT, parent_node_id=uuid.uuid4(), managed=True)
    assert feeder_scope(branch, nodes_on_circuit=[branch], circuit=FEEDER) is None
    assert feeder_scope(None, nodes_on_circuit=[], circuit=None) is None


@pytest.mark.req("FR-029")
@pytest.mark.parametrize(
    ("subject", "others", "circuit", "reason"),
    [
        (node(attached_asset_type=None, attached_asset_id=None), [], FEEDER, ReasonCode.LIMIT_SCOPE_TRANSLATION_FAILED),
        (
            node(),
            [node(node_id=uuid.uuid4(), parent_node_id=NODE, node_type=NodeType.CIRCUIT)],
            FEEDER,
            ReasonCode.LEGACY_POLICY_SCOPE_AMBIGUOUS,
        ),
        (node(), [], None, ReasonCode.LIMIT_SCOPE_TRANSLATION_FAILED),
        (node(), [], FEEDER.model_copy(update={"removed": True}), ReasonCode.LIMIT_SCOPE_TRANSLATION_FAILED),
        (
            node(),
            [],
            FEEDER.model_copy(update={"parent_circuit_id": uuid.uuid4()}),
            ReasonCode.LIMIT_SCOPE_TRANSLATION_FAILED,
        ),
    ],
    ids=["no-circuit", "ambiguous", "unknown-circuit", "removed-circuit", "not-a-feeder"],
)
def test_unmapped_or_ambiguous_scopes_fail_with_their_reason_code(
    subject: MicrogridNodeRecord,
    others: list[MicrogridNodeRecord],
    circuit: LegacyCircuitRecord | None,
    reason: ReasonCode,
) -> None:
    scope = feeder_scope(subject, nodes_on_circuit=others, circuit=circuit)
    assert isinstance(scope, ScopeFailure) and scope.reason_code is reason and scope.detail
