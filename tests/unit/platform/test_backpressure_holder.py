"""Backpressure's decision: hold above the high mark, release at the low one, never hold on a guess."""

from __future__ import annotations

import pytest

from libs.platform.messaging.backpressure import Holder
from services.compatibility_adapter.settings import CompatibilityAdapterSettings


def test_holds_from_the_high_mark_until_the_low_one() -> None:
    holder = Holder(high=200, low=50)
    assert [holder.update(b) for b in (0, 199, 200, 120, 51, 50, 120, 250)] == [
        False, False, True, True, True, False, False, True,
    ]


def test_without_a_fresh_report_from_downstream_nothing_is_held() -> None:
    holder = Holder(high=200, low=50)
    assert holder.update(500) is True
    assert holder.update(None) is False


def test_marks_must_leave_room_between_them() -> None:
    with pytest.raises(ValueError):
        Holder(high=50, low=50)
    with pytest.raises(ValueError, match="compat_backpressure_low"):
        CompatibilityAdapterSettings(compat_backpressure_high=100, compat_backpressure_low=100)
    assert CompatibilityAdapterSettings(compat_backpressure_high=0, compat_backpressure_low=100)  # off
