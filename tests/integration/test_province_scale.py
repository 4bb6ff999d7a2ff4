"""What the province work added, checked on one small community (never a province): the bulk
load of historical incidents with their events."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
from sqlalchemy import Engine, text

from gridmap.errors import InvalidInput
from gridmap.scenario_province import incident_histories
from gridmap.store.bulk import load_incidents
from gridmap.store.db import session_scope
from gridmap.store.grids import publish_version, run_gridding, select_communities
from gridmap.store.incidents import create_incident, locate
from tests.helpers import COMMUNITY


def _published(db: Engine) -> None:
    with session_scope(db) as s:
        draft = run_gridding(s, select_communities(s), user="p", households_per_grid=1500)
        publish_version(s, draft.version_id, user="p")


def _points(db: Engine, n: int) -> pd.DataFrame:
    with db.connect() as c:
        wkb = c.execute(text("SELECT ST_AsBinary(geom) FROM area WHERE kind = 'community'"))
        block = shapely.from_wkb(bytes(wkb.scalar_one()))
    rng = np.random.default_rng(3)
    x0, y0, x1, y1 = block.bounds
    lon, lat = rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)
    lon[-1], lat[-1] = x1 + 0.05, y1 + 0.05  # outside every grid
    return pd.DataFrame(
        {
            "lon": lon,
            "lat": lat,
            "reported_at": pd.date_range("2026-12-01", periods=n, freq="13h").astype(str),
        }
    )


def test_load_incidents_locates_and_keeps_histories(community: Engine) -> None:
    _published(community)
    inc, events = incident_histories(_points(community, 60), seed=2, now="2026-12-31T00:00:00")
    with session_scope(community) as s:
        counts = load_incidents(s, inc, events, source="test", user="loader")
    assert counts == {"incidents": 60, "events": len(events), "located": 59}
    with community.connect() as c:
        rows = c.execute(
            text(
                "SELECT id, public_id, status, grid_code, grid_id, outcome FROM incident "
                "ORDER BY id"
            )
        ).all()
        n_events = c.execute(text("SELECT count(*) FROM incident_event")).scalar_one()
        last = c.execute(
            text(
                "SELECT DISTINCT ON (incident_id) incident_id, to_status FROM incident_event "
                "ORDER BY incident_id, at DESC"
            )
        ).all()
    assert n_events == len(events)
    assert [r.status for r in rows] == list(inc["status"])
    assert dict(last) == {r.id: r.status for r in rows}  # status = the last event's
    assert all(r.public_id == f"GM{r.public_id[2:10]}{r.id:06d}" for r in rows)
    assert {r.outcome for r in rows if r.status == "resolved"} <= {"success"}
    with session_scope(community) as s:
        for r, (lon, lat) in zip(rows[:-1], inc[["lon", "lat"]].to_numpy()[:-1], strict=True):
            assert r.grid_code == locate(s, float(lon), float(lat))["grid"]
        assert rows[-1].grid_code is None and rows[-1].grid_id is None
        lon, lat = inc.loc[0, ["lon", "lat"]]
        new = create_incident(s, category="邻里纠纷", x=lon, y=lat, reporter="d")
    assert new["public_id"].endswith(f"{rows[-1].id + 1:06d}")  # the sequence moved on


def test_load_incidents_refuses_illegal_histories(community: Engine) -> None:
    _published(community)
    inc = _points(community, 3).assign(category="neighbour", status="closed")
    events = pd.DataFrame(
        {
            "incident": [0],
            "at": ["2026-12-02"],
            "from_status": ["reported"],
            "to_status": ["closed"],
        }
    )
    with pytest.raises(InvalidInput, match="illegal transition"), session_scope(community) as s:
        load_incidents(s, inc, events, source="test")
    with community.connect() as c:
        assert c.execute(text("SELECT count(*) FROM incident")).scalar_one() == 0


def test_incident_frame_times_from_events(community: Engine) -> None:
    from gridmap.store.mapdata import incident_frame

    _published(community)
    inc, events = incident_histories(_points(community, 40), seed=5, now="2026-12-31T00:00:00")
    with session_scope(community) as s:
        load_incidents(s, inc, events, source="test")
        frame = incident_frame(s, COMMUNITY[:6])
        assert incident_frame(s, "420599").empty  # another district: nothing
    at = pd.to_datetime(events["at"])
    start = pd.to_datetime(inc["reported_at"]).to_numpy()[events["incident"]]
    secs = (at - start).dt.total_seconds()
    inside = events["incident"] < len(inc) - 1  # the last one lies outside every grid
    for step, col in (("dispatched", "dispatch_s"), ("on_site", "onsite_s")):
        want = secs[inside & (events["to_status"] == step)].sort_values().to_numpy()
        got = frame[col].dropna().sort_values().to_numpy()
        assert len(want) and np.allclose(got, want)
    assert len(frame) == 39  # the point outside every grid has no grid code


def test_current_grids_by_prefix(community: Engine) -> None:
    from gridmap.errors import NotFound
    from gridmap.store.staff import current_grids

    with session_scope(community) as s, pytest.raises(NotFound):
        current_grids(s, COMMUNITY)  # nothing published yet
    _published(community)
    with session_scope(community) as s:
        every = current_grids(s)
        assert current_grids(s, COMMUNITY).equals(every)
        assert current_grids(s, "420503").empty  # published grids, none there


def test_service_start_builds_the_locate_index(community: Engine) -> None:
    import asyncio
    import time
    from types import SimpleNamespace

    from api.routers.incidents import lifespan
    from gridmap.store.locating import CURRENT

    _published(community)
    CURRENT._entry, CURRENT._checked = None, float("-inf")  # as in a fresh process
    app = SimpleNamespace(state=SimpleNamespace(engine=community))

    async def start() -> None:
        async with lifespan(app):  # type: ignore[arg-type]
            pass

    asyncio.run(start())
    deadline = time.monotonic() + 30
    while CURRENT.recent(60.0) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    current = CURRENT.recent(60.0)
    assert current is not None and len(current.grids.codes) >= 1


def test_grid_tiles_start_at_the_minimum_zoom(community: Engine) -> None:
    from gridmap.staffing_model import Quotas
    from gridmap.store.mapdata import GRID_MIN_ZOOM, extent, render_tile, tiles_covering

    _published(community)
    with session_scope(community) as s:
        box = extent(s, None)
        assert box is not None
        (x, y), *_ = tiles_covering(box, GRID_MIN_ZOOM)
        assert COMMUNITY.encode() in render_tile(s, "grids", GRID_MIN_ZOOM, x, y, None, Quotas())
        (x, y), *_ = tiles_covering(box, GRID_MIN_ZOOM - 1)
        assert render_tile(s, "grids", GRID_MIN_ZOOM - 1, x, y, None, Quotas()) == b""
        assert render_tile(s, "areas", GRID_MIN_ZOOM - 1, x, y, None, Quotas())  # outlines


def test_tiles_may_reuse_a_recent_fingerprint(community: Engine) -> None:
    from gridmap.store import mapdata
    from gridmap.store.mapdata import coverage_version, recent_coverage_version

    mapdata._FINGERPRINTS.clear()
    with session_scope(community) as s:
        before = recent_coverage_version(s, 60.0)
    _published(community)
    with session_scope(community) as s:
        now = coverage_version(s)
        assert now != before
        assert recent_coverage_version(s, 60.0) == before  # trusted for a minute
        assert recent_coverage_version(s, 0.0) == now  # 0: always asked
        assert recent_coverage_version(s, 1e-9) == now  # too old: asked again


def test_lookups_answer_from_the_previous_grids_during_a_rebuild(community: Engine) -> None:
    from sqlalchemy.orm import Session

    from gridmap.store.locating import CURRENT

    _published(community)
    with Session(community) as s:
        old = CURRENT.refresh(s)
    with session_scope(community) as s:  # a new version: the stamp changes
        draft = run_gridding(s, select_communities(s), user="p", households_per_grid=600)
        publish_version(s, draft.version_id, user="p")
    assert CURRENT._lock.acquire()  # another request is rebuilding
    try:
        with Session(community) as s:
            assert CURRENT.refresh(s) is old  # answered at once, from the previous grids
        assert CURRENT.recent(60.0) is None or CURRENT.recent(60.0) is old
    finally:
        CURRENT._lock.release()
    with Session(community) as s:
        new = CURRENT.refresh(s)  # the next request rebuilds
    assert new is not old and len(new.grids.codes) == draft.grids
