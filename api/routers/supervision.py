"""Leaders' supervision report: per grid manager, actions, incidents handled, response times
and open caseload, with small-count suppression (no care-subject identities)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.limits import StrictJSONRoute
from api.routers import IsoDateTime, permission
from api.routers.maps import AreaQ, area_prefix
from gridmap.store.supervision import supervision_figures
from gridmap.supervision import supervision_row, window

router = APIRouter(prefix="/api/v1", tags=["reports"], route_class=StrictJSONRoute)


@router.get("/reports/supervision", **permission("reports.supervision"))
def supervision(
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    area: AreaQ = None,
    since: IsoDateTime | None = None,
    until: IsoDateTime | None = None,
) -> dict[str, Any]:
    """Per grid manager whose scope lies in ``area`` (default: the caller's scope): audited
    actions, incidents handled, incidents reported in their scope and how many got a response,
    median and 90th-percentile minutes from report to accepted/on-site, open caseload now.
    Incident counts below k show as "<k"; response times from fewer than k incidents are null."""
    prefix, name = area_prefix(session, user, area)
    start, end = window(since, until)
    k = settings.small_count_k
    rows = [supervision_row(r, k=k) for r in supervision_figures(session, prefix, start, end)]
    return {
        "area": prefix or None,
        "name": name,
        "since": start.isoformat(),
        "until": end.isoformat(),
        "k": k,
        "rows": rows,
    }
