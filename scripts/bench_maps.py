"""Map page weight and render time on the dev database (prints, never asserts).

For the coverage map of every current grid, against a stock Folium page of the same grids
(``folium.GeoJson`` with a style function and a tooltip, full-precision coordinates, Folium's
default JS/CSS but from the vendored copies so it renders offline):

* page weight: bytes of the HTML and of every asset the browser loads;
* first full render: from navigation to the load event plus two animation frames (every grid
  path drawn), in headless Chromium, median and worst of ``--runs`` cold runs (a new browser
  process and profile each; the server has prebuilt the page, as ``gridmap serve`` does);
* vector tiles: size and p50/p95/max time of every tile covering the city at zooms 12–15,
  cold (tile cache empty) and cached;
* print: time for ``/maps/coverage.pdf``.

    .venv/bin/python scripts/bench_maps.py [--user leader] [--runs 5]

The user must exist (``gridmap user add leader --role leader``); the app is served in-process
on a free loopback port against the configured database.
"""

from __future__ import annotations

import argparse
import math
import socket
import statistics
import threading
import time
from typing import Any

import folium
import httpx
import uvicorn
from playwright.sync_api import Route, sync_playwright

from api import create_app
from gridmap import maps
from gridmap.security import TokenClaims, issue_token
from gridmap.settings import get_settings
from gridmap.store import mapdata
from gridmap.store.db import database_url, make_engine
from gridmap.store.mapdata import extent, grid_frame
from gridmap.store.users import get_user

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stock_page(engine: Any) -> str:
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        grids = grid_frame(s, "")
    m = folium.Map(tiles=None)
    folium.GeoJson(
        grids[["code", "households", "geometry"]],
        style_function=lambda f: {"fillColor": "#1a9850", "color": "#555", "weight": 0.6},
        tooltip=folium.GeoJsonTooltip(["code", "households"], aliases=["网格编码", "户数"]),
    ).add_to(m)
    b = grids.total_bounds
    m.fit_bounds([[b[1], b[0]], [b[3], b[2]]])
    return maps.render(m)


def measure(pw: Any, url: str, headers: dict[str, str], html: str | None) -> dict[str, Any]:
    """One cold run: a new browser process with a new, empty profile."""
    browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, extra_http_headers=headers)
    page = ctx.new_page()
    sizes: dict[str, int] = {}
    foreign: list[str] = []

    def route(r: Route) -> None:
        if not r.request.url.startswith("http://127.0.0.1:"):
            foreign.append(r.request.url)
            r.abort()
        elif html is not None and r.request.url == url:
            r.fulfill(body=html, content_type="text/html; charset=utf-8")
        else:
            r.continue_()

    page.route("**/*", route)
    t0 = time.perf_counter()
    page.goto(url, wait_until="load")
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    elapsed = time.perf_counter() - t0
    ttfb = page.evaluate("performance.getEntriesByType('navigation')[0].responseStart") / 1000
    paths = page.evaluate("document.querySelectorAll('path.leaflet-interactive').length")
    entries = page.evaluate(
        "[...performance.getEntriesByType('navigation'), ...performance.getEntriesByType("
        "'resource')].map(e => [e.name, e.decodedBodySize])"
    )
    sizes.update({name: int(n) for name, n in entries})
    if html is not None:
        sizes[url] = len(html.encode())
    ctx.close()
    browser.close()
    page_bytes = sizes.get(url, 0)
    return {
        "seconds": elapsed,
        "ttfb": ttfb,
        "html": page_bytes,
        "total": sum(v for k, v in sizes.items() if not k.endswith("favicon.ico")),
        "paths": paths,
        "foreign": len(foreign),
    }


def tile_stats(base: str, headers: dict[str, str], bounds: tuple[float, ...]) -> None:
    """p50/p95/max over every tile covering ``bounds`` at z12–15, twice: cold (tile cache
    empty, no background warm-up: every tile is an ST_AsMVT query) and cached."""
    warm_zooms = mapdata.WARM_ZOOMS
    with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
        for label in ("cold", "cached"):
            if label == "cold":
                mapdata.TILES.clear()
                mapdata.WARM_ZOOMS = ()
            for z in (12, 13, 14, 15):
                cells = mapdata.tiles_covering(bounds, z)
                times, sizes = [], []
                for x, y in cells:
                    t = time.perf_counter()
                    r = c.get(f"/tiles/grids/{z}/{x}/{y}.pbf")
                    times.append((time.perf_counter() - t) * 1000)
                    sizes.append(len(r.content))
                times.sort()
                p95 = times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)]
                print(
                    f"  {label:6s} z{z}: {len(cells):4d} tiles, max {max(sizes) / 1024:5.1f} KB, "
                    f"p50 {statistics.median(times):5.1f} ms, p95 {p95:5.1f} ms, "
                    f"max {times[-1]:6.1f} ms (HTTP round trip)"
                )
            mapdata.WARM_ZOOMS = warm_zooms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--user", default="leader")
    ap.add_argument("--runs", type=int, default=5, help="cold runs, a new browser profile each")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds to wait after start")
    opts = ap.parse_args()
    settings = get_settings()
    engine = make_engine(database_url(settings))
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        user = get_user(s, opts.user)
        if user is None:
            raise SystemExit(f"no user {opts.user!r}: gridmap user add {opts.user} --role leader")
        bounds = extent(s, user.area_code) or (111.0, 30.4, 111.6, 30.9)
        n = len(grid_frame(s, user.area_code or ""))
    tok = issue_token(
        TokenClaims(user.name, user.role, user.area_code, user.token_version),
        settings.signing_key(),
        settings.token_audience,
        30,
    )
    headers = {"Authorization": f"Bearer {tok}"}
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    stock = stock_page(engine)
    print(f"grids: {n} (user {user.name}, scope {user.area_code or 'all'})")
    time.sleep(opts.settle)  # the app prebuilds the city page in the background at start
    with sync_playwright() as p:
        for name, url, html in (
            ("gridmap coverage", f"{base}/maps/coverage", None),
            ("stock Folium GeoJson", f"{base}/bench/stock.html", stock),
        ):
            runs = [measure(p, url, headers, html) for _ in range(opts.runs)]
            secs = sorted(r["seconds"] for r in runs)
            ttfb = sorted(r["ttfb"] for r in runs)
            r0 = runs[0]
            print(
                f"{name:22s} page {r0['total'] / 1024:7.1f} KB (HTML {r0['html'] / 1024:.1f} KB)"
                f"  cold render median {statistics.median(secs):.3f} s, worst {secs[-1]:.3f} s"
                f" (first byte median {statistics.median(ttfb):.3f} s, worst {ttfb[-1]:.3f} s)"
                f"  paths {r0['paths']}  foreign requests {r0['foreign']}"
            )
    print("vector tiles (grids layer):")
    tile_stats(base, headers, bounds)
    t = time.perf_counter()
    pdf = httpx.get(f"{base}/maps/coverage.pdf", headers=headers, timeout=120)
    print(
        f"print: coverage.pdf {len(pdf.content) / 1024:.0f} KB in {time.perf_counter() - t:.2f} s"
    )
    server.should_exit = True


if __name__ == "__main__":
    main()
