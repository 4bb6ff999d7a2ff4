"""OGC API – Features over real HTTP, and read by GDAL's own OAPIF driver (ogrinfo)."""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any

import httpx
import pytest
import shapely
from sqlalchemy import Engine, text

from gridmap.settings import Settings
from tests.api.ogc_scenario import CANARY_CONTACT, CANARY_REPORTER, N_PUBLISHED, seed

STATIC = ["districts", "streets", "communities", "grids"]


@pytest.fixture
def city(community: Engine, settings: Settings) -> dict[str, Any]:
    return seed(community, settings)


def get(server: str, city: dict[str, Any], path: str, who: str = "admin", **params: Any):
    return httpx.get(f"{server}/ogc{path}", params=params, headers=city["tokens"][who])


def test_landing_and_conformance(city: dict[str, Any], server: str) -> None:
    r = get(server, city, "")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    rels = {x["rel"]: x["href"] for x in r.json()["links"]}
    assert set(rels) >= {"self", "service-desc", "conformance", "data"}
    assert rels["service-desc"] == f"{server}/openapi.json"
    assert httpx.get(rels["service-desc"]).status_code == 200
    conf = get(server, city, "/conformance").json()["conformsTo"]
    for cls in ("core", "geojson", "oas30"):
        assert f"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/{cls}" in conf
    assert httpx.get(f"{server}/ogc").status_code == 401  # same bearer token as the API


def ids(body: dict[str, Any]) -> list[str]:
    return [c["id"] for c in body["collections"]]


def test_collections_by_role(city: dict[str, Any], server: str) -> None:
    draft = f"draft-{city['draft']}"
    assert ids(get(server, city, "/collections").json()) == [*STATIC, "incidents", draft]
    assert ids(get(server, city, "/collections", "planner").json()) == [*STATIC, draft]
    assert ids(get(server, city, "/collections", "disp").json()) == [*STATIC, "incidents"]
    # leaders never see exact incident points; drafts are for editors
    assert ids(get(server, city, "/collections", "leader").json()) == STATIC
    # a draft lying outside the caller's area is not theirs to see
    assert ids(get(server, city, "/collections", "planner_wjg").json()) == STATIC
    assert ids(get(server, city, "/collections", "planner_xl").json()) == [*STATIC, draft]
    one = get(server, city, "/collections/grids").json()
    x0, y0, x1, y1 = one["extent"]["spatial"]["bbox"][0]
    assert 111 < x0 < x1 < 112 and 30 < y0 < y1 < 31
    assert any(x["rel"] == "items" and x["type"] == "application/geo+json" for x in one["links"])
    assert get(server, city, "/collections/incidents", "leader").status_code == 404
    assert get(server, city, f"/collections/{draft}", "leader").status_code == 404
    assert get(server, city, "/collections/nothing").status_code == 404


def test_wrong_role_is_403(city: dict[str, Any], server: str) -> None:
    for path in ("", "/collections", "/collections/grids/items"):
        r = get(server, city, path, "vol")
        assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"


def test_items_page_through_all_grids_exactly_once(city: dict[str, Any], server: str) -> None:
    r = get(server, city, "/collections/grids/items", limit=3)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    seen: list[str] = []
    pages = 0
    url: str | None = str(r.url)
    while url:
        body = httpx.get(url, headers=city["tokens"]["admin"]).json()
        assert body["numberMatched"] == N_PUBLISHED
        assert body["numberReturned"] == len(body["features"]) <= 3
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["timeStamp"])
        seen += [f["id"] for f in body["features"]]
        links = {x["rel"]: x["href"] for x in body["links"]}
        assert "self" in links and ("prev" in links) == (pages > 0)
        url = links.get("next")
        pages += 1
    assert pages == 3 and seen == city["codes"]
    feat = get(server, city, "/collections/grids/items", limit=1).json()["features"][0]
    assert feat["properties"]["community"] == "420502001001"
    assert feat["properties"]["comm_name"] == "测试社区"
    lon, lat = feat["geometry"]["coordinates"][0][0][0]
    assert 111 < lon < 112 and 30 < lat < 31


def test_limit_is_capped_and_validated(
    city: dict[str, Any], server: str, settings: Settings
) -> None:
    big = get(server, city, "/collections/grids/items", limit=10**6).json()
    assert big["numberReturned"] == N_PUBLISHED
    self_link = next(x["href"] for x in big["links"] if x["rel"] == "self")
    assert f"limit={settings.max_page_size}" in self_link
    for bad in ({"limit": 0}, {"limit": "x"}, {"offset": -1}, {"f": "html"}):
        r = get(server, city, "/collections/grids/items", **bad)
        assert r.status_code == 422, bad


def test_bbox(city: dict[str, Any], server: str) -> None:
    geoms = city["geoms"]
    first = geoms[city["codes"][0]]
    box = shapely.box(*first.centroid.buffer(0.0005).bounds)
    expected = sorted(c for c, g in geoms.items() if g.intersects(box))
    r = get(server, city, "/collections/grids/items", bbox=",".join(map(str, box.bounds)))
    assert r.status_code == 200
    assert [f["id"] for f in r.json()["features"]] == expected
    assert r.json()["numberMatched"] == len(expected) < N_PUBLISHED
    far = get(server, city, "/collections/grids/items", bbox="0,0,1,1").json()
    assert far["numberMatched"] == 0 and far["features"] == []


@pytest.mark.parametrize(
    "bbox",
    [
        "1,2,3",
        "1,2,3,4,5,6",
        "a,b,c,d",
        "111,30,110,31",
        "111,31,112,30",
        "200,30,201,31",
        "nan,30,112,31",
        "111,30,inf,31",
        "",
    ],
)
def test_bad_bbox_is_422(city: dict[str, Any], server: str, bbox: str) -> None:
    r = get(server, city, "/collections/grids/items", bbox=bbox)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("invalid-bbox")


def test_item_and_scope(city: dict[str, Any], server: str) -> None:
    code = city["codes"][0]
    r = get(server, city, f"/collections/grids/items/{code}", "planner_xl")
    assert r.status_code == 200 and r.json()["id"] == code
    assert r.headers["content-type"].startswith("application/geo+json")
    hidden = get(server, city, f"/collections/grids/items/{code}", "planner_wjg")
    assert hidden.status_code == 404  # outside the caller's area looks absent
    empty = get(server, city, "/collections/grids/items", "planner_wjg").json()
    assert empty["numberMatched"] == 0
    area = get(server, city, "/collections/districts/items/420502", "planner_xl")
    assert area.status_code == 200 and area.json()["properties"]["name"] == "西陵区"
    assert get(server, city, "/collections/districts/items/420503", "planner_xl").status_code == 404
    assert get(server, city, "/collections/grids/items/999", "admin").status_code == 404
    wjg = get(server, city, "/collections/districts/items", "planner_wjg").json()
    assert [f["id"] for f in wjg["features"]] == ["420503"]


def test_incidents_without_personal_data(city: dict[str, Any], server: str) -> None:
    body = get(server, city, "/collections/incidents/items", "disp")
    assert body.status_code == 200
    feats = body.json()["features"]
    assert sorted(f["id"] for f in feats) == sorted(city["incidents"])
    assert feats[0]["geometry"]["type"] == "Point"
    for canary in (CANARY_CONTACT, CANARY_REPORTER, "某路1号", "漏水"):
        assert canary not in body.text
    one = get(server, city, f"/collections/incidents/items/{city['incidents'][0]}", "gm")
    assert one.status_code == 200 and CANARY_CONTACT not in one.text
    assert get(server, city, "/collections/incidents/items", "leader").status_code == 404
    # disp_wjg may read incidents, but none lies in 伍家岗区
    other = get(server, city, "/collections/incidents/items", "disp_wjg").json()
    assert other["numberMatched"] == 0 and other["features"] == []
    hidden = city["incidents"][0]
    assert (
        get(server, city, f"/collections/incidents/items/{hidden}", "disp_wjg").status_code == 404
    )


def test_draft_collection(city: dict[str, Any], server: str) -> None:
    cid = f"draft-{city['draft']}"
    body = get(server, city, f"/collections/{cid}/items", "planner").json()
    assert body["numberMatched"] == 5
    assert {f["properties"]["version"] for f in body["features"]} == {city["draft"]}


def test_format_negotiation(city: dict[str, Any], server: str) -> None:
    path = "/collections/grids/items"
    as_json = get(server, city, path, f="json")
    assert as_json.headers["content-type"].startswith("application/json")
    assert as_json.json()["type"] == "FeatureCollection"
    accept = httpx.get(
        f"{server}/ogc{path}", headers={**city["tokens"]["admin"], "Accept": "application/json"}
    )
    assert accept.headers["content-type"].startswith("application/json")
    browser = httpx.get(
        f"{server}/ogc{path}",
        headers={**city["tokens"]["admin"], "Accept": "text/html,application/xml;q=0.9,*/*;q=0.8"},
    )
    assert browser.headers["content-type"].startswith("application/geo+json")
    head = httpx.head(f"{server}/ogc{path}", headers=city["tokens"]["admin"])
    assert head.status_code == 200 and head.content == b""


def test_options_read_only_allow(city: dict[str, Any], server: str) -> None:
    code = city["codes"][0]
    for path in ("/collections/grids/items", f"/collections/grids/items/{code}"):
        r = httpx.options(f"{server}/ogc{path}", headers=city["tokens"]["planner"])
        assert r.status_code == 204 and r.headers["allow"] == "GET, HEAD, OPTIONS"


def gdal_env(city: dict[str, Any], who: str = "admin") -> dict[str, str]:
    return {
        **os.environ,
        "GDAL_HTTP_HEADERS": f"Authorization: {city['tokens'][who]['Authorization']}",
        "CPL_DEBUG": "OFF",
    }


def test_ogrinfo_lists_collections_and_reads_all_grids(city: dict[str, Any], server: str) -> None:
    src = f"OAPIF:{server}/ogc"
    listing = subprocess.run(
        ["ogrinfo", "-ro", "-q", src], env=gdal_env(city), capture_output=True, text=True
    )
    assert listing.returncode == 0, listing.stderr
    for cid in [*STATIC, "incidents", f"draft-{city['draft']}"]:
        assert re.search(rf"^\d+: {re.escape(cid)}\b", listing.stdout, re.M), listing.stdout
    out = subprocess.run(
        ["ogrinfo", "-ro", "-al", "-oo", "PAGE_SIZE=3", src, "grids"],
        env=gdal_env(city),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    with city["engine"].connect() as conn:
        n_db = conn.execute(
            text("SELECT count(*) FROM grid WHERE valid_from IS NOT NULL AND valid_to IS NULL")
        ).scalar_one()
    got = re.findall(r"^\s+code \(String\) = (\d+)$", out.stdout, re.M)
    assert len(got) == n_db == N_PUBLISHED and sorted(got) == city["codes"]
    assert "测试社区" in out.stdout
    box = shapely.box(*city["geoms"][city["codes"][0]].centroid.buffer(0.0005).bounds)
    expected = sorted(c for c, g in city["geoms"].items() if g.intersects(box))
    copy = subprocess.run(
        ["ogr2ogr", "-f", "CSV", "/vsistdout/", src, "grids", "-spat", *map(str, box.bounds)],
        env=gdal_env(city),
        capture_output=True,
        text=True,
    )
    assert copy.returncode == 0, copy.stderr
    assert sorted(re.findall(r"^\"(\d{15})\",", copy.stdout, re.M)) == expected  # id first
    leader = subprocess.run(
        ["ogrinfo", "-ro", "-q", src], env=gdal_env(city, "leader"), capture_output=True, text=True
    )
    assert leader.returncode == 0 and "incidents" not in leader.stdout
