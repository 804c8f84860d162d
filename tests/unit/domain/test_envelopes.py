from dataclasses import replace
from datetime import timedelta

import pytest

from contracts.enums import EnvelopeStatus, EnvelopeType
from libs.domain.envelope_lifecycle import acceptance_status, evaluate_lifecycle, lifecycle_boundaries
from libs.domain.envelopes import LIVE_STATUSES, TERMINAL_STATUSES, EnvelopeBlock, envelope_violations
from tests.unit.domain.scenario import MG, NOW, envelope

MIN = timedelta(minutes=1)


def test_block_limit_is_target_when_present_else_max_and_min_is_not_enforced():
    assert EnvelopeBlock(NOW, NOW + MIN, min_limit_watts=5, max_limit_watts=100, target_watts=80).limit_watts == 80
    assert EnvelopeBlock(NOW, NOW + MIN, min_limit_watts=5, max_limit_watts=100).limit_watts == 100
    assert EnvelopeBlock(NOW, NOW + MIN, min_limit_watts=5).limit_watts is None


@pytest.mark.req("FR-027")
def test_envelope_binds_only_while_live_in_window_and_a_block_covers_now():
    env = envelope("e1", "gc1", EnvelopeType.TOU_LIMIT, (-10, 0, 50), (0, 10, 40), (0, 5, 30))
    assert env.limit_at(NOW) == 30  # overlapping covering blocks: the lowest
    assert env.limit_at(NOW + 7 * MIN) == 40
    assert env.limit_at(NOW + 10 * MIN) is None  # block_to is exclusive
    # PENDING whose block has begun binds (its start timer is only late); terminal statuses never do.
    assert replace(env, status=EnvelopeStatus.PENDING).limit_at(NOW) == 30
    for status in (EnvelopeStatus.WITHDRAWN, EnvelopeStatus.REJECTED, EnvelopeStatus.EXPIRED):
        assert replace(env, status=status).limit_at(NOW) is None
    # An ACTIVE envelope whose window has ended no longer binds, even before its expiry timer runs.
    assert replace(env, effective_to=NOW).limit_at(NOW) is None


def test_envelope_validation_names_each_problem():
    good = envelope("e1", "gc1", EnvelopeType.FORECAST, (0, 30, 100))
    assert envelope_violations(good, MG, ["gc1"]) == ()
    bad = replace(
        good,
        node_id="ghost",
        blocks=(
            EnvelopeBlock(NOW, NOW + 30 * MIN, min_limit_watts=50, max_limit_watts=10),
            EnvelopeBlock(NOW + 10 * MIN, NOW + 500 * MIN, target_watts=-1),
        ),
    )
    problems = " | ".join(envelope_violations(bad, MG, ["gc1"]))
    for fragment in ("not a node", "min_limit_watts above", "outside the envelope window", "overlaps", "negative"):
        assert fragment in problems


@pytest.mark.req("NFR-011")
def test_scheduled_lifecycle_evaluation_is_deterministic_and_moves_forward_only():
    env = replace(
        envelope("e1", "gc1", EnvelopeType.TOU_LIMIT, (0, 30, 70), (30, 60, 60), window=(0, 60)),
        status=EnvelopeStatus.PENDING,
    )
    boundaries = lifecycle_boundaries(env)
    assert boundaries == (NOW, NOW + 30 * MIN, NOW + 60 * MIN)
    seen = [evaluate_lifecycle(env, at) for at in (NOW - MIN, *boundaries)]
    assert [e.status for e in seen] == [
        EnvelopeStatus.PENDING,
        EnvelopeStatus.ACTIVE,
        EnvelopeStatus.ACTIVE,
        EnvelopeStatus.EXPIRED,
    ]
    assert [e.limit_watts for e in seen] == [None, 70, 60, None]
    assert seen == [evaluate_lifecycle(env, at) for at in (NOW - MIN, *boundaries)]  # same inputs, same answer
    withdrawn = replace(env, status=EnvelopeStatus.WITHDRAWN)
    assert evaluate_lifecycle(withdrawn, NOW).status is EnvelopeStatus.WITHDRAWN


@pytest.mark.req("FR-032")
def test_an_accepted_envelope_is_stored_as_its_evaluation_at_receipt():
    env = envelope("e1", "gc1", EnvelopeType.TOU_LIMIT, (0, 30, 70), window=(0, 60))  # whatever status it carries
    assert acceptance_status(env, NOW - MIN) is EnvelopeStatus.PENDING
    assert acceptance_status(env, NOW) is EnvelopeStatus.ACTIVE  # its window starts at receipt
    assert acceptance_status(env, NOW + 59 * MIN) is EnvelopeStatus.ACTIVE
    assert acceptance_status(replace(env, status=EnvelopeStatus.REJECTED), NOW) is EnvelopeStatus.ACTIVE  # re-judged


def test_every_status_is_either_live_or_terminal():
    assert set(LIVE_STATUSES) == {EnvelopeStatus.PENDING, EnvelopeStatus.ACTIVE}
    assert set(TERMINAL_STATUSES) == set(EnvelopeStatus) - set(LIVE_STATUSES)
    live = envelope("e1", "gc1", EnvelopeType.OVERRIDE, (0, 30, 70))
    assert [replace(live, status=s).is_live for s in EnvelopeStatus] == [s in LIVE_STATUSES for s in EnvelopeStatus]
