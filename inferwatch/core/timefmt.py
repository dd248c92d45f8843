"""Time as people and APIs read it: one RFC 3339 form (UTC, whole seconds, `Z`) for every report and log."""
from __future__ import annotations

from datetime import datetime, timezone


def iso(t: float | datetime | None, fraction: bool = False) -> str | None:
    """`2026-01-01T01:50:00Z` from unix seconds or an aware datetime; None stays None. `fraction` keeps
    microseconds when there are any (an alert's `startsAt`, which identifies it)."""
    if t is None:
        return None
    when = (t if isinstance(t, datetime) else datetime.fromtimestamp(t, timezone.utc)).astimezone(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if fraction and when.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def clock(t: float) -> str:
    """`01:50` (UTC): a chart axis label."""
    return datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M")
