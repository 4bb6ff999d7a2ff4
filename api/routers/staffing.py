"""Staffing: run the optimal assignment (planners) and the shortage report (leaders)."""

from __future__ import annotations

import io
import json
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.limits import StrictJSONRoute
from api.routers import Body, permission
from gridmap.errors import PermissionDenied
from gridmap.staffing import Quotas
from gridmap.store.staff import run_assignment, shortage

router = APIRouter(prefix="/api/v1", tags=["staffing"], route_class=StrictJSONRoute)


class AssignmentIn(Body):
    keep_margin_m: float = Field(
        500.0, ge=0, le=50_000, description="move someone only if it saves more metres"
    )


@router.post("/assignments:run", **permission("assignments.run"))
def assignments(
    settings: SettingsDep, session: SessionDep, user: CurrentUser, body: AssignmentIn | None = None
) -> dict[str, Any]:
    """Post every person optimally (min-cost flow) and link care subjects to volunteers."""
    if user.area:
        raise PermissionDenied(
            "the city-wide assignment needs a user without an area scope", code="scope-too-narrow"
        )
    summary = run_assignment(
        session,
        user=user.name,
        keep_margin_m=(body.keep_margin_m if body else 500.0),
        quotas=Quotas.from_config(settings.quotas_config()),
    )
    session.commit()
    return summary


@router.get(
    "/reports/shortage",
    **permission(
        "reports.shortage",
        ok={
            "description": "the report",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                    "schema": {"type": "string", "format": "binary"}
                },
            },
        },
    ),
)
def shortage_report(
    session: SessionDep,
    user: CurrentUser,
    level: Literal["grid", "community", "street", "district"] = "district",
    format: Annotated[Literal["json", "csv", "xlsx"], Query()] = "json",
) -> Response:
    """Quota status (manager, mediators, legal staff, 1:5 care ratio) within the caller's
    area, as JSON, CSV or Excel. Counts only: no identities."""
    frame = shortage(session, level=level, scope=user.area)
    if format == "csv":
        return Response(
            frame.to_csv(index=False).encode("utf-8-sig"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f"attachment; filename=shortage-{level}.csv"},
        )
    if format == "xlsx":
        buf = io.BytesIO()
        frame.to_excel(buf, index=False)
        return Response(
            buf.getvalue(),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f"attachment; filename=shortage-{level}.xlsx"},
        )
    rows = json.loads(frame.replace([np.inf, -np.inf], np.nan).to_json(orient="records"))
    return JSONResponse({"level": level, "rows": rows})
