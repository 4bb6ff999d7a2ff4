"""Leaders' dashboard (HTML table, CSV, Excel) and the vector tiles behind large coverage maps."""

from __future__ import annotations

import io
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse, Response

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.limits import StrictJSONRoute
from api.routers import permission
from api.routers.maps import AreaQ, area_prefix
from gridmap.errors import NotFound
from gridmap.map_pages import DASHBOARD_COLUMNS, dashboard_page
from gridmap.stats import dashboard, grid_status
from gridmap.store.mapdata import area_frame, incident_frame, mvt_tile
from gridmap.store.staff import shortage

router = APIRouter(tags=["maps"], route_class=StrictJSONRoute)
LEVEL_NAMES = {"district": "区", "street": "街道", "community": "社区"}
EXPORT_OK = {
    "description": "the table as HTML, CSV (UTF-8 with BOM) or Excel",
    "content": {
        "text/html": {},
        "text/csv": {},
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {},
    },
}


@router.get("/dashboard", response_class=HTMLResponse, **permission("maps.dashboard", EXPORT_OK))
def dashboard_view(
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    level: Literal["district", "street", "community"] = "district",
    area: AreaQ = None,
    format: Literal["html", "csv", "xlsx"] = "html",
) -> Response:
    """Per district, street or community: grids, managers, mediators, volunteers, care-ratio
    compliance, incidents open/closed, median minutes to dispatch and on-site, mediation
    success. Sortable; ``format=csv|xlsx`` exports the same rows."""
    prefix, name = area_prefix(session, user, area)  # within the caller's scope
    status, _ = grid_status(
        shortage(session, level="grid", scope=prefix or None), k=settings.small_count_k
    )
    table = dashboard(status, incident_frame(session, prefix or None), level)
    table = table[table["code"].str.startswith(prefix)]
    names = area_frame(session, prefix)[["code", "name"]]
    table = table.merge(names, on="code", how="left")
    table = table[[c for c in DASHBOARD_COLUMNS if c in table.columns]]
    stem = f"dashboard-{level}-{prefix or 'city'}"
    if format == "csv":
        return Response(
            table.rename(columns=DASHBOARD_COLUMNS).to_csv(index=False).encode("utf-8-sig"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f"attachment; filename={stem}.csv"},
        )
    if format == "xlsx":
        buf = io.BytesIO()
        table.rename(columns=DASHBOARD_COLUMNS).to_excel(buf, index=False, sheet_name=level)
        return Response(
            buf.getvalue(),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f"attachment; filename={stem}.xlsx"},
        )
    query = f"&{urlencode({'area': area})}" if area else ""
    title = f"网格化管理概览 · {name} · 按{LEVEL_NAMES[level]}"
    return HTMLResponse(dashboard_page(table, level=level, title=title, query=query))


TILE = {
    "description": "Mapbox vector tile (may be empty)",
    "content": {"application/vnd.mapbox-vector-tile": {}},
}


@router.get("/tiles/{layer}/{z}/{x}/{y}.pbf", **permission("maps.tiles", TILE))
def tile(
    layer: Literal["grids", "areas"],
    z: Annotated[int, Path(ge=0, le=22)],
    x: Annotated[int, Path(ge=0)],
    y: Annotated[int, Path(ge=0)],
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    area: AreaQ = None,
) -> Response:
    """Grids (staffing and care-ratio status, staff counts; no care counts) or area outlines
    in the caller's scope, from ``ST_AsMVT``."""
    if x >= 2**z or y >= 2**z:
        raise NotFound(f"no tile {z}/{x}/{y}", code="tile-not-found")
    prefix, _ = area_prefix(session, user, area)
    data = mvt_tile(
        session, layer, z, x, y, prefix, fingerprint_max_age=settings.tile_fingerprint_s
    )
    return Response(
        data,
        media_type="application/vnd.mapbox-vector-tile",
        headers={"Cache-Control": "private, max-age=60"},
    )
