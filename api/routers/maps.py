"""Map pages (HTML, offline): coverage for leaders, the dispatch wall map, incidents, printing.

Every page is built on the server from what the caller's role and area may see; browsers
authenticate with the session cookie set by ``POST /maps/session`` (GET requests only).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import geopandas as gpd
import pandas as pd
import shapely
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.deps import PRINT_TICKET, SESSION_COOKIE, CurrentUser, SessionDep, SettingsDep, User
from api.limits import StrictJSONRoute
from api.routers import IsoDate, permission, public
from gridmap.dispatch import SERVICES
from gridmap.errors import NotFound
from gridmap.map_pages import TileConfig, coverage_page, dispatch_page, incident_page, login_page
from gridmap.render import render_url
from gridmap.security import TokenClaims, issue_token
from gridmap.settings import Settings
from gridmap.stats import LEVEL_LENGTH, area_figures, grid_status
from gridmap.store.areas import get_area
from gridmap.store.mapdata import (
    area_frame,
    coverage_version,
    dispatch_snapshot,
    extent,
    grid_count,
    grid_frame,
    incident_frame,
    incident_heat,
)
from gridmap.store.staff import shortage
from gridmap.store.users import get_user

log = logging.getLogger(__name__)
router = APIRouter(tags=["maps"], route_class=StrictJSONRoute)
AreaQ = Annotated[
    str | None, Query(pattern=r"^\d{6,12}$", description="zoom to this area (code in scope)")
]
HTML_OK = {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
CITY = "宜昌市"


def tiles_of(settings: Settings) -> TileConfig:
    return TileConfig(
        settings.tile_url, settings.tile_attribution, settings.tile_crs, settings.tile_max_zoom
    )


def area_prefix(session: SessionDep, user: User, area: str | None) -> tuple[str, str]:
    """(code prefix, display name) of ``area`` within the caller's scope (404 outside it)."""
    code = area or user.area
    if not code:
        return "", CITY
    found = get_area(session, code, scope=user.area)
    if found is None:
        raise NotFound(f"no area {code} in your scope", code="area-not-found")
    return code, str(found["properties"]["name"])


def coverage_html(
    session: SessionDep,
    settings: Settings,
    user: User,
    area: str | None,
    print_mode: bool,
    mode: str = "staff",
) -> str:
    prefix, name = area_prefix(session, user, area)
    n = grid_count(session, prefix)
    today = date.today().isoformat()
    title = f"网格覆盖图 · {name}"
    if n > settings.map_vector_threshold:
        bounds = extent(session, prefix) or (111.2, 30.6, 111.4, 30.8)
        box = gpd.GeoDataFrame(geometry=[shapely.box(*bounds)], crs=4326)
        q = f"?{urlencode({'area': prefix})}" if prefix else ""
        return coverage_page(
            gpd.GeoDataFrame({"code": []}, geometry=[], crs=4326),
            gpd.GeoDataFrame({"code": [], "kind": []}, geometry=[], crs=4326),
            title=title,
            subtitle=f"{today} · 网格 {n} 个（矢量瓦片）",
            focus=box,
            tiles=tiles_of(settings),
            print_mode=print_mode,
            mode=mode,
            vector_url="/tiles/{layer}/{z}/{x}/{y}.pbf" + q,
        )
    status, care = grid_status(
        shortage(session, level="grid", scope=user.area), k=settings.small_count_k
    )
    grids = grid_frame(session, prefix).merge(status, on="code", how="left")
    areas = area_frame(session, prefix, context=area)
    if user.area:  # outlines above the caller's scope would carry partial figures
        areas = areas[areas["code"].str.startswith(user.area)]
    figures = pd.concat([area_figures(status, level, care) for level in LEVEL_LENGTH])
    areas = areas.merge(figures, on="code", how="left")
    for col in figures.columns.drop(["code", "care"]):
        areas[col] = areas[col].fillna(0).astype(int)
    areas["care"] = areas["care"].fillna("—")
    counts = grids["staff_status"].value_counts()
    subtitle = (
        f"{today} · 网格 {len(grids)} 个 · 配备完整 {counts.get('complete', 0)} · "
        f"部分缺员 {counts.get('partial', 0)} · 无网格员 {counts.get('none', 0)}"
    )
    focus = areas[areas["code"] == area] if area else None
    return coverage_page(
        grids,
        areas,
        title=title,
        subtitle=subtitle,
        focus=focus if focus is not None and len(focus) else None,
        tiles=tiles_of(settings),
        print_mode=print_mode,
        mode=mode,
    )


ModeQ = Annotated[
    Literal["staff", "care"], Query(description="colour by staffing or by care ratio (1:5)")
]


# Coverage pages, built once per data fingerprint. A page depends on the caller's scope (the
# user's area), not on the rest of the user: Spec = (scope, area, print_mode, mode).
Spec = tuple[str | None, str | None, bool, str]
CITY_PAGE: Spec = (None, None, False, "staff")
REFRESH_S = 5.0  # how often the serving process looks for a new data fingerprint
_PAGES: OrderedDict[tuple[Any, ...], str] = OrderedDict()
_BUILDING: dict[tuple[Any, ...], threading.Event] = {}
_RECENT: OrderedDict[Spec, float] = OrderedDict()  # spec → last request (monotonic seconds)
_PAGES_LOCK = threading.Lock()


def _page_key(version: str, settings: Settings, spec: Spec) -> tuple[Any, ...]:
    return (
        version,
        date.today(),
        spec,
        settings.small_count_k,
        settings.map_vector_threshold,
        settings.tile_url,
        settings.tile_attribution,
        settings.tile_crs,
        settings.tile_max_zoom,
    )


def coverage_for(session: SessionDep, settings: Settings, spec: Spec, version: str) -> str:
    """The page of ``spec`` at data ``version``: from the cache, or built once (a request that
    arrives while the same page is being built waits for it instead of building it twice)."""
    key = _page_key(version, settings, spec)
    while True:
        with _PAGES_LOCK:
            if key in _PAGES:
                _PAGES.move_to_end(key)
                return _PAGES[key]
            event = _BUILDING.get(key)
            mine = event is None
            if event is None:
                event = _BUILDING[key] = threading.Event()
        if not mine:
            event.wait(timeout=120)
            continue  # cached by the other builder now (or it failed: build it here)
        try:
            scope, area, print_mode, mode = spec
            user = User(name="", role="", area=scope)  # coverage_html reads only the area
            page = coverage_html(session, settings, user, area, print_mode, mode)
            with _PAGES_LOCK:
                _PAGES[key] = page
                while len(_PAGES) > 16:
                    _PAGES.popitem(last=False)
            return page
        finally:
            with _PAGES_LOCK:
                _BUILDING.pop(key, None)
            event.set()


def cached_coverage(
    session: SessionDep,
    settings: Settings,
    user: User,
    area: str | None,
    print_mode: bool,
    mode: str,
) -> str:
    """:func:`coverage_html`, kept for identical requests while the data fingerprint, the
    day and the settings stay the same (wall screens and meetings reload the same page);
    the serving process rebuilds recently requested pages in the background when the
    fingerprint changes (:func:`refresh_pages`)."""
    spec: Spec = (user.area, area, print_mode, mode)
    page = coverage_for(session, settings, spec, coverage_version(session))
    with _PAGES_LOCK:  # only pages that could be built (a 404 must not enter the refresh list)
        _RECENT[spec] = time.monotonic()
        _RECENT.move_to_end(spec)
        while len(_RECENT) > 8:
            _RECENT.popitem(last=False)
    return page


def refresh_pages(engine: Engine, settings: Settings, stop: threading.Event) -> None:
    """Background loop of the serving process: build the city page at start, then, whenever
    the data fingerprint changes, rebuild the pages requested in the last hour (at most 4),
    so a reload after an edit does not wait for a page build (≈ 0.4–2 s for 1,100 grids)."""
    last: str | None = None
    with _PAGES_LOCK:
        _RECENT.setdefault(CITY_PAGE, time.monotonic())
    while not stop.wait(0 if last is None else REFRESH_S):
        try:
            with Session(engine, expire_on_commit=False) as session:
                version = coverage_version(session)
                session.rollback()
                if version == last:
                    continue
                with _PAGES_LOCK:
                    now = time.monotonic()
                    specs = [s for s, t in reversed(_RECENT.items()) if now - t < 3600][:4]
                for spec in specs:
                    if stop.is_set():
                        return
                    coverage_for(session, settings, spec, version)
                    session.rollback()
                last = version
        except Exception:  # a background nicety: requests build pages themselves anyway
            log.warning("coverage page refresh failed", exc_info=True)
            last = last or ""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start :func:`refresh_pages` with the app (``gridmap serve``) and stop it with it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=refresh_pages,
        args=(app.state.engine, app.state.settings, stop),
        name="gridmap-page-refresh",
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()


router.lifespan_context = lifespan  # merged into the app's lifespan by include_router


@router.get("/maps/coverage", response_class=HTMLResponse, **permission("maps.coverage", HTML_OK))
def coverage(
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    area: AreaQ = None,
    print_mode: Annotated[bool, Query(alias="print")] = False,
    mode: ModeQ = "staff",
) -> HTMLResponse:
    """Grids coloured by staffing (switch: care ratio), outlines by district, street and
    community; care-subject counts only with small-count suppression."""
    return HTMLResponse(cached_coverage(session, settings, user, area, print_mode, mode))


PRINT_OK = {
    "description": "A4 landscape PDF or PNG",
    "content": {"application/pdf": {}, "image/png": {}},
}


@router.get("/maps/coverage.{fmt}", **permission("maps.print", PRINT_OK))
def coverage_print(
    fmt: Literal["pdf", "png"],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    area: AreaQ = None,
    mode: ModeQ = "staff",
) -> Response:
    """The coverage map printed by headless Chromium (title, legend, date, scale bar)."""
    area_prefix(session, user, area)  # 404 before starting a browser
    row = get_user(session, user.name)
    version = row.token_version if row is not None else 0
    ticket = issue_token(
        TokenClaims(user.name, user.role, user.area, version),
        settings.signing_key(),
        f"{settings.token_audience}:print",
        1,
    )
    server = request.scope.get("server") or ("127.0.0.1", settings.port)
    port = server[1] if server and server[1] else settings.port
    query = {"print": "1", "mode": mode, PRINT_TICKET: ticket, **({"area": area} if area else {})}
    url = f"http://127.0.0.1:{port}/maps/coverage?{urlencode(query)}"
    session.rollback()  # release the connection while the browser calls back
    data = render_url(url, fmt, chromium=settings.chromium, timeout_s=settings.print_timeout_s)
    name = f"coverage-{area or user.area or 'city'}-{date.today():%Y%m%d}.{fmt}"
    return Response(
        data,
        media_type="application/pdf" if fmt == "pdf" else "image/png",
        headers={"Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "no-store"},
    )


def _snapshot(session: SessionDep, user: User) -> dict[str, Any]:
    snap = dispatch_snapshot(session, user.area)
    digest = hashlib.sha256(json.dumps(snap, sort_keys=True, default=str).encode()).hexdigest()
    return {**snap, "version": digest[:16], "generated_at": datetime.now().strftime("%H:%M:%S")}


@router.get("/maps/dispatch", response_class=HTMLResponse, **permission("maps.dispatch", HTML_OK))
def dispatch_map(
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    poll: Annotated[float | None, Query(ge=1, le=60, description="refresh every s")] = None,
) -> HTMLResponse:
    """Open incidents by state, mediators available or busy; refreshes itself (polling)."""
    _, name = area_prefix(session, user, None)
    areas = area_frame(session, user.area)
    areas = areas[areas["kind"] != "community"]
    return HTMLResponse(
        dispatch_page(
            _snapshot(session, user),
            areas,
            title=f"调度图 · {name}",
            data_url="/maps/dispatch/data",
            recommendation_url="/api/v1/incidents/{id}/recommendation",
            poll_seconds=poll or settings.map_poll_seconds,
            tiles=tiles_of(settings),
        )
    )


@router.get("/maps/dispatch/data", **permission("maps.dispatch"))
def dispatch_data(session: SessionDep, user: CurrentUser) -> JSONResponse:
    """What the dispatch map polls: open incidents and mediators, with a content version."""
    return JSONResponse(_snapshot(session, user), headers={"Cache-Control": "no-store"})


@router.get("/maps/incidents", response_class=HTMLResponse, **permission("maps.incidents", HTML_OK))
def incidents_map(
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    area: AreaQ = None,
    start: IsoDate | None = None,
    end: IsoDate | None = None,
    category: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    """Incidents per grid over a date range and category (no incident points) and mediation
    success per community."""
    prefix, name = area_prefix(session, user, area)
    end = end or date.today()
    start = start or end - timedelta(days=365)
    category = category or None
    since = datetime.combine(start, datetime.min.time()).astimezone()
    until = datetime.combine(end + timedelta(days=1), datetime.min.time()).astimezone()
    frame = incident_frame(session, prefix, start=since, end=until, category=category)
    heat = incident_heat(
        session, prefix, start=since, end=until, category=category, k=settings.small_count_k
    )
    grids = grid_frame(session, prefix)
    grids["n"] = grids["code"].map(heat.set_index("code")["n"]).fillna(0).astype(int)
    communities = area_frame(session, prefix)
    communities = communities[communities["kind"] == "community"].copy()
    key = frame["grid_code"].astype(str).str[:12]
    grouped = frame.groupby(key)
    communities["n"] = communities["code"].map(grouped.size()).fillna(0).astype(int)
    mediations = grouped["outcome"].agg(lambda s: int(s.notna().sum()))
    success = grouped["outcome"].agg(lambda s: int((s == "success").sum()))
    communities["mediations"] = communities["code"].map(mediations).fillna(0).astype(int)
    ok = communities["code"].map(success).fillna(0)
    communities["rate"] = ok / communities["mediations"].where(communities["mediations"] > 0)
    label = dict((s.code, s.name) for s in SERVICES).get(category or "", "全部类别")
    return HTMLResponse(
        incident_page(
            grids,
            communities,
            title=f"事件分布 · {name}",
            subtitle=f"{start} 至 {end} · {label} · 共 {len(frame)} 件",
            form={"start": start, "end": end, "category": category, "area": area},
            categories={s.code: s.name for s in SERVICES},
            heat=heat,
            k=settings.small_count_k,
            tiles=tiles_of(settings),
        )
    )


@router.get("/maps/login", response_class=HTMLResponse, **public("maps.login"))
def login() -> HTMLResponse:
    """Sign-in page for the map pages (sets the session cookie)."""
    return HTMLResponse(login_page())


@router.post("/maps/session", status_code=204, **permission("maps.session"))
def open_session(request: Request, settings: SettingsDep, user: CurrentUser) -> Response:
    """Turn the bearer token of this request into an HttpOnly, SameSite=Strict cookie that the
    map pages' GET requests may use instead of the header."""
    token = request.headers.get("authorization", "").partition(" ")[2]
    resp = Response(status_code=204)
    resp.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.token_ttl_minutes * 60,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return resp
