"""Locate, Open311 intake, recommendation, atomic dispatch and lifecycle over real HTTP."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import httpx
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from gridmap.crs import from_wgs84
from gridmap.security import TokenClaims, issue_token
from gridmap.settings import Settings
from gridmap.store.db import session_scope
from gridmap.store.grids import publish_version, run_gridding, select_communities
from gridmap.store.users import add_user

N_GRIDS = 6


@pytest.fixture
def city(community: Engine, settings: Settings) -> dict[str, Any]:
    """Six published grids, one mediator per grid (home at the grid's representative point),
    a second mediator in grid 001, one off duty; users per role."""
    with session_scope(community) as s:
        result = run_gridding(s, select_communities(s), user="t", n_grids=N_GRIDS)
        publish_version(s, result.version_id, user="t")
        grids = s.execute(text("SELECT code, ST_AsBinary(geom) FROM grid ORDER BY code")).all()
        mediators = []
        for i, (code, wkb) in enumerate(grids):
            p = shapely.from_wkb(bytes(wkb)).representative_point()
            mediators.append((f"调解员{i}", code, p.x, p.y, "available"))
        p0 = shapely.from_wkb(bytes(grids[0][1])).representative_point()
        mediators.append(("调解员备", grids[0][0], p0.x + 1e-5, p0.y, "available"))
        mediators.append(("休息员", grids[1][0], p0.x, p0.y, "off_duty"))
        ids = []
        for name, code, x, y, status in mediators:
            pid = s.execute(
                text(
                    "INSERT INTO person (name, roles, status, caseload_cap, home) VALUES "
                    "(:n, 'mediator', :s, 3, ST_SetSRID(ST_MakePoint(:x, :y), 4326)) RETURNING id"
                ),
                {"n": name, "s": status, "x": x, "y": y},
            ).scalar_one()
            s.execute(
                text(
                    "INSERT INTO posting (person_id, grid_code, role) VALUES (:p, :g, 'mediator')"
                ),
                {"p": pid, "g": code},
            )
            ids.append(pid)
        deputy = s.execute(
            text(
                "INSERT INTO person (name, roles, status) VALUES ('人大代表甲', 'co_mediator', "
                "'available') RETURNING id"
            )
        ).scalar_one()
        s.execute(
            text("INSERT INTO co_mediator (person_id, area_code) VALUES (:p, '420502')"),
            {"p": deputy},
        )
        users = [
            ("disp", "dispatcher", None),
            ("gm", "grid_manager", None),
            ("lead", "leader", None),
            ("disp_other", "dispatcher", "420503"),
        ]
        for name, role, area in users:
            add_user(s, name, role, area, None)
    tokens = {
        name: {
            "Authorization": "Bearer "
            + issue_token(
                TokenClaims(name, role, area, 0),
                settings.signing_key(),
                settings.token_audience,
                30,
            )
        }
        for name, role, area in users
    }
    geoms = [shapely.from_wkb(bytes(w)) for _, w in grids]
    return {
        "codes": [c for c, _ in grids],
        "geoms": geoms,
        "mediators": ids,
        "tokens": tokens,
        "engine": community,
    }


def oracle(city: dict[str, Any], lon: float, lat: float) -> str | None:
    """Brute force: the lowest code among grids covering the point."""
    pt = shapely.Point(lon, lat)
    hits = [c for c, g in zip(city["codes"], city["geoms"], strict=True) if g.covers(pt)]
    return min(hits) if hits else None


def report(server: str, city: dict[str, Any], lon: float, lat: float, **kw: Any) -> dict:
    body = {"category": kw.pop("category", "邻里纠纷"), "lon": lon, "lat": lat, **kw}
    r = httpx.post(f"{server}/api/v1/incidents", json=body, headers=city["tokens"]["disp"])
    assert r.status_code == 201, r.text
    return r.json()


def test_locate_matches_oracle_on_edges_and_vertices(city: dict[str, Any], server: str) -> None:
    hdr = city["tokens"]["disp"]
    shared = city["geoms"][0].boundary.intersection(shapely.union_all(city["geoms"][1:]).boundary)
    pts = [shapely.get_coordinates(shared)[0]]  # a vertex shared by grids
    pts.append(
        np.array(
            shapely.line_interpolate_point(
                shapely.get_parts(shapely.line_merge(shared))[0], 0.5, normalized=True
            ).coords[0]
        )
    )
    for lon, lat in pts:
        r = httpx.get(f"{server}/api/v1/locate", params={"lon": lon, "lat": lat}, headers=hdr)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["grid"] == oracle(city, lon, lat)
        assert body["near_boundary"] is True and body["nearby_grids"]
        assert body["community"] == body["grid"][:12] and body["district"] == "420502"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fx=st.floats(0.02, 0.98),
    fy=st.floats(0.02, 0.98),
    system=st.sampled_from(["wgs84", "gcj02", "bd09"]),
)
def test_locate_random_points_any_crs(
    city: dict[str, Any], server: str, fx: float, fy: float, system: str
) -> None:
    minx, miny, maxx, maxy = shapely.union_all(city["geoms"]).bounds
    lon, lat = minx + fx * (maxx - minx), miny + fy * (maxy - miny)
    expected = oracle(city, lon, lat)
    x, y = (float(v) for v in from_wgs84(lon, lat, system))
    r = httpx.get(
        f"{server}/api/v1/locate",
        params={"lon": x, "lat": y, "crs": system},
        headers=city["tokens"]["disp"],
    )
    if expected is None:
        assert r.status_code == 422
    else:
        assert r.status_code == 200 and r.json()["grid"] == expected


def test_gcj02_taken_as_wgs84_lands_elsewhere(city: dict[str, Any], server: str) -> None:
    c = city["geoms"][2].representative_point()
    gx, gy = (float(v) for v in from_wgs84(c.x, c.y, "gcj02"))
    hdr = city["tokens"]["disp"]
    right = httpx.get(
        f"{server}/api/v1/locate", params={"lon": gx, "lat": gy, "crs": "gcj02"}, headers=hdr
    ).json()
    assert right["grid"] == city["codes"][2]
    wrong = httpx.get(f"{server}/api/v1/locate", params={"lon": gx, "lat": gy}, headers=hdr)
    assert wrong.status_code == 422 or wrong.json()["grid"] != city["codes"][2]


@pytest.mark.parametrize(
    "params,code",
    [
        ({"lon": "nan", "lat": 30.7}, "non-finite-coordinate"),
        ({"lon": 200, "lat": 30.7}, "coordinate-out-of-range"),
        ({"lon": 24.9, "lat": 60.2}, "outside-service-area"),
        ({"lon": 111.3, "lat": 30.7, "crs": "mars"}, "unknown-crs"),
    ],
)
def test_locate_rejects_bad_points(
    city: dict[str, Any], server: str, params: dict, code: str
) -> None:
    r = httpx.get(f"{server}/api/v1/locate", params=params, headers=city["tokens"]["disp"])
    assert r.status_code == 422 and r.json()["type"].endswith(code)


def test_locate_detects_swapped_lat_lon(city: dict[str, Any], server: str) -> None:
    c = city["geoms"][0].representative_point()
    r = httpx.get(
        f"{server}/api/v1/locate", params={"lon": c.y, "lat": c.x}, headers=city["tokens"]["disp"]
    )
    assert r.status_code == 422 and r.json()["type"].endswith("probable-lat-lon-swap")


def test_open311_round_trip(city: dict[str, Any], server: str) -> None:
    services = httpx.get(f"{server}/open311/v2/services.json").json()
    names = {s["service_name"] for s in services}
    assert {
        "邻里纠纷",
        "婚姻家庭",
        "物业纠纷",
        "土地承包",
        "宅基地",
        "拆迁补偿",
        "劳动争议",
        "其他",
    } == names
    assert all(
        set(s)
        >= {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}
        for s in services
    )
    c = city["geoms"][3].representative_point()
    gx, gy = (float(v) for v in from_wgs84(c.x, c.y, "gcj02"))
    code = next(s["service_code"] for s in services if s["service_name"] == "物业纠纷")
    r = httpx.post(
        f"{server}/open311/v2/requests.json",
        headers=city["tokens"]["gm"],
        data={
            "service_code": code,
            "lat": gy,
            "long": gx,
            "coord_sys": "gcj02",
            "description": "楼上漏水",
            "address_string": "测试路1号",
        },
    )
    assert r.status_code == 201, r.text
    [created] = r.json()
    assert set(created) == {"service_request_id", "service_notice", "account_id"}
    rid = created["service_request_id"]
    [one] = httpx.get(
        f"{server}/open311/v2/requests/{rid}.json", headers=city["tokens"]["gm"]
    ).json()
    assert one["status"] == "open" and one["service_code"] == code
    assert one["agency_responsible"] == city["codes"][3]
    assert abs(one["lat"] - c.y) < 1e-6 and abs(one["long"] - c.x) < 1e-6
    listed = httpx.get(
        f"{server}/open311/v2/requests.json",
        params={"status": "open"},
        headers=city["tokens"]["gm"],
    ).json()
    assert rid in [x["service_request_id"] for x in listed]
    closed = httpx.get(
        f"{server}/open311/v2/requests.json",
        params={"status": "closed"},
        headers=city["tokens"]["gm"],
    ).json()
    assert rid not in [x["service_request_id"] for x in closed]
    missing = httpx.post(
        f"{server}/open311/v2/requests.json",
        headers=city["tokens"]["gm"],
        data={"service_code": code, "address_string": "x"},
    )
    assert missing.status_code == 422
    assert (
        httpx.get(
            f"{server}/open311/v2/requests/NOPE.json", headers=city["tokens"]["gm"]
        ).status_code
        == 404
    )


def test_recommend_dispatch_and_lifecycle(city: dict[str, Any], server: str) -> None:
    hdr = city["tokens"]["disp"]
    c = city["geoms"][0].representative_point()
    inc = report(server, city, c.x, c.y, category="婚姻家庭")
    assert inc["grid_code"] == city["codes"][0] and inc["status"] == "reported"
    rec = httpx.get(
        f"{server}/api/v1/incidents/{inc['public_id']}/recommendation", headers=hdr
    ).json()
    assert rec["candidates"][0]["reason"] == "OWN_GRID"
    own = [x for x in rec["candidates"] if x["reason"] == "OWN_GRID"]
    assert len(own) == 2  # both grid-001 mediators come before anyone else
    assert any(s["code"] == "OFF_DUTY" for s in rec["skipped"])
    assert [i["name"] for i in rec["invited"]] == ["人大代表甲"]  # 婚姻家庭 invites deputies
    other = report(server, city, c.x, c.y, category="物业纠纷")
    rec2 = httpx.get(
        f"{server}/api/v1/incidents/{other['public_id']}/recommendation", headers=hdr
    ).json()
    assert rec2["invited"] == []
    r = httpx.post(
        f"{server}/api/v1/incidents/{inc['public_id']}/dispatch",
        headers=hdr,
        json={},
    )
    assert r.status_code == 200, r.text
    sent = r.json()
    assert (
        sent["reason"] == "OWN_GRID"
        and sent["person_id"] in city["mediators"][:1] + city["mediators"][-2:-1]
    )
    again = httpx.post(f"{server}/api/v1/incidents/{inc['public_id']}/dispatch", headers=hdr)
    assert again.status_code == 409
    steps = ["accepted", "on_site", "resolved", "closed"]
    for to in steps:
        r = httpx.post(
            f"{server}/api/v1/incidents/{inc['public_id']}/transitions",
            json={"to": to},
            headers=city["tokens"]["gm"],
        )
        assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "success" and r.json()["status"] == "closed"
    illegal = httpx.post(
        f"{server}/api/v1/incidents/{inc['public_id']}/transitions",
        json={"to": "on_site"},
        headers=hdr,
    )
    assert illegal.status_code == 409 and illegal.json()["type"].endswith("illegal-transition")
    with city["engine"].connect() as conn:
        events = conn.execute(
            text(
                "SELECT from_status, to_status FROM incident_event e JOIN incident i ON "
                "i.id = e.incident_id WHERE i.public_id = :p ORDER BY e.id"
            ),
            {"p": inc["public_id"]},
        ).all()
        active = conn.execute(
            text(
                "SELECT count(*) FROM dispatch_assignment WHERE status IN "
                "('dispatched','accepted','on_site')"
            )
        ).scalar_one()
    assert [tuple(e) for e in events] == [
        (None, "reported"),
        ("reported", "dispatched"),
        ("dispatched", "accepted"),
        ("accepted", "on_site"),
        ("on_site", "resolved"),
        ("resolved", "closed"),
    ]
    assert active == 0


def test_named_mediator_taken_is_409_and_idempotent_replay(
    city: dict[str, Any], server: str
) -> None:
    hdr = city["tokens"]["disp"]
    c = city["geoms"][4].representative_point()
    a, b = report(server, city, c.x, c.y), report(server, city, c.x, c.y)
    who = city["mediators"][4]
    key = {"Idempotency-Key": "req-1"}
    first = httpx.post(
        f"{server}/api/v1/incidents/{a['public_id']}/dispatch",
        json={"person_id": who},
        headers={**hdr, **key},
    )
    assert first.status_code == 200
    replay = httpx.post(
        f"{server}/api/v1/incidents/{a['public_id']}/dispatch",
        json={"person_id": who},
        headers={**hdr, **key},
    )
    assert replay.status_code == 200 and replay.json()["person_id"] == who
    assert replay.json().get("replayed") is True
    reuse = httpx.post(
        f"{server}/api/v1/incidents/{b['public_id']}/dispatch",
        json={"person_id": who},
        headers={**hdr, **key},
    )
    assert reuse.status_code == 422
    taken = httpx.post(
        f"{server}/api/v1/incidents/{b['public_id']}/dispatch", json={"person_id": who}, headers=hdr
    )
    assert taken.status_code == 409 and taken.json()["type"].endswith("mediator-taken")
    # decline frees the mediator and the incident can be dispatched again
    d = httpx.post(
        f"{server}/api/v1/incidents/{a['public_id']}/transitions",
        json={"to": "reported", "decline": True},
        headers=city["tokens"]["gm"],
    )
    assert d.status_code == 200 and d.json()["mediator_id"] is None
    ok = httpx.post(
        f"{server}/api/v1/incidents/{b['public_id']}/dispatch", json={"person_id": who}, headers=hdr
    )
    assert ok.status_code == 200


def test_scope_and_roles(city: dict[str, Any], server: str) -> None:
    c = city["geoms"][0].representative_point()
    inc = report(server, city, c.x, c.y)
    other = httpx.get(
        f"{server}/api/v1/incidents/{inc['public_id']}", headers=city["tokens"]["disp_other"]
    )
    assert other.status_code == 404
    leader = httpx.get(
        f"{server}/api/v1/incidents/{inc['public_id']}", headers=city["tokens"]["lead"]
    )
    assert leader.status_code == 403
    gm = httpx.post(
        f"{server}/api/v1/incidents/{inc['public_id']}/dispatch", headers=city["tokens"]["gm"]
    )
    assert gm.status_code == 403


def test_concurrent_dispatchers_never_share_a_mediator(city: dict[str, Any], server: str) -> None:
    """32 dispatchers released together on 32 incidents, few mediators: per trial each
    mediator is sent at most once, every answer is 200 or 409, never 5xx."""
    hdr = city["tokens"]["disp"]
    c = city["geoms"][2].representative_point()
    engine = city["engine"]
    statuses: Counter[int] = Counter()
    for _trial in range(5):
        incs = [report(server, city, c.x, c.y)["public_id"] for _ in range(32)]
        barrier = threading.Barrier(32)
        results: list[tuple[int, dict]] = []
        lock = threading.Lock()

        def go(ref: str, barrier: Any = barrier, results: Any = results, lock: Any = lock) -> None:
            with httpx.Client(timeout=30) as client:
                barrier.wait()
                r = client.post(f"{server}/api/v1/incidents/{ref}/dispatch", headers=hdr)
                with lock:
                    results.append((r.status_code, r.json()))

        threads = [threading.Thread(target=go, args=(ref,)) for ref in incs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses.update(code for code, _ in results)
        sent = [body["person_id"] for code, body in results if code == 200]
        assert len(sent) == len(set(sent)), "a mediator was sent twice"
        with engine.connect() as conn:
            dup = conn.execute(
                text(
                    "SELECT count(*) FROM (SELECT person_id FROM dispatch_assignment WHERE "
                    "status IN ('dispatched','accepted','on_site') GROUP BY person_id "
                    "HAVING count(*) > 1) x"
                )
            ).scalar_one()
        assert dup == 0
        with engine.begin() as conn:  # free everyone for the next trial
            conn.execute(
                text(
                    "UPDATE dispatch_assignment SET status = 'cancelled' WHERE status "
                    "IN ('dispatched','accepted','on_site')"
                )
            )
            conn.execute(text("UPDATE incident SET status = 'closed'"))
    assert set(statuses) <= {200, 409}, statuses
    assert statuses[200] >= 5 * 6  # every available mediator was used each trial


def test_locate_batch_matches_single_and_oracle(city: dict[str, Any], server: str) -> None:
    hdr = city["tokens"]["disp"]
    rng = np.random.default_rng(5)
    minx, miny, maxx, maxy = shapely.union_all(city["geoms"]).bounds
    lon = rng.uniform(minx - 0.002, maxx + 0.002, 400)
    lat = rng.uniform(miny - 0.002, maxy + 0.002, 400)
    # points exactly on shared vertices, a NaN and a swapped point
    verts = shapely.get_coordinates(city["geoms"][0].boundary)[:5]
    c = city["geoms"][1].representative_point()
    lon = np.r_[lon, verts[:, 0], np.nan, c.y]
    lat = np.r_[lat, verts[:, 1], 30.7, c.x]
    body = "id,lon,lat\n" + "\n".join(
        f"p{i},{float(x)!r},{float(y)!r}" for i, (x, y) in enumerate(zip(lon, lat, strict=True))
    )
    r = httpx.post(
        f"{server}/api/v1/locate:batch",
        content=body.encode(),
        headers={**hdr, "content-type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    rows = [line.split(",") for line in r.text.strip().splitlines()[1:]]
    assert [row[0] for row in rows] == [f"p{i}" for i in range(len(lon))]
    for (_id, grid, status), x, y in zip(rows, lon, lat, strict=True):
        if not np.isfinite(x):
            assert status == "invalid"
            continue
        expected = oracle(city, x, y)
        assert (grid or None) == expected, (x, y, status)
        assert status == ("ok" if expected else status)
    assert rows[-1][2] in ("probable-lat-lon-swap", "out-of-range")
    for i in range(0, 400, 80):  # the single lookup gives the same answer
        one = httpx.get(
            f"{server}/api/v1/locate", params={"lon": lon[i], "lat": lat[i]}, headers=hdr
        )
        assert (one.json()["grid"] if one.status_code == 200 else "") == rows[i][1]
    gj = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": "a",
                "geometry": {"type": "Point", "coordinates": [verts[0][0], verts[0][1]]},
            }
        ],
    }
    j = httpx.post(f"{server}/api/v1/locate:batch", json=gj, headers=hdr)
    assert j.status_code == 200 and j.json()[0]["grid"] == oracle(city, *verts[0])
    bad = httpx.post(
        f"{server}/api/v1/locate:batch",
        content=b"a,b\n1,2\n",
        headers={**hdr, "content-type": "text/csv"},
    )
    assert bad.status_code == 422


CANARIES = (
    "CANARY-CS-7731",
    "金丝雀测试员",
    "金丝雀纠纷描述",
    "2913579",
    "7024681",
    "420502199001011237",
)


def test_canary_never_reaches_a_leader(
    city: dict[str, Any], server: str, settings: Settings
) -> None:
    """Seed unique care-subject, staff and incident values; scan everything a leader can GET."""
    engine = city["engine"]
    c = city["geoms"][0].representative_point()
    with session_scope(engine) as s:
        s.execute(
            text(
                "INSERT INTO care_subject (code, category, grid_code, geom) VALUES "
                "('CANARY-CS-7731', 'community_correction', :g, "
                "ST_SetSRID(ST_MakePoint(111.2913579, 30.7024681), 4326))"
            ),
            {"g": city["codes"][0]},
        )
        s.execute(
            text(
                "INSERT INTO person (name, roles, status, id_number_masked, home) VALUES "
                "('金丝雀测试员', 'care_volunteer', 'available', '420502199001011237', "
                "ST_SetSRID(ST_MakePoint(:x, :y), 4326))"
            ),
            {"x": c.x, "y": c.y},
        )
    report(server, city, c.x, c.y, description="金丝雀纠纷描述")
    hdr = city["tokens"]["lead"]
    paths = [
        "/api/v1/areas",
        f"/api/v1/areas/{city['codes'][0][:6]}",
        "/api/v1/grids",
        "/api/v1/auth/me",
        "/api/v1/reports/shortage?level=grid",
        "/api/v1/reports/shortage?format=csv",
        "/maps/coverage",
        "/maps/coverage?mode=care",
        "/maps/incidents",
        "/dashboard",
        "/dashboard?format=csv",
        "/open311/v2/services.json",
        "/ogc/collections",
        "/ogc/collections/grids/items",
        "/ogc/collections/communities/items",
        "/api/v1/exports/grids?purpose=check&format=csv",
        "/api/v1/exports/areas?level=community&purpose=check&format=geojson",
    ]
    for path in paths:
        r = httpx.get(server + path, headers=hdr, timeout=60)
        assert r.status_code == 200, (path, r.status_code)
        for canary in CANARIES:
            assert canary not in r.text, (path, canary)
    # positive control: the seeded values are there for the roles that may see them
    seen = httpx.get(f"{server}/api/v1/incidents", headers=city["tokens"]["disp"]).text
    assert "金丝雀纠纷描述" in seen
    # and the restricted endpoints refuse the leader outright
    for path in ("/api/v1/care-subjects?purpose=check", "/api/v1/incidents", "/maps/dispatch/data"):
        assert httpx.get(server + path, headers=hdr).status_code == 403, path
    # leaders never get exact incident points from the OGC API either
    assert httpx.get(f"{server}/ogc/collections/incidents/items", headers=hdr).status_code == 404


def test_reopened_incident_has_no_mediator_and_races_are_409(
    city: dict[str, Any], server: str
) -> None:
    hdr = city["tokens"]["disp"]
    c = city["geoms"][5].representative_point()
    inc = report(server, city, c.x, c.y)
    ref = inc["public_id"]
    assert httpx.post(f"{server}/api/v1/incidents/{ref}/dispatch", headers=hdr).status_code == 200
    first = httpx.post(
        f"{server}/api/v1/incidents/{ref}/transitions", json={"to": "cancelled"}, headers=hdr
    )
    second = httpx.post(
        f"{server}/api/v1/incidents/{ref}/transitions", json={"to": "cancelled"}, headers=hdr
    )
    assert first.status_code == 200 and second.status_code == 409
    reopened = httpx.post(
        f"{server}/api/v1/incidents/{ref}/transitions", json={"to": "reported"}, headers=hdr
    )
    assert reopened.status_code == 200
    assert reopened.json()["mediator_id"] is None and reopened.json()["mediator_name"] is None


def test_duplicate_hint(city: dict[str, Any], server: str) -> None:
    c = city["geoms"][3].representative_point()
    first = report(server, city, c.x, c.y, category="邻里纠纷")
    near = report(server, city, c.x + 0.0002, c.y, category="邻里纠纷")  # ~19 m east
    other = report(server, city, c.x + 0.0002, c.y, category="劳动争议")
    far = report(server, city, c.x + 0.002, c.y, category="邻里纠纷")  # ~190 m
    assert first["possible_duplicates"] == []
    assert near["possible_duplicates"] == [first["public_id"]]
    assert other["possible_duplicates"] == []
    assert first["public_id"] not in far["possible_duplicates"]
