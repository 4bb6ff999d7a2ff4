"""Map pages in real headless Chromium (Debian's binary driven by Playwright), on a small
community gridded into 8 grids with a synthetic roster.

Every request the browser makes is routed: anything not to 127.0.0.1 is aborted and counted
(must stay 0). Care-subject canaries (a unique code and unique coordinates) must never reach
a leader's page or tiles.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright
from sqlalchemy import Engine, text

from gridmap.roster_synth import synthetic_roster
from gridmap.security import TokenClaims, issue_token
from gridmap.settings import Settings
from gridmap.store.db import session_scope
from gridmap.store.grids import publish_version, run_gridding, select_communities
from gridmap.store.staff import current_grids, load_roster, run_assignment
from gridmap.store.users import add_user
from tests.conftest import _free_port

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(os.environ.get("GRIDMAP_SHOTS", "/tmp/maps-shots"))  # screenshots to look at
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
CANARY = "CANARY9QX7ZK"
USERS = {
    "lead": ("leader", None),
    "disp": ("dispatcher", None),
    "plan": ("planner", None),
    "vol": ("volunteer", None),
    "gm": ("grid_manager", None),
}


def token(settings: Settings, name: str) -> str:
    role, area = USERS[name]
    claims = TokenClaims(name, role, area, 0)
    return issue_token(claims, settings.signing_key(), settings.token_audience, 10)


def bearer(settings: Settings, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(settings, name)}"}


@pytest.fixture
def city(community: Engine, settings: Settings) -> dict[str, Any]:
    """8 published grids, an optimal roster, users of every role and a care-subject canary."""
    with session_scope(community) as s:
        result = run_gridding(s, select_communities(s), user="t", n_grids=8)
        publish_version(s, result.version_id, user="t")
        grids = current_grids(s).rename(columns={"lon": "x", "lat": "y"})
        roster = synthetic_roster(grids, seed=5)
        load_roster(s, roster.staff, roster.care_subjects, key=settings.id_key(), user="t")
        run_assignment(s, user="t")
        for name, (role, area) in USERS.items():
            add_user(s, name, role, area, None)
        row = s.execute(
            text(
                "SELECT code, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) "
                "FROM grid WHERE valid_to IS NULL AND valid_from IS NOT NULL ORDER BY code LIMIT 1"
            )
        ).one()
        lon, lat = round(row[1], 4) + 0.0000137, round(row[2], 4) + 0.0000291
        s.execute(
            text(
                "INSERT INTO care_subject (code, category, grid_code, geom) VALUES "
                "(:c, 'other', :g, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"
            ),
            {"c": CANARY, "g": row[0], "x": lon, "y": lat},
        )
        codes = [r[0] for r in s.execute(text("SELECT code FROM grid WHERE valid_to IS NULL"))]
    return {"grids": sorted(codes), "canary": (lon, lat)}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Offline:
    """A page whose every request is routed; foreign ones are aborted and kept."""

    def __init__(self, browser: Browser, headers: dict[str, str]):
        self.context = browser.new_context(
            viewport={"width": 1280, "height": 800}, extra_http_headers=headers
        )
        self.page: Page = self.context.new_page()
        self.foreign: list[str] = []
        self.seen: list[str] = []
        self.errors: list[str] = []
        self.page.route("**/*", self._route)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _route(self, route: Route) -> None:
        url = route.request.url
        self.seen.append(url)
        if not url.startswith("http://127.0.0.1:"):
            self.foreign.append(url)
            route.abort()
            return
        route.continue_()

    def close(self) -> None:
        self.context.close()


def grid_paths(page: Page) -> int:
    return int(page.evaluate("document.querySelectorAll('path.gm-grid').length"))


def test_coverage_map_offline_complete_and_in_chinese(
    city: dict[str, Any], server: str, settings: Settings, browser: Browser
) -> None:
    tab = Offline(browser, bearer(settings, "lead"))
    try:
        tab.page.goto(f"{server}/maps/coverage", wait_until="load")
        assert grid_paths(tab.page) == len(city["grids"]) == 8
        assert tab.foreign == [] and tab.errors == []
        assert all("/static/" in u or "/maps/" in u for u in tab.seen)
        legend = tab.page.inner_text(".gm-legend")
        assert "人员配备" in legend and "配备完整" in legend and "<11" in legend
        assert "网格覆盖图" in tab.page.inner_text(".gm-title")
        assert tab.page.evaluate("document.fonts.check('16px \"Noto Sans CJK SC\"', '网格')")
        tab.page.hover("path.gm-grid >> nth=0")
        tip = tab.page.locator(".leaflet-tooltip .gm-tip").inner_text()
        assert "网格编码" in tip and "户数" in tip and "帮扶对象" in tip
        tab.page.click("input[name=gm-mode][value=care]")  # switch colouring: same paths
        assert "帮扶比例" in tab.page.inner_text(".gm-legend") and grid_paths(tab.page) == 8
        tab.page.screenshot(path=str(SHOTS / "test-coverage.png"))
    finally:
        tab.close()
    assert tab.foreign == []


def _all_vertices(page: Page) -> list[list[float]]:
    return list(
        page.evaluate(
            """() => { const out = []; for (const k of Object.keys(window)) {
                 const l = window[k]; if (l && l.gmOpts) l.eachLayer(p =>  // + label points
                   (p.getLatLngs ? p.getLatLngs().flat(3) : [p.getLatLng()])
                     .forEach(ll => out.push([ll.lat, ll.lng]))); }
               return out; }"""
        )
    )


def test_leader_never_sees_care_subject_points_or_codes(
    city: dict[str, Any], server: str, settings: Settings, browser: Browser
) -> None:
    lon, lat = city["canary"]
    needles = [CANARY, *(f"{v:.{d}f}" for v in (lon, lat) for d in (5, 6, 7))]
    hdr = bearer(settings, "lead")
    html = httpx.get(f"{server}/maps/coverage", headers=hdr).text
    for needle in needles:
        assert needle not in html
    for path in ("/dashboard", "/dashboard?format=csv", "/maps/incidents"):
        body = httpx.get(f"{server}{path}", headers=hdr).text
        assert not any(n in body for n in needles), path
    for care in set(_care_cells(html)):
        assert care in ("0", "<11", "*", "—") or int(care) >= 11
    for z in (13, 14, 15, 16):
        for layer in ("grids", "areas"):
            for x, y in _tiles_around(lon, lat, z):
                r = httpx.get(f"{server}/tiles/{layer}/{z}/{x}/{y}.pbf", headers=hdr)
                assert r.status_code == 200, r.text
                assert CANARY.encode() not in r.content and b"care" not in r.content
    tab = Offline(browser, hdr)
    try:
        tab.page.goto(f"{server}/maps/coverage", wait_until="load")
        near = [v for v in _all_vertices(tab.page) if abs(v[0] - lat) + abs(v[1] - lon) < 2e-6]
        assert near == []
    finally:
        tab.close()


def _care_cells(html: str) -> list[str]:
    import json
    import re

    out: list[str] = []
    for m in re.finditer(r'"care":(\[[^\]]*\])', html):
        out += [str(v) for v in json.loads(m.group(1))]
    return out


def _tiles_around(lon: float, lat: float, z: int) -> list[tuple[int, int]]:
    import math

    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return [(x + dx, y + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]


def test_dispatch_map_follows_incident_state(
    city: dict[str, Any], server: str, settings: Settings, browser: Browser
) -> None:
    hdr = bearer(settings, "disp")
    with httpx.Client(base_url=server, headers=hdr) as api:
        spot = api.get("/api/v1/grids", params={"limit": 1}).json()
        geom = spot["features"][0]["geometry"]
        import shapely.geometry

        pt = shapely.geometry.shape(geom).representative_point()
        created = api.post(
            "/api/v1/incidents", json={"category": "neighbour", "lon": pt.x, "lat": pt.y}
        )
        assert created.status_code == 201, created.text
        ref = created.json()["public_id"]
        tab = Offline(browser, hdr)
        try:
            tab.page.goto(f"{server}/maps/dispatch?poll=1", wait_until="load")
            item = f"li[data-incident='{ref}']"
            assert tab.page.get_attribute(item, "data-status") == "reported"
            assert "待派单" in tab.page.inner_text(item)
            before = tab.page.get_attribute("body", "data-version")
            assert api.post(f"/api/v1/incidents/{ref}/dispatch").status_code == 200
            tab.page.wait_for_function(
                "ref => { const li = document.querySelector(`li[data-incident='${ref}']`);"
                " return li && li.dataset.status === 'dispatched'; }",
                arg=ref,
                timeout=15_000,
            )
            assert "已派单" in tab.page.inner_text(item)
            assert tab.page.get_attribute("body", "data-version") != before
            tab.page.click(item)  # recommended mediators for the selected incident
            tab.page.wait_for_selector("#gm-candidates li", timeout=10_000)
            assert api.post(
                f"/api/v1/incidents/{ref}/transitions", json={"to": "cancelled"}
            ).is_success
            tab.page.wait_for_function(
                "ref => !document.querySelector(`li[data-incident='${ref}']`)", arg=ref
            )
            tab.page.screenshot(path=str(SHOTS / "test-dispatch.png"))
            assert tab.foreign == [] and tab.errors == []
        finally:
            tab.close()


def test_incident_map_and_dashboard(
    city: dict[str, Any], server: str, settings: Settings, browser: Browser
) -> None:
    hdr = bearer(settings, "lead")
    tab = Offline(browser, hdr)
    try:
        tab.page.goto(f"{server}/maps/incidents", wait_until="load")
        assert grid_paths(tab.page) == 8
        assert "事件分布" in tab.page.inner_text(".gm-title")
        tab.page.goto(f"{server}/dashboard?level=community", wait_until="load")
        assert "测试社区" in tab.page.inner_text("#gm-dashboard")
        tab.page.click("#gm-dashboard th >> nth=2")
        assert tab.page.get_attribute("#gm-dashboard th >> nth=2", "aria-sort") == "ascending"
        assert tab.foreign == [] and tab.errors == []
    finally:
        tab.close()
    csv = httpx.get(f"{server}/dashboard?level=street&format=csv", headers=hdr)
    assert csv.status_code == 200 and "网格数" in csv.text and "420502001" in csv.text
    xlsx = httpx.get(f"{server}/dashboard?level=district&format=xlsx", headers=hdr)
    import io

    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None and sheet.cell(1, 3).value == "网格数"


def test_print_pdf_and_png(city: dict[str, Any], server: str, settings: Settings) -> None:
    hdr = bearer(settings, "lead")
    pdf = httpx.get(f"{server}/maps/coverage.pdf?area=420502", headers=hdr, timeout=90)
    assert pdf.status_code == 200, pdf.text
    assert pdf.content.startswith(b"%PDF-") and len(pdf.content) > 10_000
    png = httpx.get(f"{server}/maps/coverage.png?area=420502001001", headers=hdr, timeout=90)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG\r\n\x1a\n")
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "test-print.png").write_bytes(png.content)
    # the ticket in the print URL is not a token elsewhere, nor from another host
    assert httpx.get(f"{server}/maps/coverage?print_ticket=x").status_code == 401


@pytest.mark.parametrize(
    ("path", "allowed", "denied"),
    [
        ("/maps/coverage", "lead", "disp"),
        ("/maps/coverage.png", "lead", "vol"),
        ("/maps/dispatch", "disp", "lead"),
        ("/maps/dispatch/data", "disp", "gm"),
        ("/maps/incidents", "lead", "plan"),
        ("/dashboard", "lead", "disp"),
        ("/tiles/grids/14/13250/6720.pbf", "plan", "disp"),
    ],
)
def test_roles(
    city: dict[str, Any], server: str, settings: Settings, path: str, allowed: str, denied: str
) -> None:
    assert httpx.get(f"{server}{path}").status_code == 401
    assert httpx.get(f"{server}{path}", headers=bearer(settings, denied)).status_code == 403
    if not path.endswith(".png"):
        assert httpx.get(f"{server}{path}", headers=bearer(settings, allowed)).status_code == 200


def test_session_cookie_is_for_reading_only(
    city: dict[str, Any], server: str, settings: Settings
) -> None:
    r = httpx.post(f"{server}/maps/session", headers=bearer(settings, "disp"))
    assert r.status_code == 204
    cookie = r.cookies.get("gridmap_session")
    assert cookie and "httponly" in r.headers["set-cookie"].lower()
    jar = {"gridmap_session": cookie}
    assert httpx.get(f"{server}/maps/dispatch/data", cookies=jar).status_code == 200
    post = httpx.post(
        f"{server}/api/v1/incidents",
        cookies=jar,
        json={"category": "neighbour", "lon": 111.3, "lat": 30.7},
    )
    assert post.status_code == 401  # a cookie never authorises a write
    assert httpx.get(f"{server}/maps/login").status_code == 200


def _serve(app: Any) -> tuple[str, Any, threading.Thread]:
    import uvicorn

    port = _free_port()
    srv = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", srv, thread


def test_large_areas_switch_to_vector_tiles(
    city: dict[str, Any], settings: Settings, browser: Browser
) -> None:
    from api import create_app

    base, srv, thread = _serve(create_app(settings.model_copy(update={"map_vector_threshold": 4})))
    try:
        tab = Offline(browser, bearer(settings, "lead"))
        tab.page.goto(f"{base}/maps/coverage", wait_until="networkidle")
        assert grid_paths(tab.page) == 0 and tab.page.query_selector("canvas") is not None
        urls = [u for u in tab.seen if "/tiles/grids/" in u]
        assert urls and any("/tiles/areas/" in u for u in tab.seen)
        tiles = [httpx.get(u, headers=bearer(settings, "lead")).content for u in urls]
        assert any(city["grids"][0].encode() in t for t in tiles)  # what the browser drew
        assert tab.foreign == [] and tab.errors == []
        tab.close()
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def test_incident_heat_layer_from_suppressed_grid_counts(
    city: dict[str, Any], server: str, settings: Settings, browser: Browser
) -> None:
    import shapely.geometry

    k = settings.small_count_k
    with httpx.Client(base_url=server, headers=bearer(settings, "disp")) as api:
        feats = api.get("/api/v1/grids", params={"limit": 2}).json()["features"]
        hot, lone = (shapely.geometry.shape(f["geometry"]).representative_point() for f in feats)
        for pt in [hot] * k + [lone]:  # k incidents in one grid, a single one in another
            r = api.post(
                "/api/v1/incidents", json={"category": "neighbour", "lon": pt.x, "lat": pt.y}
            )
            assert r.status_code == 201, r.text
    tab = Offline(browser, bearer(settings, "lead"))
    try:
        tab.page.goto(f"{server}/maps/incidents", wait_until="load")
        assert grid_paths(tab.page) == 8 and tab.page.query_selector("canvas") is None
        tab.page.click("input[name=gm-mode][value=heat]")  # legend switch = base layer switch
        tab.page.wait_for_selector("canvas.leaflet-heatmap-layer")
        assert grid_paths(tab.page) == 0
        points = tab.page.evaluate(
            """() => { for (const k of Object.keys(window)) { const l = window[k];
                 if (l && L.HeatLayer && l instanceof L.HeatLayer) return l._latlngs; }
               return null; }"""
        )
        assert points is not None and len(points) == 1  # the lone incident adds no heat
        assert points[0][2] == k and abs(points[0][0] - hot.y) < 1e-4  # at the grid's point
        tab.page.screenshot(path=str(SHOTS / "test-incident-heat.png"))
        tab.page.click(".leaflet-control-layers-base label >> nth=0")  # back to the choropleth
        assert grid_paths(tab.page) == 8 and "事件数" in tab.page.inner_text(".gm-legend-title")
        assert tab.foreign == [] and tab.errors == []
        assert all(u.startswith(server) for u in tab.seen)
    finally:
        tab.close()
    assert tab.foreign == []
