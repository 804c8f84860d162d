"""The test helpers' polling: a wait ends when its condition holds, whatever the value that satisfied it."""

from __future__ import annotations

import pytest

from tests.support import TopicReader


def _reader_seeing(records: list) -> TopicReader:
    reader = TopicReader.__new__(TopicReader)  # no consumer: only the polling is under test

    async def poll() -> list:
        reader.records = list(records)
        return reader.records

    reader.poll = poll  # type: ignore[method-assign]
    return reader


async def test_a_wait_met_by_no_records_ends_with_none() -> None:
    # The outbox relay test waits for "the events outside the failing batch", none when all five fell in it
    # (1 run in 81): the wait used to take an empty list for "not yet" and time out.
    assert await _reader_seeing([]).wait_for(lambda rs: len(rs) >= 0, timeout=1.0) == []


async def test_a_wait_returns_the_records_that_met_it_and_fails_past_its_deadline() -> None:
    assert await _reader_seeing([1, 2]).wait_for(lambda rs: len(rs) == 2, timeout=1.0) == [1, 2]
    with pytest.raises(AssertionError, match="not met"):
        await _reader_seeing([1]).wait_for(lambda rs: len(rs) == 2, timeout=0.2)
