"""Planner drafts over real HTTP: lock, every edit, validation errors, undo/redo, impact,
publish, history (as-of, diff, rollback), and the database untouched by refused edits."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
import shapely
from shapely.geometry import mapping, shape
from sqlalchemy import Engine, text

from gridmap.security import TokenClaims, issue_token
from gridmap.settings import Settings
from gridmap.store.db import session_scope
from gridmap.store.grids import publish_version, run_gridding, select_communities
from gridmap.store.users import add_user
from tests.helpers import COMMUNITY, snapshot

API = "/api/v1"


@pytest.fixture
def published(community: Engine) -> Engine:
    """The test community gridded (~9 grids) and published; users of each role."""
    with session_scope(community) as s:
        result = run_gridding(
            s, select_communities(s, community=COMMUNITY), user="t", households_per_grid=1500
        )
        publish_version(s, result.version_id, user="t")
        add_user(s, "plan", "planner", "420502", None)
        add_user(s, "plan2", "planner", "420502", None)
        add_user(s, "plan_wjg", "planner", "420503", None)
        add_user(s, "lead", "leader", None, None)
    return community


def _tok(settings: Settings, name: str, role: str, area: str | None) -> dict[str, str]:
    t = issue_token(
        TokenClaims(name, role, area, 0), settings.signing_key(), settings.token_audience, 5
    )
    return {"Authorization": f"Bearer {t}"}


class Planner:
    """A planner's HTTP session against the test server."""

    def __init__(self, server: str, headers: dict[str, str]) -> None:
        self.c = httpx.Client(base_url=server + API, headers=headers, timeout=60)

    def grids(self, draft: int) -> dict[str, Any]:
        fc = self.c.get("/grids", params={"version": draft}).json()
        return {f["id"]: f for f in fc["features"]}

    def edit(self, draft: int, **body: Any) -> httpx.Response:
        return self.c.post(f"/drafts/{draft}/edits", json=body)


def _adjacent(grids: dict[str, Any]) -> tuple[str, str]:
    geoms = {k: shape(f["geometry"]) for k, f in grids.items()}
    for a in sorted(geoms):
        for b in sorted(geoms):
            if a < b and geoms[a].intersection(geoms[b]).length > 0.0005:
                return a, b
    raise AssertionError("no adjacent grids")


def _cut_line(geom: Any) -> dict[str, Any]:
    """A north-south line through the grid's centroid, beyond its bounds on both sides."""
    c = geom.representative_point()
    miny, maxy = geom.bounds[1], geom.bounds[3]
    return mapping(shapely.LineString([(c.x, miny - 0.001), (c.x, maxy + 0.001)]))


def _partition(db: Engine, version: int) -> tuple[float, float, float]:
    """Independent check in PostGIS: (gap m², largest overlap of two grids m², extra pieces)."""
    with db.connect() as conn:
        return tuple(
            conn.execute(
                text("""
            WITH g AS (SELECT id, ST_Transform(geom, 4546) AS geom FROM grid WHERE version_id = :v),
                 c AS (SELECT ST_Transform(a.geom, 4546) AS geom FROM area a WHERE a.id IN
                       (SELECT community_id FROM grid WHERE version_id = :v))
            SELECT ST_Area(ST_Difference((SELECT ST_Union(geom) FROM c),
                                         (SELECT ST_Union(geom) FROM g))),
                   (SELECT coalesce(max(ST_Area(ST_Intersection(a.geom, b.geom))), 0)
                    FROM g a JOIN g b ON a.id < b.id AND ST_Intersects(a.geom, b.geom)),
                   (SELECT coalesce(sum(ST_NumGeometries(geom) - 1), 0) FROM g)"""),
                {"v": version},
            ).one()
        )


def test_draft_lifecycle(published: Engine, server: str, settings: Settings) -> None:
    p = Planner(server, _tok(settings, "plan", "planner", "420502"))
    other = Planner(server, _tok(settings, "plan2", "planner", "420502"))
    r = p.c.post("/drafts", json={"communities": [COMMUNITY], "note": "test"})
    assert r.status_code == 201, r.text
    draft = r.json()["draft"]
    assert r.json()["lock"]["locked_by"] == "plan"
    locked = other.c.post("/drafts", json={"communities": [COMMUNITY]})
    assert locked.status_code == 409 and "plan" in locked.json()["detail"]
    assert other.edit(draft, op="delete", code=next(iter(p.grids(draft)))).status_code == 409
    before = p.grids(draft)
    n0 = len(before)

    # split by a drawn line
    code = max(before, key=lambda k: before[k]["properties"]["households"])
    r = p.edit(draft, op="split_line", code=code, line=_cut_line(shape(before[code]["geometry"])))
    assert r.status_code == 200, r.text
    assert r.json()["changed"] == [code] and len(r.json()["created"]) == 1
    assert len(p.grids(draft)) == n0 + 1
    # merge two adjacent grids
    a, b = _adjacent(p.grids(draft))
    r = p.edit(draft, op="merge", codes=[a, b])
    assert r.status_code == 200, r.text
    assert len(p.grids(draft)) == n0
    # split into 3 balanced parts
    grids = p.grids(draft)
    big = max(grids, key=lambda k: grids[k]["properties"]["households"])
    r = p.edit(draft, op="split_n", code=big, parts=3)
    assert r.status_code == 200, r.text
    assert len(p.grids(draft)) == n0 + 2
    # move a shared boundary: a strip of b goes to a
    grids = p.grids(draft)
    a, b = _adjacent(grids)
    ga, gb = shape(grids[a]["geometry"]), shape(grids[b]["geometry"])
    shared = shapely.line_merge(ga.intersection(gb))
    mid = shared.interpolate(0.5, normalized=True) if shared.geom_type == "LineString" else None
    strip = gb.intersection((mid or shared.representative_point()).buffer(0.00015))
    r = p.edit(
        draft, op="reshape", geoms={a: mapping(ga.union(strip)), b: mapping(gb.difference(strip))}
    )
    assert r.status_code == 200, r.text
    assert sorted(r.json()["changed"]) == sorted([a, b])
    gap, overlap, extra = _partition(published, draft)
    assert gap < 1.0 and overlap < 0.01 and extra == 0
    # undo / redo
    after_reshape = p.grids(draft)
    assert p.c.post(f"/drafts/{draft}/undo").status_code == 200
    assert shape(p.grids(draft)[a]["geometry"]).equals_exact(ga, 1e-7)
    assert p.c.post(f"/drafts/{draft}/redo").status_code == 200
    assert shape(p.grids(draft)[a]["geometry"]).equals_exact(
        shape(after_reshape[a]["geometry"]), 1e-7
    )
    assert p.c.post(f"/drafts/{draft}/redo").status_code == 409  # nothing left to redo
    info = p.c.get(f"/drafts/{draft}").json()
    assert info["can_undo"] == 4 and info["can_redo"] == 0
    valid = p.c.get(f"/drafts/{draft}/validation").json()
    assert valid["valid"], valid

    # publish: the draft becomes current; the old grids stay readable as of before
    with published.connect() as conn:
        t_before = conn.execute(text("SELECT now()")).scalar_one()
        old_version = conn.execute(
            text(
                "SELECT max(version_id) FROM grid WHERE valid_to IS NULL AND valid_from IS NOT NULL"
            )
        ).scalar_one()
    r = p.c.post(f"/drafts/{draft}/publish")
    assert r.status_code == 200, r.text
    current = p.c.get("/grids").json()
    assert {f["id"] for f in current["features"]} == set(p.grids(draft))
    as_of = p.c.get("/grids", params={"at": t_before.isoformat()}).json()
    assert {f["id"] for f in as_of["features"]} == set(before)
    # the lock went with the publish: the other planner may open a draft now
    assert other.c.post("/drafts", json={"communities": [COMMUNITY]}).status_code == 201

    # history: versions, diff, rollback
    versions = p.c.get("/grid-versions").json()
    assert [v["id"] for v in versions][:3] == [draft + 1, draft, old_version]
    d = p.c.get("/grid-versions/diff", params={"base": old_version, "other": draft}).json()
    assert d["summary"]["added"] and d["summary"]["changed"]
    assert {f["properties"]["side"] for f in d["features"]} == {"before", "after"}
    blocked = p.c.post(f"/grid-versions/{old_version}/rollback")
    assert blocked.status_code == 409  # plan2 holds the community in a draft
    assert other.c.delete(f"/drafts/{draft + 1}").status_code == 200
    rb = p.c.post(f"/grid-versions/{old_version}/rollback")
    assert rb.status_code == 200, rb.text
    now = p.c.get("/grids").json()
    assert {f["id"] for f in now["features"]} == set(before)


def test_refused_edits_change_nothing(published: Engine, server: str, settings: Settings) -> None:
    p = Planner(server, _tok(settings, "plan", "planner", "420502"))
    draft = p.c.post("/drafts", json={"communities": [COMMUNITY]}).json()["draft"]
    grids = p.grids(draft)
    a, b = _adjacent(grids)
    ga, gb = shape(grids[a]["geometry"]), shape(grids[b]["geometry"])
    codes = sorted(grids)
    far = next(c for c in codes if shape(grids[c]["geometry"]).distance(ga) > 0.0005)
    line = _cut_line(ga)
    swapped = mapping(shapely.LineString([(y, x) for x, y in shape(line).coords]))
    many = mapping(shapely.Point(ga.centroid).buffer(0.001, quad_segs=6000))
    cases = [
        ({"op": "merge", "codes": [a, far]}, "not-adjacent"),
        (
            {"op": "reshape", "geoms": {a: mapping(ga.union(gb)), b: mapping(gb)}},
            "edit-invalid",
        ),
        ({"op": "split_line", "code": a, "line": swapped}, "probable-lat-lon-swap"),
        ({"op": "replace_one", "code": a, "geom": many}, "too-many-vertices"),
        ({"op": "split_line", "code": a}, "missing-field"),
        ({"op": "delete", "code": "420502001001999"}, "grid-not-found"),
        (
            {"op": "split_line", "code": a, "line": mapping(shapely.LineString([(0, 0), (1, 1)]))},
            "line-does-not-cut",
        ),
    ]
    for body, kind in cases:
        snap = snapshot(published)
        r = p.c.post(f"/drafts/{draft}/edits", json=body)
        assert 400 <= r.status_code < 500, (body["op"], r.status_code, r.text)
        assert r.json()["type"].endswith(kind), (kind, r.json())
        assert snapshot(published) == snap, body["op"]
    overlap = p.c.post(
        f"/drafts/{draft}/edits",
        json={"op": "reshape", "geoms": {a: mapping(ga.union(gb)), b: mapping(gb)}},
    ).json()
    problem = overlap["errors"][0]
    assert problem["kind"] == "sibling-overlap" and {problem["feature"], problem["related"]} == {
        a,
        b,
    }
    assert len(problem["location"]) == 2


def test_move_units_and_impact(published: Engine, server: str, settings: Settings) -> None:
    planner_h = _tok(settings, "plan", "planner", "420502")
    p = Planner(server, planner_h)
    draft = p.c.post("/drafts", json={"communities": [COMMUNITY]}).json()["draft"]
    grids = p.grids(draft)
    a, b = _adjacent(grids)
    ga, gb = shape(grids[a]["geometry"]), shape(grids[b]["geometry"])
    with published.begin() as conn:
        units = conn.execute(
            text("SELECT id, ST_X(geom), ST_Y(geom), households FROM household_unit")
        ).all()
        person = conn.execute(
            text("INSERT INTO person (name, roles) VALUES ('张网格', 'grid_manager') RETURNING id")
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO posting (person_id, grid_code, role) VALUES (:p, :g, 'grid_manager')"
            ),
            {"p": person, "g": b},
        )
    in_a = [u for u in units if ga.contains(shapely.Point(u[1], u[2]))]
    # the units nearest to b, in turn: a move that would cut a grid in two is refused (422,
    # non-contiguous), one whose land touches b is done
    for nearest in sorted(in_a, key=lambda u: gb.distance(shapely.Point(u[1], u[2])))[:8]:
        r = p.edit(draft, op="move_units", units=[nearest[0]], target=b)
        if r.status_code == 200:
            break
        assert r.status_code == 422 and r.json()["errors"][0]["kind"] == "non-contiguous", r.text
    assert r.status_code == 200, r.text
    assert shape(p.grids(draft)[b]["geometry"]).covers(shapely.Point(nearest[1], nearest[2]))
    imp = p.c.get(f"/drafts/{draft}/impact").json()
    moved = imp["households"]
    assert moved["units"] >= 1 and moved["households"] >= nearest[3]
    assert {"from": a, "to": b} in [{k: m[k] for k in ("from", "to")} for m in moved["moves"]]
    # merging b away retires the manager's grid: the posting is flagged, a gap "fixed" for b...
    assert p.edit(draft, op="merge", codes=[a, b]).status_code == 200
    imp = p.c.get(f"/drafts/{draft}/impact").json()
    retired = imp["grids"]["retired"]
    assert len(retired) == 1
    assert imp["postings"]["on_retired_grids"] == (1 if retired == [b] else 0)
    if retired == [b]:
        assert imp["postings"]["postings"][0]["name"] == "张网格"
    # ... and leaders may not preview drafts at all; another district's planner gets 404
    lead = httpx.get(
        f"{server}{API}/drafts/{draft}/impact", headers=_tok(settings, "lead", "leader", None)
    )
    assert lead.status_code == 403
    wjg = httpx.get(
        f"{server}{API}/drafts/{draft}/impact",
        headers=_tok(settings, "plan_wjg", "planner", "420503"),
    )
    assert wjg.status_code == 404
    np.testing.assert_array_less(_partition(published, draft)[:2], (1.0, 0.01))


def test_located_incidents_keep_their_grid(
    published: Engine, server: str, settings: Settings
) -> None:
    with session_scope(published) as s:
        add_user(s, "disp", "dispatcher", None, None)
    disp = _tok(settings, "disp", "dispatcher", None)
    p = Planner(server, _tok(settings, "plan", "planner", "420502"))
    grids = {f["id"]: shape(f["geometry"]) for f in p.c.get("/grids").json()["features"]}
    code = sorted(grids)[0]
    at = grids[code].representative_point()
    r = httpx.post(
        f"{server}{API}/incidents",
        json={"category": "邻里纠纷", "lon": at.x, "lat": at.y},
        headers=disp,
    )
    assert r.status_code == 201, r.text
    ref = r.json()["public_id"]
    located = httpx.get(f"{server}{API}/incidents/{ref}", headers=disp).json()
    assert located["grid_code"] == code
    draft = p.c.post("/drafts", json={"communities": [COMMUNITY]}).json()["draft"]
    assert p.edit(draft, op="delete", code=code).status_code == 200
    imp = p.c.get(f"/drafts/{draft}/impact").json()["incidents"]
    assert imp["open_on_retired_grids"] == 1 and imp["open_in_another_grid_now"] == 1
    assert "incidents" not in imp  # planners see counts, not incident ids
    assert p.c.post(f"/drafts/{draft}/publish").status_code == 200
    after = httpx.get(f"{server}{API}/incidents/{ref}", headers=disp).json()
    assert after["grid_code"] == code  # located in the grid valid at the time


def test_a_draft_starts_from_a_generated_plan(
    published: Engine, server: str, settings: Settings
) -> None:
    """Generate a plan, refine it in a draft before publishing: the draft holds the plan's
    grids, not the current ones; edits and publish work as usual. Versions that are not
    unpublished plans are refused by name, and nothing is written then."""
    planner = Planner(server, _tok(settings, "plan", "planner", "420502"))
    current = planner.c.get("/grids", params={"community": COMMUNITY}).json()["features"]
    plan = planner.c.post(
        "/gridding", json={"community": COMMUNITY, "households_per_grid": 600, "prefer": "compact"}
    ).json()
    assert plan["grids"] != len(current)  # a different partition from the current one
    published_id = max(
        v["id"] for v in planner.c.get("/grid-versions").json() if v["status"] == "published"
    )
    before = snapshot(published)
    for version, status in ((published_id, 409), (10**6, 404)):
        r = planner.c.post("/drafts", json={"communities": [COMMUNITY], "from_version": version})
        assert r.status_code == status, r.text
        assert "plan" in r.text or "not found" in r.text
    assert snapshot(published) == before
    body = {"communities": [COMMUNITY], "from_version": plan["version"]}
    r = planner.c.post("/drafts", json=body)
    assert r.status_code == 201, r.text
    draft = r.json()["draft"]
    grids = planner.grids(draft)
    source = planner.grids(plan["version"])
    assert sorted(grids) == sorted(source)
    assert all(
        shape(grids[c]["geometry"]).equals(shape(source[c]["geometry"]))
        and grids[c]["properties"]["households"] == source[c]["properties"]["households"]
        for c in grids
    )
    # asking again from the same plan reopens it; from another version is a 409 while it is open
    again = planner.c.post("/drafts", json=body)
    assert again.status_code == 201 and again.json()["draft"] == draft
    other = planner.c.post("/drafts", json={"communities": [COMMUNITY]})
    assert other.status_code == 201 and other.json()["draft"] == draft  # plain reopen
    second = planner.c.post("/gridding", json={"community": COMMUNITY, "prefer": "streets"})
    clash = planner.c.post(
        "/drafts", json={"communities": [COMMUNITY], "from_version": second.json()["version"]}
    )
    assert clash.status_code == 409 and f"draft {draft}" in clash.text
    a, b = _adjacent(grids)
    assert planner.edit(draft, op="merge", codes=[a, b]).status_code == 200
    assert planner.c.post(f"/drafts/{draft}/publish").status_code == 200
    now = planner.c.get("/grids", params={"community": COMMUNITY}).json()
    assert now["numberMatched"] == plan["grids"] - 1
