"""Concurrent planners on adjacent communities never break the partition; locks expire.

Each trial starts three planners at once (a barrier), each opening a draft on one of two
adjacent communities, making one edit and publishing. Locks turn the losers away with 409;
after every trial the current grids of both communities are checked in PostGIS.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import mapping, shape
from sqlalchemy import Engine, text

from gridmap.errors import ConflictError
from gridmap.security import TokenClaims, issue_token
from gridmap.settings import Settings
from gridmap.store import drafts
from gridmap.store.db import session_scope
from gridmap.store.grids import publish_version, run_gridding, select_communities
from gridmap.store.users import add_user
from tests.helpers import add_street, random_units, xiling_block

LEFT, RIGHT = "420502001001", "420502001002"


@pytest.fixture
def two_communities(db: Engine) -> Engine:
    """Two adjacent communities (halves of a block in 西陵区), gridded and published."""
    from gridmap.store.bulk import load_household_units

    block, mid = xiling_block(db, 0.004)
    cut = shapely.box(block.bounds[0] - 1, block.bounds[1] - 1, mid, block.bounds[3] + 1)
    halves = [block.intersection(cut), block.difference(cut)]
    rng = np.random.default_rng(11)
    with session_scope(db) as s:
        add_street(s, block, [(LEFT, "东社区", halves[0]), (RIGHT, "西社区", halves[1])])
        frames = [
            random_units(rng, half, code, 900, 200)
            for code, half in zip((LEFT, RIGHT), halves, strict=True)
        ]
        units = pd.concat(frames, ignore_index=True)
        units["id"] = range(len(units))
        load_household_units(s, units, source="test")
        for code in (LEFT, RIGHT):
            r = run_gridding(
                s, select_communities(s, community=code), user="t", households_per_grid=1200
            )
            publish_version(s, r.version_id, user="t")
        for name in ("p1", "p2", "p3"):
            add_user(s, name, "planner", "420502", None)
    return db


def _check_partition(db: Engine) -> None:
    with db.connect() as conn:
        rows = conn.execute(
            text("""
            WITH g AS (SELECT community_id, version_id, id, ST_Transform(geom, 4546) AS geom
                       FROM grid WHERE valid_from IS NOT NULL AND valid_to IS NULL)
            SELECT a.code,
                   ST_Area(ST_Difference(ST_Transform(a.geom, 4546),
                           (SELECT ST_Union(geom) FROM g WHERE g.community_id = a.id))) AS gap,
                   (SELECT coalesce(max(ST_Area(ST_Intersection(x.geom, y.geom))), 0)
                      FROM g x JOIN g y ON x.id < y.id AND x.community_id = a.id
                      AND y.community_id = a.id AND ST_Intersects(x.geom, y.geom)) AS overlap,
                   (SELECT count(DISTINCT version_id) FROM g
                      WHERE g.community_id = a.id) AS versions,
                   (SELECT coalesce(sum(ST_NumGeometries(geom) - 1), 0) FROM g
                      WHERE g.community_id = a.id) AS pieces
            FROM area a WHERE a.kind = 'community'""")
        ).all()
    for r in rows:
        assert r.gap < 1.0 and r.overlap < 0.01 and r.versions == 1 and r.pieces == 0, r


def _planner(
    server: str,
    headers: dict[str, str],
    community: str,
    rnd: random.Random,
    barrier: Any,
    out: list,
) -> None:
    with httpx.Client(base_url=f"{server}/api/v1", headers=headers, timeout=120) as c:
        barrier.wait()
        r = c.post("/drafts", json={"communities": [community]})
        out.append(("open", r.status_code))
        if r.status_code != 201:
            return
        draft = r.json()["draft"]
        feats = c.get("/grids", params={"version": draft}).json()["features"]
        f = rnd.choice(feats)
        geom = shape(f["geometry"])
        if rnd.random() < 0.5:
            x = geom.representative_point().x
            line = shapely.LineString([(x, geom.bounds[1] - 0.001), (x, geom.bounds[3] + 0.001)])
            body = {"op": "split_line", "code": f["id"], "line": mapping(line)}
        else:
            body = {"op": "delete", "code": f["id"]}
        e = c.post(f"/drafts/{draft}/edits", json=body)
        out.append(("edit", e.status_code))
        p = c.post(f"/drafts/{draft}/publish")
        out.append(("publish", p.status_code))
        if p.status_code != 200:
            c.delete(f"/drafts/{draft}")


def test_concurrent_planners_keep_the_partition(
    two_communities: Engine, server: str, settings: Settings
) -> None:
    rnd = random.Random(5)
    heads = {
        n: {
            "Authorization": "Bearer "
            + issue_token(
                TokenClaims(n, "planner", "420502", 0),
                settings.signing_key(),
                settings.token_audience,
                10,
            )
        }
        for n in ("p1", "p2", "p3")
    }
    _check_partition(two_communities)
    seen: set[int] = set()
    published = 0
    for _trial in range(6):
        barrier = threading.Barrier(3)
        out: list[tuple[str, int]] = []
        threads = [
            threading.Thread(
                target=_planner,
                args=(
                    server,
                    heads[n],
                    rnd.choice((LEFT, RIGHT)),
                    random.Random(rnd.random()),
                    barrier,
                    out,
                ),
            )
            for n in heads
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        codes = {s for _, s in out}
        seen |= codes
        published += sum(1 for k, s in out if k == "publish" and s == 200)
        assert codes <= {200, 201, 409, 422}, out
        assert sum(1 for k, s in out if k == "open" and s == 201) >= 1, out
        _check_partition(two_communities)
        with two_communities.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM draft_lock")).scalar_one() == 0
    assert 409 in seen  # the locks were really contended
    assert published >= 3  # and edits really went through


def test_an_expired_lock_is_free_for_others(two_communities: Engine) -> None:
    with session_scope(two_communities) as s:
        first = drafts.open_draft(s, [LEFT], user="p1", scope="420502", lock_minutes=0)["draft"]
    with session_scope(two_communities) as s:  # expired at once: p2 may open the community
        second = drafts.open_draft(s, [LEFT], user="p2", scope="420502")["draft"]
    assert second != first
    with session_scope(two_communities) as s, pytest.raises(ConflictError) as err:
        drafts.apply_operation(s, first, user="p1", scope="420502", op="delete", code=f"{LEFT}001")
    assert "p2" in err.value.message
    with session_scope(two_communities) as s:
        drafts.discard_draft(s, second, user="p2", scope="420502")
    with session_scope(two_communities) as s:  # nobody holds it now: p1 takes it back
        out = drafts.apply_operation(
            s, first, user="p1", scope="420502", op="delete", code=f"{LEFT}001"
        )
    assert out["retired"] == [f"{LEFT}001"]
    with session_scope(two_communities) as s:
        assert drafts.draft_info(s, first)["lock"]["locked_by"] == "p1"


def test_history_of_a_city_wide_version_is_usable_per_area(
    two_communities: Engine, server: str, settings: Settings
) -> None:
    """A version spanning many communities (the city's gridding) shows up in a community's
    history; a diff and a rollback can be limited to the caller's area or one community."""
    with session_scope(two_communities) as s:
        both = run_gridding(
            s, select_communities(s, district="420502"), user="t", households_per_grid=900
        )
        publish_version(s, both.version_id, user="t")
    h = {
        "Authorization": "Bearer "
        + issue_token(
            TokenClaims("p1", "planner", "420502", 0),
            settings.signing_key(),
            settings.token_audience,
            10,
        )
    }
    c = httpx.Client(base_url=f"{server}/api/v1", headers=h, timeout=120)
    draft = c.post("/drafts", json={"communities": [LEFT]}).json()["draft"]
    code = sorted(f["id"] for f in c.get("/grids", params={"version": draft}).json()["features"])[0]
    assert c.post(f"/drafts/{draft}/edits", json={"op": "delete", "code": code}).status_code == 200
    assert c.post(f"/drafts/{draft}/publish").status_code == 200
    listed = [v["id"] for v in c.get("/grid-versions", params={"community": LEFT}).json()]
    assert listed[:2] == [draft, both.version_id]
    diff = c.get("/grid-versions/diff", params={"base": both.version_id, "other": draft}).json()
    assert diff["communities"] == [LEFT] and diff["summary"]["removed"] == [code]
    right_before = c.get("/grids", params={"community": RIGHT}).json()
    r = c.post(f"/grid-versions/{both.version_id}/rollback", params={"area": LEFT})
    assert r.status_code == 200, r.text
    left_now = {f["id"] for f in c.get("/grids", params={"community": LEFT}).json()["features"]}
    assert code in left_now
    assert c.get("/grids", params={"community": RIGHT}).json() == right_before
    assert (
        c.post(f"/grid-versions/{both.version_id}/rollback", params={"area": "420503"}).status_code
        == 404
    )
    _check_partition(two_communities)


def test_versions_list_figures_only_for_the_callers_communities(two_communities: Engine) -> None:
    """A draft over both communities, listed for a user scoped to one: its figures are those
    of that community alone (the other's are not theirs to see)."""
    from gridmap.store.history import list_versions

    with session_scope(two_communities) as s:
        r = run_gridding(
            s, select_communities(s, district="420502"), user="t", households_per_grid=900
        )
        per = {p["community"]: p for p in r.quality["per_community"]}
        mine = list_versions(s, scope=LEFT)[0]
        everyone = list_versions(s, scope=None)[0]
    assert mine["id"] == everyone["id"] == r.version_id and mine["prefer"] == "balance"
    assert mine["communities"] == [LEFT] and everyone["communities"] == [LEFT, RIGHT]
    assert mine["quality"]["communities"] == 1 and everyone["quality"]["communities"] == 2
    assert mine["quality"]["cv_max"] == round(per[LEFT]["cv"], 4)
    assert everyone["quality"]["cv_max"] == round(max(p["cv"] for p in per.values()), 4)
    assert "per_community" not in everyone["quality"]
