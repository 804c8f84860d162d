"""Capability status: append-only ingest, the latest-status projection and history reads (D-017).

An accepted status event is appended (never updated or deleted: the database refuses it too), folded
into the projection and published as `microgrid.capability_status.recorded`, in one transaction.
Ingest is idempotent by `source_event_ref` within a microgrid: a replay returns the original event
and records nothing (NFR-009).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from contracts.api.topology import DepotStatusEventInput, StatusEventInput, StatusEventRecorded, StatusHistoryPage
from contracts.enums import ReasonCode
from contracts.events import CapabilityStatusRecorded
from contracts.records import CapabilityStatusEventRecord, CapabilityStatusProjectionRecord
from libs.platform.messaging.unit_of_work import UnitOfWork
from services.topology.adapters import control_point_store, microgrid_store, status_store
from services.topology.authoring import Authoring
from services.topology.capability_status import (
    freshness_seconds,
    normalise_operational_status,
    observed_in_the_future,
)
from services.topology.service import NotFound, Rejected, Violation, invalid

DEFAULT_MAX_CLOCK_SKEW = timedelta(minutes=5)


async def record_status_event(
    *,
    uow: UnitOfWork,
    microgrid_id: UUID,
    control_point_id: UUID,
    request: StatusEventInput,
    by: Authoring,
    max_clock_skew: timedelta = DEFAULT_MAX_CLOCK_SKEW,
) -> StatusEventRecorded:
    conn = uow.conn
    if observed_in_the_future(request.observed_at, by.now, max_clock_skew):
        raise _rejected(
            "STATUS_EVENT_OBSERVED_IN_FUTURE",
            ("observed_at",),
            f"observed_at is more than {max_clock_skew.total_seconds():g} s ahead of the service clock",
        )
    if await microgrid_store.get_microgrid(conn, microgrid_id) is None:
        raise NotFound(f"Microgrid {microgrid_id} not found")
    original = await status_store.event_by_source_ref(conn, microgrid_id, request.source_event_ref)
    if original is not None:
        return StatusEventRecorded(event=original, replayed=True)
    control_point = await control_point_store.get_control_point(conn, control_point_id, lock=True)
    reference = (str(control_point_id),)
    if control_point is None or control_point.microgrid_id != microgrid_id:
        raise _rejected(
            "STATUS_EVENT_UNKNOWN_CONTROL_POINT",
            reference,
            "a status event must reference an existing control point of the same microgrid (FR-023)",
        )
    if not control_point.active:
        raise _rejected("STATUS_EVENT_INACTIVE_CONTROL_POINT", reference, "the control point is no longer active")
    status, detail = normalise_operational_status(request.operational_status, request.status_detail)
    event = CapabilityStatusEventRecord(
        status_event_id=uuid.uuid4(),
        microgrid_id=microgrid_id,
        control_point_id=control_point_id,
        node_id=control_point.node_id,
        capability_type=control_point.capability_type,
        operational_status=status,
        reported_by=request.reported_by or control_point.control_source,
        observed_at=request.observed_at,
        ingested_at=by.now,
        source_event_ref=request.source_event_ref,
        status_detail=detail,
    )
    seq = await status_store.append_event(conn, event)
    if seq is None:  # a concurrent ingest of the same source_event_ref committed first
        original = await status_store.event_by_source_ref(conn, microgrid_id, request.source_event_ref)
        assert original is not None
        return StatusEventRecorded(event=original, replayed=True)
    await status_store.apply_to_projection(conn, [seq])
    await uow.publish(by.event(CapabilityStatusRecorded, event))
    return StatusEventRecorded(event=event, replayed=False)


async def record_depot_status_event(
    *,
    uow: UnitOfWork,
    depot_id: UUID,
    request: DepotStatusEventInput,
    by: Authoring,
    max_clock_skew: timedelta = DEFAULT_MAX_CLOCK_SKEW,
) -> tuple[UUID, StatusEventRecorded]:
    """Whole-microgrid status for the depot's microgrid: by control_point_id or by capability_type."""
    microgrid = await microgrid_store.get_microgrid_of_depot(uow.conn, depot_id)
    if microgrid is None:
        raise NotFound(f"Depot {depot_id} has no microgrid (resync it first)")
    control_point_id = request.control_point_id
    if control_point_id is None:
        if request.capability_type is None:
            raise _rejected("STATUS_EVENT_TARGET_MISSING", (), "give control_point_id or capability_type")
        found = await control_point_store.active_control_point_for_scope(
            uow.conn, microgrid.microgrid_id, None, request.capability_type
        )
        if found is None:
            raise _rejected(
                "STATUS_EVENT_UNKNOWN_CONTROL_POINT",
                (),
                f"no active whole-microgrid {request.capability_type.value} control point",
            )
        control_point_id = found.control_point_id
    else:
        named = await control_point_store.get_control_point(uow.conn, control_point_id)
        if named is not None and named.node_id is not None:
            raise _rejected(
                "STATUS_EVENT_NOT_WHOLE_MICROGRID",
                (str(control_point_id),),
                "the depot route records whole-microgrid status; node-scoped points use the microgrid route",
            )
    body = StatusEventInput(**request.model_dump(exclude={"control_point_id", "capability_type"}))
    recorded = await record_status_event(
        uow=uow,
        microgrid_id=microgrid.microgrid_id,
        control_point_id=control_point_id,
        request=body,
        by=by,
        max_clock_skew=max_clock_skew,
    )
    return microgrid.microgrid_id, recorded


def _rejected(rule: str, refs: tuple[str, ...], detail: str) -> Rejected:
    return invalid("Status event rejected", [Violation(rule, refs, detail)], ReasonCode.VALIDATION_FAILED)


def projection_record(row: dict[str, Any], now: datetime) -> CapabilityStatusProjectionRecord:
    """A stored projection row as the read model, with freshness computed at read time (NFR-008)."""
    return CapabilityStatusProjectionRecord(
        microgrid_id=row["microgrid_id"],
        control_point_id=row["control_point_id"],
        node_id=row["node_id"],
        capability_type=row["capability_type"],
        latest_operational_status=row["latest_operational_status"],
        reported_by=row["reported_by"],
        last_observed_at=row["last_observed_at"],
        last_ingested_at=row["last_ingested_at"],
        freshness_seconds=freshness_seconds(row["last_observed_at"], now),
        status_detail=row["status_detail"],
    )


# ---- history -----------------------------------------------------------------------------------


def encode_cursor(observed_at: datetime, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{observed_at.isoformat()}|{seq}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        observed, seq = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        at, position = datetime.fromisoformat(observed), int(seq)
        # Only what encode_cursor writes: an aware instant and a bigint sequence number.
        if at.tzinfo is None or not 0 <= position < 2**63:
            raise ValueError("cursor out of range")
        return at, position
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid(
            "Bad cursor",
            [Violation("CURSOR_INVALID", (), "cursor is not one this API returned")],
            ReasonCode.VALIDATION_FAILED,
        ) from None


async def status_history(
    *,
    conn: asyncpg.Connection,
    microgrid_id: UUID,
    control_point_id: UUID,
    observed_from: datetime | None,
    observed_to: datetime | None,
    cursor: str | None,
    limit: int,
) -> StatusHistoryPage:
    control_point = await control_point_store.get_control_point(conn, control_point_id)
    if control_point is None or control_point.microgrid_id != microgrid_id:
        raise NotFound(f"Control point {control_point_id} not found in microgrid {microgrid_id}")
    rows = await status_store.history(
        conn,
        control_point_id,
        observed_from=observed_from,
        observed_to=observed_to,
        after=decode_cursor(cursor) if cursor else None,
        limit=limit + 1,  # one more tells whether another page follows
    )
    page = rows[:limit]
    more = len(rows) > limit
    return StatusHistoryPage(
        events=[e for e, _ in page],
        next_cursor=encode_cursor(page[-1][0].observed_at, page[-1][1]) if more else None,
    )
