"""Capability status rules (pure): normalising raw controller values and the projection's freshness.

External controllers often report a capability as a bare boolean. It is stored as the stable
operational status ON / OFF, and the raw value is kept in `status_detail` (spec: CapabilityStatusProjection).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

RAW_STATUS_DETAIL_KEY = "raw_operational_status"


def normalise_operational_status(
    raw: bool | str, status_detail: dict[str, Any] | None
) -> tuple[str, dict[str, Any] | None]:
    """(operational_status, status_detail): a boolean becomes ON/OFF with the raw value kept in the detail."""
    if isinstance(raw, bool):
        return ("ON" if raw else "OFF"), {**(status_detail or {}), RAW_STATUS_DETAIL_KEY: raw}
    return raw, status_detail


def observed_in_the_future(observed_at: datetime, now: datetime, max_clock_skew: timedelta) -> bool:
    """An observation dated beyond the allowed clock skew cannot have happened yet: it is refused."""
    return observed_at - now > max_clock_skew


def freshness_seconds(last_observed_at: datetime, now: datetime) -> int:
    """Whole seconds since the latest observation, computed at read time; never negative."""
    return max(0, math.floor((now - last_observed_at).total_seconds()))
