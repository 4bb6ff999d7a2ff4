"""The supervision report leaders read: per grid manager, what they did and how fast incidents
in their scope got a response, with small-count suppression of the incident figures.

Incident counts describe residents (the parties of a dispute), so like every leader figure
they show as ``"<k"`` between 1 and k-1, and response times computed from fewer than k
incidents are withheld (``None``): a median of three incidents is nearly one person's case.
Counts of a manager's own actions describe the manager's work, which is what supervision is
for, and are shown as they are. Care subjects do not appear at all.

Examples
--------
>>> row = {"name": "gm", "scope": "420502", "actions": 4, "incident_actions": 2, "handled": 2,
...        "reported": 30, "responded": 12, "median_min": 41.04, "p90_min": 95.5,
...        "open_caseload": 3}
>>> out = supervision_row(row, k=11)
>>> out["handled"], out["responded"], out["median_response_min"], out["open_caseload"]
('<11', '12', 41.0, '<11')
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from gridmap.disclosure import display
from gridmap.errors import InvalidInput

__all__ = ["supervision_row", "window"]

DEFAULT_WINDOW = timedelta(days=30)

COUNTS = ("handled", "reported", "responded", "open_caseload")


def supervision_row(row: Mapping[str, Any], *, k: int) -> dict[str, Any]:
    """One manager's published figures (see the module docstring for what is suppressed)."""
    enough = int(row["responded"] or 0) >= k

    def minutes(v: Any) -> float | None:
        return round(float(v), 1) if enough and v is not None else None

    return {
        "grid_manager": row["name"],
        "scope": row["scope"],
        "actions": int(row["actions"]),
        "incident_actions": int(row["incident_actions"]),
        **{c: display(int(row[c] or 0), k) for c in COUNTS},
        "median_response_min": minutes(row["median_min"]),
        "p90_response_min": minutes(row["p90_min"]),
    }


def _aware(t: datetime | None) -> datetime | None:
    """Times without an offset are read as UTC (so they compare with aware ones)."""
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


def window(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    """[since, until): the last 30 days by default; an empty or reversed window is refused."""
    end = _aware(until) or datetime.now(UTC)
    try:
        start = _aware(since) or end - DEFAULT_WINDOW
    except OverflowError:  # until near year 1
        start = datetime.min.replace(tzinfo=UTC)
    if start >= end:
        raise InvalidInput("since must be earlier than until", code="empty-window")
    return start, end
