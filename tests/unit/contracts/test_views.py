"""Views (contracts.topics.VIEWS): a heavy message read for a few of its fields, the rest skipped unparsed
until the consumer asks for the whole message."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from contracts.enums import CycleOutcome, NodeType, ReasonCode, RebalanceSource
from contracts.events import CycleCompleted, CycleCompletedSummary
from contracts.records import (
    AllocationSummaryRecord,
    CycleAuditRecord,
    CycleResultRecord,
    NodeAllocationRecord,
)
from contracts.topics import BY_MESSAGE, VIEWS, subscribed_topic, topic_for


def _cycle_completed() -> CycleCompleted:
    now = datetime.now(UTC)
    nodes = [
        NodeAllocationRecord(node_id=uuid.uuid4(), node_type=NodeType.CONNECTOR, allocated_watts=7_000,
                             requested_watts=11_000)
        for _ in range(311)
    ]
    result = CycleResultRecord(
        cycle_id=uuid.uuid4(),
        microgrid_id=uuid.uuid4(),
        topology_version=3,
        started_at=now,
        ended_at=now,
        outcome=CycleOutcome.CURTAILED,
        reason_codes=[ReasonCode.NODE_CAP_EXCEEDED],
        allocation_summary=AllocationSummaryRecord(total_allocated_watts=1, total_requested_watts=2, by_node=nodes),
        audit=CycleAuditRecord(actor="a", source=RebalanceSource.LEGACY_ALIAS, correlation_id="corr-1",
                               request_key="legacy-http:x:y", inputs_digest="sha256:d"),
    )
    return CycleCompleted.create(result, producer="balancing", occurred_at=now)


def _fields(model: type[BaseModel], prefix: str = "") -> set[str]:
    out = set()
    for name, info in model.model_fields.items():
        out.add(prefix + name)
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out |= _fields(annotation, f"{prefix}{name}.")
    return out


@pytest.mark.parametrize("view", list(VIEWS))
def test_a_view_names_only_fields_of_its_topics_model(view: type) -> None:
    model = VIEWS[view].message
    assert _fields(view) <= _fields(model)
    assert view.EVENT_TYPE == model.EVENT_TYPE


def test_a_view_is_subscribed_to_its_topic_and_never_published() -> None:
    assert subscribed_topic(CycleCompletedSummary) is BY_MESSAGE[CycleCompleted]
    with pytest.raises(KeyError):
        topic_for(CycleCompletedSummary)


def test_the_summary_reads_the_keys_and_completes_to_the_whole_message() -> None:
    message = _cycle_completed()

    summary = CycleCompletedSummary.decode(message.to_bytes())

    assert (summary.event_id, summary.correlation_id) == (message.event_id, message.correlation_id)
    assert (summary.payload.cycle_id, summary.payload.microgrid_id) == (
        message.payload.cycle_id,
        message.payload.microgrid_id,
    )
    assert summary.payload.audit.request_key == "legacy-http:x:y"
    assert summary.complete() == message


def test_what_the_summary_skips_is_validated_when_completed() -> None:
    raw: dict[str, Any] = json.loads(_cycle_completed().to_bytes())
    raw["payload"]["allocation_summary"]["by_node"][0]["allocated_watts"] = "lots"

    summary = CycleCompletedSummary.decode(json.dumps(raw).encode())  # its own fields are valid

    with pytest.raises(ValidationError):
        summary.complete()


def test_the_summarys_own_fields_are_validated_on_receipt() -> None:
    raw: dict[str, Any] = json.loads(_cycle_completed().to_bytes())
    del raw["payload"]["audit"]["correlation_id"]

    with pytest.raises(ValidationError):
        CycleCompletedSummary.decode(json.dumps(raw))
