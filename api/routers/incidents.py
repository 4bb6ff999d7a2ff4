"""Dispatchers' API: locate a point, take reports, recommend and dispatch mediators, move
incidents through their lifecycle."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import Field
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.fast_locate import current_grids, refresh_current
from api.limits import StrictJSONRoute
from api.routers import Body, IsoDateTime, Offset, permission
from gridmap.store.dispatching import dispatch, recommend_for
from gridmap.store.incidents import (
    create_incident,
    get_incident,
    list_incidents,
    locate,
    to_wgs84_point,
    transition,
)
from gridmap.store.locating import answer, locate_frame, read_points

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["incidents"], route_class=StrictJSONRoute)
Status = Literal[
    "reported",
    "dispatched",
    "accepted",
    "on_site",
    "resolved",
    "failed",
    "escalated",
    "cancelled",
    "closed",
]
CrsQ = Annotated[str, Query(max_length=32, description="wgs84 | gcj02 | bd09 | EPSG:n")]
Ref = Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,32}$")]


def _public(inc: dict[str, Any]) -> dict[str, Any]:
    out = dict(inc)
    out.pop("id", None)
    for k in ("created_at", "updated_at"):
        if isinstance(out.get(k), datetime):
            out[k] = out[k].isoformat()
    return out


@router.get("/locate", **permission("locate.read"))
async def locate_point(
    request: Request,
    user: CurrentUser,
    settings: SettingsDep,
    lon: Annotated[float, Query(description="longitude (x)")],
    lat: Annotated[float, Query(description="latitude (y)")],
    crs: CrsQ = "wgs84",
    at: IsoDateTime | None = None,
) -> dict[str, Any]:
    """District, street, community and grid of a point; ``near_boundary`` lists grids within
    20 m. Ties on a shared edge go to the lowest grid code. ``at`` answers for that time.

    The current grids are answered on the event loop from the process's index (microseconds;
    re-checked against the database at most every ``GRIDMAP_LOCATE_REFRESH_S``); ``at=`` and
    points outside every grid go to PostGIS, which also explains the miss."""
    wlon, wlat = to_wgs84_point(lon, lat, crs)
    engine = request.app.state.engine
    if at is None:
        current = await current_grids(engine, settings.locate_refresh_s)
        hit = answer(current, wlon, wlat)
        hit.pop("grid_id", None)
        return hit
    return await run_in_threadpool(_locate_in_db, engine, wlon, wlat, at)


def _warm_current(engine: Engine) -> None:
    try:
        refresh_current(engine)
    except Exception:  # a head start only: the first lookup builds the index anyway
        log.warning("locate index warm-up failed", exc_info=True)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Build the locate index of the current grids in the background when the service starts
    (``gridmap serve``), so the first lookup does not wait for it: ≈ 1 minute for a
    province's 100,000 grids (docs/scaling.md). A lookup arriving meanwhile waits for this
    build instead of starting a second one (there are no previous grids to answer from)."""
    threading.Thread(
        target=_warm_current, args=(app.state.engine,), name="gridmap-locate-warm", daemon=True
    ).start()
    yield


router.lifespan_context = lifespan  # merged into the app's lifespan by include_router


def _locate_in_db(engine: Engine, lon: float, lat: float, at: datetime | None) -> dict[str, Any]:
    with Session(engine) as session:
        hit = locate(session, lon, lat, at=at)
    hit.pop("grid_id", None)
    return hit


@router.post(
    "/locate:batch",
    **permission(
        "locate.read",
        ok={
            "description": "one row per point, in input order",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "array"}},
            },
        },
    ),
)
async def locate_batch(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    crs: CrsQ = "wgs84",
    at: IsoDateTime | None = None,
) -> Response:
    """Up to 1,000,000 points: CSV (``lon,lat[,id]``) or a GeoJSON FeatureCollection in the
    body; answers id, grid, status (ok, outside, invalid, probable-lat-lon-swap,
    out-of-range) per point, as CSV or JSON like the input. Same rule as ``/locate``."""
    ctype = request.headers.get("content-type", "text/csv")
    points = read_points(await request.body(), ctype)
    result = await run_in_threadpool(locate_frame, session, points, crs=crs, at=at)
    if "json" in ctype:
        return JSONResponse(result.to_dict(orient="records"))
    return Response(result.to_csv(index=False), media_type="text/csv; charset=utf-8")


class IncidentIn(Body):
    """A dispute report. Coordinates in ``crs`` (Amap → gcj02, Baidu → bd09)."""

    category: str = Field(max_length=32, description="service code or Chinese name")
    lon: float
    lat: float
    crs: str = Field("wgs84", max_length=32)
    description: str | None = Field(None, max_length=4000)
    address: str | None = Field(None, max_length=500)
    contact: str | None = Field(None, max_length=200)


@router.post("/incidents", status_code=201, **permission("incidents.create"))
def report(body: IncidentIn, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """Record a report, located to its grid."""
    inc = create_incident(
        session,
        category=body.category,
        x=body.lon,
        y=body.lat,
        crs=body.crs,
        description=body.description,
        address=body.address,
        contact=body.contact,
        reporter=user.name,
    )
    session.commit()
    return _public(inc)


@router.get("/incidents", **permission("incidents.read"))
def incidents(
    session: SessionDep,
    user: CurrentUser,
    status: Annotated[list[Status] | None, Query(description="any of these statuses")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    """Incidents in the caller's area, newest first."""
    wanted: list[str] | None = list(status) if status else None
    return [
        _public(i)
        for i in list_incidents(session, status=wanted, scope=user.area, limit=limit, offset=offset)
    ]


@router.get("/incidents/{ref}", **permission("incidents.read"))
def incident(ref: str, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """The full record."""
    return _public(get_incident(session, ref, scope=user.area))


@router.get("/incidents/{ref}/recommendation", **permission("incidents.dispatch"))
def recommendation(
    ref: str, session: SessionDep, user: CurrentUser, settings: SettingsDep
) -> dict[str, Any]:
    """Ranked mediators with reason codes, people skipped and why, invited co-mediators."""
    inc = get_incident(session, ref, scope=user.area)
    return recommend_for(session, inc, max_age=settings.dispatch_refresh_s).to_dict()


class DispatchIn(Body):
    person_id: int | None = Field(
        None, ge=1, description="a named mediator; default: the best recommended one"
    )
    reassign: bool = False


@router.post("/incidents/{ref}/dispatch", **permission("incidents.dispatch"))
def dispatch_incident(
    ref: str,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    body: DispatchIn | None = None,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> dict[str, Any]:
    """Atomically send a mediator; 409 when they were just taken. Safe to retry with the same
    ``Idempotency-Key``."""
    body = body or DispatchIn(person_id=None)
    result = dispatch(
        session,
        ref,
        actor=user.name,
        person_id=body.person_id,
        reassign=body.reassign,
        idempotency_key=idempotency_key,
        scope=user.area,
        max_age=settings.dispatch_refresh_s,
    )
    session.commit()
    return result


class TransitionIn(Body):
    to: Literal[
        "accepted", "on_site", "resolved", "failed", "escalated", "closed", "cancelled", "reported"
    ]
    note: str | None = Field(None, max_length=2000)
    decline: bool = Field(False, description="with to=reported: the mediator declined")


@router.post("/incidents/{ref}/transitions", **permission("incidents.transition"))
def move(ref: str, body: TransitionIn, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """Next lifecycle step; every step is kept as an incident event."""
    inc = get_incident(session, ref, scope=user.area)
    out = transition(
        session, inc["id"], body.to, actor=user.name, note=body.note, decline=body.decline
    )
    session.commit()
    return _public(out)
