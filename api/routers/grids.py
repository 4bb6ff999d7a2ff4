"""Grids: run the gridding into a draft (planners), publish it, read grids as GeoJSON."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import Field, model_validator

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.limits import StrictJSONRoute
from api.routers import GEOJSON_OK, Body, Offset, PageLimitOrAll, permission
from gridmap.store.grids import grids_geojson, run_gridding, select_communities
from gridmap.store.history import parse_at, publish_draft

router = APIRouter(prefix="/api/v1", tags=["grids"], route_class=StrictJSONRoute)
CodeQ = Annotated[str | None, Query(pattern=r"^[0-9]{6,12}$")]


class GriddingRequest(Body):
    """Which communities to grid and the target; exactly one of community/district/all."""

    community: str | None = Field(None, pattern=r"^[0-9]{12}$")
    district: str | None = Field(None, pattern=r"^[0-9]{6,9}$")
    all: bool = False
    # bounds that keep one request to seconds of work: a grid of a handful of households is
    # no grid (1 per grid, found by fuzzing, kept a worker busy for minutes), and no community
    # needs hundreds of grids (Yichang's largest has 15)
    households_per_grid: float | None = Field(None, ge=20, le=100_000)
    grids: int | None = Field(None, ge=1, le=200)
    # where the targets conflict (gridmap.gridding_prefs): even households, streets or shapes
    prefer: Literal["balance", "streets", "compact"] | None = None

    @model_validator(mode="after")
    def _one_target(self) -> GriddingRequest:
        chosen = [self.community is not None, self.district is not None, self.all]
        if sum(chosen) != 1:
            raise ValueError("name exactly one of community, district or all")
        if self.households_per_grid is not None and self.grids is not None:
            raise ValueError("give households_per_grid or grids, not both")
        return self


@router.post("/gridding", status_code=201, **permission("gridding.run"))
def gridding(body: GriddingRequest, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """Split the chosen communities into grids, stored as a draft; returns id and quality."""
    communities = select_communities(
        session, community=body.community, district=body.district, scope=user.area
    )
    result = run_gridding(
        session,
        communities,
        user=user.name,
        households_per_grid=body.households_per_grid,
        n_grids=body.grids,
        prefer=body.prefer,
    )
    session.commit()
    quality = {k: v for k, v in result.quality.items() if k != "per_community"}
    return {
        "version": result.version_id,
        "status": "draft",
        "communities": result.communities,
        "grids": result.grids,
        "quality": quality,
    }


@router.post("/grid-versions/{version_id}/publish", **permission("grids.publish"))
def publish(version_id: int, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """Make a draft the current grids of its communities."""
    vid = publish_draft(session, version_id, user=user.name, scope=user.area)
    session.commit()
    return {"version": vid, "status": "published"}


@router.get("/grids", **permission("grids.read", ok=GEOJSON_OK))
def grids(
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    community: CodeQ = None,
    version: Annotated[int | None, Query(ge=1)] = None,
    limit: PageLimitOrAll = None,
    offset: Offset = 0,
    at: Annotated[
        str | None, Query(max_length=40, description="ISO 8601 time: grids as of then")
    ] = None,
) -> JSONResponse:
    """Current grids (or one version's, or those valid at ``at``) as GeoJSON, in scope."""
    limit = min(limit or settings.max_page_size, settings.max_page_size)
    body = grids_geojson(
        session,
        community=community,
        version=version,
        scope=user.area,
        limit=limit,
        offset=offset,
        at=parse_at(at) if at else None,
    )
    return JSONResponse(body, media_type="application/geo+json")
