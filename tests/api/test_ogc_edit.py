"""OGC API – Features Part 4 on draft collections over real HTTP: every edit goes through the
draft validation; refused edits change nothing; published collections stay read-only."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import shapely
from shapely.geometry import mapping
from sqlalchemy import Engine, text

from gridmap.settings import Settings
from tests.api.ogc_scenario import N_PUBLISHED, seed
from tests.helpers import COMMUNITY


@pytest.fixture
def draft(community: Engine, settings: Settings, server: str) -> dict[str, Any]:
    """The scenario plus a draft of the community opened (and locked) by ``planner``."""
    city = seed(community, settings)
    r = httpx.post(
        f"{server}/api/v1/drafts",
        json={"communities": [COMMUNITY]},
        headers=city["tokens"]["planner"],
    )
    assert r.status_code == 201, r.text
    vid = r.json().get("draft") or r.json().get("id") or r.json().get("version")
    city["vid"] = int(vid)
    city["items"] = f"{server}/ogc/collections/draft-{vid}/items"
    return city


def draft_grids(city: dict[str, Any]) -> dict[str, Any]:
    with city["engine"].connect() as conn:
        rows = conn.execute(
            text("SELECT code, ST_AsBinary(geom) FROM grid WHERE version_id = :v ORDER BY code"),
            {"v": city["vid"]},
        ).all()
    return {c: shapely.from_wkb(bytes(w)) for c, w in rows}


def published(city: dict[str, Any]) -> list[tuple[str, str]]:
    with city["engine"].connect() as conn:
        return [
            (r[0], r[1])
            for r in conn.execute(
                text(
                    "SELECT code, md5(ST_AsBinary(geom)) FROM grid WHERE valid_to IS NULL "
                    "AND valid_from IS NOT NULL ORDER BY code"
                )
            )
        ]


def as_feature(geom: Any, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": mapping(geom), "properties": props}


def neighbours(grids: dict[str, Any]) -> tuple[str, str]:
    codes = sorted(grids)
    a = codes[0]
    b = max((c for c in codes[1:]), key=lambda c: grids[a].boundary.intersection(grids[c]).length)
    return a, b


def test_options_allow_and_conformance(draft: dict[str, Any], server: str) -> None:
    hdr = draft["tokens"]["planner"]
    code = sorted(draft_grids(draft))[0]
    r = httpx.options(draft["items"], headers=hdr)
    assert r.status_code == 204 and r.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    r = httpx.options(f"{draft['items']}/{code}", headers=hdr)
    assert r.headers["allow"] == "GET, HEAD, OPTIONS, PUT, PATCH, DELETE"
    grids = httpx.options(f"{server}/ogc/collections/grids/items", headers=hdr)
    assert grids.headers["allow"] == "GET, HEAD, OPTIONS"
    # leaders cannot see drafts at all; volunteers nothing
    assert httpx.options(draft["items"], headers=draft["tokens"]["leader"]).status_code == 404
    assert httpx.options(draft["items"], headers=draft["tokens"]["vol"]).status_code == 403
    conf = httpx.get(f"{server}/ogc/conformance", headers=hdr).json()["conformsTo"]
    assert any(c.endswith("/conf/create-replace-delete") for c in conf)
    assert any(c.endswith("ogcapi-features-4/1.0/conf/update") for c in conf)


def test_replace_moves_the_shared_edge(draft: dict[str, Any]) -> None:
    before = draft_grids(draft)
    a, b = neighbours(before)
    total = shapely.union_all(list(before.values())).area
    bite = before[b].intersection(before[a].buffer(0.0003, join_style="mitre"))
    outline = shapely.union(before[a], bite)
    r = httpx.put(
        f"{draft['items']}/{a}",
        json=as_feature(outline, code=a),
        headers={**draft["tokens"]["planner"], "Content-Type": "application/geo+json"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["id"] == a and r.headers["content-type"].startswith("application/geo+json")
    after = draft_grids(draft)
    assert after[a].area > before[a].area and after[b].area < before[b].area
    assert shapely.hausdorff_distance(after[a], outline) < 1e-6
    assert abs(shapely.union_all(list(after.values())).area - total) < 1e-6 * total  # ≈ 1 m²
    assert published(draft) != [] and len(published(draft)) == N_PUBLISHED


def test_invalid_replace_is_422_and_changes_nothing(draft: dict[str, Any]) -> None:
    before = draft_grids(draft)
    pub = published(draft)
    a = sorted(before)[0]
    far = shapely.box(100.0, 20.0, 100.01, 20.01)  # outside the community
    bowtie = {"type": "Polygon", "coordinates": [[[111, 30], [111.1, 30.1], [111.1, 30],
                                                  [111, 30.1], [111, 30]]]}  # fmt: skip
    bodies = [
        as_feature(far),
        {"type": "Feature", "geometry": bowtie, "properties": {}},
        {"type": "Feature", "geometry": None, "properties": {}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [111, 30]}},
        as_feature(before[a], kind="religious"),
        as_feature(before[a], colour="red"),
        as_feature(before[a], code="420502001001999"),
    ]
    for body in bodies:
        r = httpx.put(f"{draft['items']}/{a}", json=body, headers=draft["tokens"]["planner"])
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    hole = before[a].difference(before[a].centroid.buffer(0.0002))
    r = httpx.put(
        f"{draft['items']}/{a}", json=as_feature(hole), headers=draft["tokens"]["planner"]
    )
    assert r.status_code == 422, r.text  # the hole would be a gap: validation refuses it
    assert r.json()["errors"], r.text
    assert draft_grids(draft) == before and published(draft) == pub


def test_create_and_delete(draft: dict[str, Any]) -> None:
    before = draft_grids(draft)
    total = shapely.union_all(list(before.values())).area
    a = sorted(before)[0]
    inner = before[a].buffer(-0.0006)
    inner = shapely.box(*inner.centroid.buffer(0.0004).bounds).intersection(inner)
    r = httpx.post(draft["items"], json=as_feature(inner), headers=draft["tokens"]["planner"])
    assert r.status_code == 201, r.text
    new = r.json()["id"]
    assert r.headers["location"].endswith(f"/items/{new}")
    assert httpx.get(r.headers["location"], headers=draft["tokens"]["planner"]).status_code == 200
    mid = draft_grids(draft)
    assert set(mid) == set(before) | {new} and new.startswith(COMMUNITY)
    r = httpx.delete(f"{draft['items']}/{new}", headers=draft["tokens"]["planner"])
    assert r.status_code == 204, r.text
    after = draft_grids(draft)
    assert set(after) == set(before)
    assert abs(shapely.union_all(list(after.values())).area - total) < 1e-6 * total  # ≈ 1 m²
    gone = httpx.get(f"{draft['items']}/{new}", headers=draft["tokens"]["planner"])
    assert gone.status_code == 404


def test_patch(draft: dict[str, Any]) -> None:
    before = draft_grids(draft)
    a, b = neighbours(before)
    hdr = {**draft["tokens"]["planner"], "Content-Type": "application/merge-patch+json"}
    same = httpx.patch(f"{draft['items']}/{a}", json={"properties": {"code": a}}, headers=hdr)
    assert same.status_code == 200 and draft_grids(draft) == before
    bite = before[b].intersection(before[a].buffer(0.0003, join_style="mitre"))
    outline = shapely.union(before[a], bite)
    r = httpx.patch(f"{draft['items']}/{a}", json={"geometry": mapping(outline)}, headers=hdr)
    assert r.status_code == 200, r.text
    assert draft_grids(draft)[a].area > before[a].area
    bad = httpx.patch(f"{draft['items']}/{a}", json={"properties": {"kind": "other"}}, headers=hdr)
    assert bad.status_code == 422 and bad.json()["type"].endswith("read-only-property")


def test_read_only_collections_roles_locks_and_scope(draft: dict[str, Any], server: str) -> None:
    code = draft["codes"][0]
    feat = as_feature(shapely.box(111, 30, 111.001, 30.001))
    for method, path in (("PUT", f"/grids/items/{code}"), ("POST", "/grids/items"),
                         ("DELETE", "/districts/items/420502")):  # fmt: skip
        r = httpx.request(
            method,
            f"{server}/ogc/collections{path}",
            json=feat if method != "DELETE" else None,
            headers=draft["tokens"]["admin"],
        )
        assert r.status_code == 405, (method, path, r.text)
        assert r.headers["allow"] == "GET, HEAD, OPTIONS"
    target = f"{draft['items']}/{sorted(draft_grids(draft))[0]}"
    for who in ("leader", "disp", "gm"):
        assert httpx.delete(target, headers=draft["tokens"][who]).status_code == 403, who
    # another planner cannot edit a draft ``planner`` holds
    r = httpx.delete(target, headers=draft["tokens"]["planner_xl"])
    assert r.status_code == 409 and r.json()["type"].endswith("draft-locked")
    assert httpx.delete(target, headers=draft["tokens"]["planner_wjg"]).status_code == 404
    assert httpx.delete(f"{draft['items']}/420502001001999",
                        headers=draft["tokens"]["planner"]).status_code == 404  # fmt: skip
