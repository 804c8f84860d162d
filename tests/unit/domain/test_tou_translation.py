"""Legacy TOU schedule <-> TOU_LIMIT envelope keeps the schedule's meaning both ways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from pydantic import ValidationError

from contracts.api.compatibility_adapter import LegacyTouPeriod, LegacyTouSchedule
from contracts.enums import ConstraintType, EnvelopeStatus, EnvelopeType
from contracts.records import EnvelopeBlockRecord, OperatingEnvelopeRecord
from libs.domain.tou_translation import (
    envelope_for_schedule,
    periods_of_envelope,
    tou_source_ref,
)

T0 = datetime(2025, 3, 1, 0, tzinfo=UTC)


def period(start_h: int, end_h: int, watts: int) -> LegacyTouPeriod:
    return LegacyTouPeriod(start=T0 + timedelta(hours=start_h), end=T0 + timedelta(hours=end_h), limit_watts=watts)


@pytest.mark.req("FR-008")
def test_schedule_becomes_one_tou_envelope_whose_blocks_are_the_periods_and_back() -> None:
    periods = [period(17, 21, 40_000), period(6, 9, 60_000)]  # unordered, with a gap between
    mg, node = uuid4(), uuid4()
    command = envelope_for_schedule(microgrid_id=mg, node_id=node, periods=periods, source_ref="ref", submitted_by="i")
    assert (command.envelope_type, command.constraint_type) == (EnvelopeType.TOU_LIMIT, ConstraintType.CONSUMPTION_CAP)
    assert (command.effective_from, command.effective_to) == (T0 + timedelta(hours=6), T0 + timedelta(hours=21))
    assert [(b.block_from.hour, b.block_to.hour, b.max_limit_watts) for b in command.blocks] == [
        (6, 9, 60_000),
        (17, 21, 40_000),
    ]

    received = OperatingEnvelopeRecord(
        envelope_id=uuid4(),
        status=EnvelopeStatus.PENDING,
        received_at=T0,
        **command.model_dump(exclude={"submitted_by", "supersedes_source_refs"}),
    )
    assert periods_of_envelope(received) == sorted(periods, key=lambda p: p.start)


def test_read_back_uses_the_blocks_limit_value_target_first() -> None:
    envelope = OperatingEnvelopeRecord(
        envelope_id=uuid4(),
        microgrid_id=uuid4(),
        node_id=uuid4(),
        envelope_type=EnvelopeType.TOU_LIMIT,
        constraint_type=ConstraintType.CONSUMPTION_CAP,
        effective_from=T0,
        effective_to=T0 + timedelta(hours=3),
        source_ref="x",
        status=EnvelopeStatus.ACTIVE,
        received_at=T0,
        blocks=[
            EnvelopeBlockRecord(block_from=T0, block_to=T0 + timedelta(hours=1), max_limit_watts=9, target_watts=7),
            EnvelopeBlockRecord(
                block_from=T0 + timedelta(hours=1), block_to=T0 + timedelta(hours=2), min_limit_watts=3
            ),
        ],
    )
    assert [p.limit_watts for p in periods_of_envelope(envelope)] == [7]


@pytest.mark.req("NFR-005")
def test_source_ref_depends_on_circuit_revision_and_content_not_order() -> None:
    circuit = uuid4()
    a = [period(1, 2, 5), period(3, 4, 6)]
    assert tou_source_ref(circuit, 1, a) == tou_source_ref(circuit, 1, list(reversed(a)))
    assert tou_source_ref(circuit, 1, a) != tou_source_ref(circuit, 2, a)
    assert tou_source_ref(circuit, 1, a) != tou_source_ref(circuit, 1, [period(1, 2, 5)])
    assert tou_source_ref(circuit, 1, a) != tou_source_ref(uuid4(), 1, a)


def test_legacy_schedule_rejects_overlaps_and_empty_periods() -> None:
    with pytest.raises(ValidationError, match="overlap"):
        LegacyTouSchedule(periods=[period(1, 3, 5), period(2, 4, 5)])
    with pytest.raises(ValidationError, match="before its end"):
        period(3, 3, 5)
    LegacyTouSchedule(periods=[period(1, 2, 5), period(2, 3, 5)])  # touching is fine
