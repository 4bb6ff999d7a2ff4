"""The locate hot path (``api.fast_locate``): same bytes as the FastAPI route, only for the
ordinary request, and the caches behind it (stale-while-revalidate grids, users re-read
ahead of expiry, verified tokens) keep their promises."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import numpy as np
import pytest
import shapely
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from gridmap.errors import AuthenticationError
from gridmap.security import read_token
from gridmap.settings import Settings
from gridmap.store.db import session_scope
from gridmap.store.grids import publish_version, run_gridding, select_communities
from gridmap.store.locating import CurrentGrids
from gridmap.store.users import revoke_tokens
from tests.api.test_incidents import city  # noqa: F401 (fixture)
from tests.conftest import _free_port


def _serve(settings: Settings) -> Iterator[tuple[str, FastAPI]]:
    import uvicorn

    from api import create_app

    app = create_app(settings)
    port = _free_port()
    srv = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", app
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def fast(settings: Settings) -> Iterator[tuple[str, FastAPI]]:
    """The app as deployed: users cached, grids re-checked in the background."""
    yield from _serve(settings.model_copy(update={"user_cache_s": 60, "locate_refresh_s": 60}))


def _points(town: dict[str, Any], n: int) -> list[tuple[float, float]]:
    """Shared vertices and edge midpoints of the grids, then random points over (and just
    beyond) the community."""
    geoms = town["geoms"]
    shared = geoms[0].boundary.intersection(shapely.union_all(geoms[1:]).boundary)
    pts = [tuple(c) for c in shapely.get_coordinates(shared)[:20]]
    for part in shapely.get_parts(shapely.line_merge(shared))[:10]:
        pts.append(tuple(shapely.line_interpolate_point(part, 0.5, normalized=True).coords[0]))
    minx, miny, maxx, maxy = shapely.union_all(geoms).buffer(0.001).bounds
    rng = np.random.default_rng(11)
    pts += [
        (float(minx + fx * (maxx - minx)), float(miny + fy * (maxy - miny)))
        for fx, fy in rng.random((n, 2))
    ]
    return [(float(x), float(y)) for x, y in pts]


def test_fast_path_answers_byte_for_byte_like_the_route(
    city: dict[str, Any],  # noqa: F811
    server: str,
    fast: tuple[str, FastAPI],
) -> None:
    url, app = fast
    hdr = city["tokens"]["disp"]
    with httpx.Client(headers=hdr) as client:
        client.get(f"{url}/api/v1/locate", params={"lon": 0, "lat": 0})  # caches the user
        before = app.state.fast_locate_served
        ok = 0
        for lon, lat in _points(city, 150):
            for crs in ("wgs84", "gcj02", "bd09"):
                if crs == "wgs84":
                    x, y = lon, lat
                else:
                    from gridmap.crs import from_wgs84

                    x, y = (float(v) for v in from_wgs84(lon, lat, crs))
                q = {"lon": x, "lat": y, "crs": crs}
                quick = client.get(f"{url}/api/v1/locate", params=q)
                full = client.get(f"{server}/api/v1/locate", params=q)  # cache off: the route
                assert quick.status_code == full.status_code, (x, y, crs)
                assert quick.content == full.content, (x, y, crs)
                assert quick.headers["content-type"] == full.headers["content-type"]
                ok += quick.status_code == 200
    assert ok > 300  # most points are inside a grid
    assert app.state.fast_locate_served - before == ok  # every answered point took the path


@pytest.mark.parametrize(
    "query",
    [
        "lon=111.3&lat=30.7&at=2026-01-01T00:00:00Z",  # history: PostGIS
        "lon=111.3&lat=30.7&extra=1",  # anything unusual goes to the route
        "lon=111.3&lat=30.7&lon=111.4",
        "lon=1e2&lat=30.7",
        "lon=nan&lat=30.7",
        "lon=abc&lat=30.7",
        "lat=30.7",
        "lon=111.3&lat=30.7&crs=EPSG:4490",
        "lon=30.7&lat=111.3",  # swapped: the route's 422
        "lon=0&lat=0",  # outside: the route's 422
    ],
)
def test_unusual_requests_go_to_the_route(
    city: dict[str, Any],  # noqa: F811
    server: str,
    fast: tuple[str, FastAPI],
    query: str,
) -> None:
    url, app = fast
    hdr = city["tokens"]["disp"]
    httpx.get(f"{url}/api/v1/locate?lon=0&lat=0", headers=hdr)  # the user is cached
    before = app.state.fast_locate_served
    quick = httpx.get(f"{url}/api/v1/locate?{query}", headers=hdr)
    full = httpx.get(f"{server}/api/v1/locate?{query}", headers=hdr)
    assert app.state.fast_locate_served == before
    assert (quick.status_code, quick.content) == (full.status_code, full.content)


def test_auth_failures_go_to_the_route(
    city: dict[str, Any],  # noqa: F811
    fast: tuple[str, FastAPI],
    settings: Settings,
) -> None:
    url, app = fast
    c = city["geoms"][0].representative_point()
    q = f"lon={c.x}&lat={c.y}"
    assert httpx.get(f"{url}/api/v1/locate?{q}", headers=city["tokens"]["disp"]).status_code == 200
    before = app.state.fast_locate_served
    leader = httpx.get(f"{url}/api/v1/locate?{q}", headers=city["tokens"]["lead"])
    assert leader.status_code == 403
    assert httpx.get(f"{url}/api/v1/locate?{q}").status_code == 401
    forged = jwt.encode({"sub": "disp", "aud": settings.token_audience, "exp": 2**40}, "x" * 32)
    bad = httpx.get(f"{url}/api/v1/locate?{q}", headers={"Authorization": f"Bearer {forged}"})
    assert bad.status_code == 401 and bad.json()["type"].endswith("invalid-token")
    assert app.state.fast_locate_served == before


def test_revocation_still_takes_effect_with_users_read_ahead(
    city: dict[str, Any],  # noqa: F811
    settings: Settings,
) -> None:
    """Cached user rows are re-read in the background after half their life; a revoked
    token is still refused within the cache time (0.3 s here)."""
    for url, _ in _serve(settings.model_copy(update={"user_cache_s": 0.3})):
        c = city["geoms"][1].representative_point()
        hdr = city["tokens"]["disp"]
        where = f"{url}/api/v1/locate?lon={c.x}&lat={c.y}"

        def get(where: str = where, hdr: dict[str, str] = hdr) -> httpx.Response:
            return httpx.get(where, headers=hdr)

        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:  # lookups across several read-ahead cycles
            assert get().status_code == 200
        with session_scope(city["engine"]) as s:
            revoke_tokens(s, "disp")
        deadline = time.monotonic() + 10
        while get().status_code == 200:
            assert time.monotonic() < deadline, "revocation never took effect"
        assert get().json()["type"].endswith("token-revoked")


def test_stale_grids_are_served_while_one_recheck_runs(city: dict[str, Any]) -> None:  # noqa: F811
    """``usable``: fresh data as is; due data still served, with exactly one re-check asked
    for; after the re-check the new grids; ``invalidate`` and ``max_age`` ≤ 0 make callers
    wait."""
    engine: Engine = city["engine"]
    current = CurrentGrids()
    assert current.usable(60) == (None, False)  # nothing yet: wait for refresh()
    with Session(engine) as s:
        old = current.refresh(s)
    assert current.usable(60) == (old, False)
    assert current.usable(0) == (None, False)
    with session_scope(engine) as s:  # another process publishes 3 grids instead of 6
        result = run_gridding(s, select_communities(s), user="t", n_grids=3)
        publish_version(s, result.version_id, user="t")
    assert current.usable(60) == (old, False)  # not yet re-checked
    assert current.usable(1e-9) == (old, True)  # due: the caller starts the re-check
    assert current.usable(1e-9) == (old, False)  # only one at a time
    current.recheck(lambda: Session(engine))
    new, _ = current.usable(60)
    assert new is not None and len(new.grids.codes) == 3 and len(old.grids.codes) == 6
    current.invalidate()
    assert current.usable(60) == (None, False)


def test_a_verified_token_is_remembered_but_still_expires(settings: Settings) -> None:
    key, aud = settings.signing_key(), settings.token_audience
    exp = int(time.time()) + 1
    token = jwt.encode({"sub": "disp", "aud": aud, "exp": exp, "ver": 0}, key)
    assert read_token(token, key, aud).user == "disp"
    assert read_token(token, key, aud).user == "disp"  # from the cache
    with pytest.raises(AuthenticationError):
        read_token(token, "another key of enough length 123", aud)
    with pytest.raises(AuthenticationError):
        read_token(token, key, "another-audience")
    while time.time() <= exp:  # wait for the real expiry (at most a second)
        time.sleep(0.05)
    with pytest.raises(AuthenticationError) as err:
        read_token(token, key, aud)
    assert err.value.code == "token-expired"
