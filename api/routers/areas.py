"""Administrative areas (district ▸ street ▸ community) as RFC 7946 GeoJSON."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.limits import StrictJSONRoute
from api.routers import GEOJSON_OK, Offset, PageLimitOrAll, permission
from gridmap.errors import NotFound
from gridmap.store.areas import area_feature_collection, count_areas, get_area, list_areas

router = APIRouter(prefix="/api/v1/areas", tags=["areas"], route_class=StrictJSONRoute)
GEOJSON = "application/geo+json"
Code = Annotated[str, Path(pattern=r"^[0-9]{6,12}$", description="area code, 6–12 digits")]


@router.get("", **permission("areas.read", ok=GEOJSON_OK))
def areas(
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    level: Literal["district", "street", "community"] | None = None,
    parent: Annotated[str | None, Query(pattern=r"^[0-9]{6,12}$")] = None,
    limit: PageLimitOrAll = None,
    offset: Offset = 0,
) -> JSONResponse:
    """Areas within the caller's scope, filtered by level and parent code."""
    limit = min(limit or settings.max_page_size, settings.max_page_size)
    feats = list_areas(
        session, level=level, parent=parent, scope=user.area, limit=limit, offset=offset
    )
    total = count_areas(session, level=level, parent=parent, scope=user.area)
    body: dict[str, Any] = area_feature_collection(
        feats, numberMatched=total, numberReturned=len(feats)
    )
    return JSONResponse(body, media_type=GEOJSON)


@router.get("/{code}", **permission("areas.read", ok=GEOJSON_OK))
def area(code: Code, session: SessionDep, user: CurrentUser) -> JSONResponse:
    """One area as a GeoJSON Feature; 404 when unknown or outside the caller's scope."""
    feat = get_area(session, code, scope=user.area)
    if feat is None:
        raise NotFound(f"no area {code}", code="area-not-found")
    return JSONResponse(feat, media_type=GEOJSON)
