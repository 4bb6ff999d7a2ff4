"""Least privilege and limits over real HTTP: volunteers see only their own care subjects,
grid managers only their grid, leaders' supervision report (scoped, suppressed), page caps,
strict JSON and query types, and 405 answers that name every method of a path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from gridmap.security import TokenClaims, issue_token
from gridmap.settings import Settings
from gridmap.store.db import session_scope
from gridmap.store.imports import import_boundaries
from gridmap.store.users import add_user
from tests.helpers import DISTRICTS

GRID_A = "420502001001001"  # two grids of one community in 西陵区 …
GRID_A2 = "420502001001002"
GRID_B = "420503001001001"  # … and one in 伍家岗区
NOW = datetime.now(UTC).replace(microsecond=0)


def _token(settings: Settings, name: str, role: str, area: str | None) -> dict[str, str]:
    tok = issue_token(
        TokenClaims(name, role, area, 0), settings.signing_key(), settings.token_audience, 5
    )
    return {"Authorization": f"Bearer {tok}"}


@pytest.fixture
def world(db: Engine, settings: Settings) -> dict[str, Any]:
    """Districts, grid rows for the grid scope, two carers with subjects in two grids,
    incidents with events, and users; returns name → auth headers and the person ids."""
    import_boundaries(db, DISTRICTS, level="district", commit=True)
    with session_scope(db) as s:
        s.execute(
            text("INSERT INTO grid_version (id, status, created_by) VALUES (1, 'published', 't')")
        )
        s.execute(
            text(
                "INSERT INTO grid (version_id, code, community_id, geom, valid_from) "
                "SELECT 1, c, (SELECT id FROM area WHERE code = '420502'), "
                "ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint(111.29, 30.70), 4326), 0.001)), now() "
                "FROM unnest(CAST(:codes AS text[])) c"
            ),
            {"codes": [GRID_A, GRID_A2, GRID_B]},
        )
        ids = s.execute(
            text(
                "INSERT INTO person (name, roles) VALUES ('志愿者甲', 'care_volunteer'), "
                "('志愿者乙', 'care_volunteer') RETURNING id"
            )
        ).scalars()
        carer, other = list(ids)
        s.execute(
            text(
                "INSERT INTO care_subject (code, category, grid_code, volunteer_id, geom) VALUES "
                "('CS-OWN-1', 'released', :a, :v, "
                "ST_SetSRID(ST_MakePoint(111.2913, 30.7024), 4326)),"
                "('CS-OWN-2', 'community_correction', :a2, :v, NULL),"
                "('CS-NOT-MINE', 'released', :a, :o, NULL),"
                "('CS-FAR', 'released', :b, :o, NULL)"
            ),
            {"a": GRID_A, "a2": GRID_A2, "b": GRID_B, "v": carer, "o": other},
        )
        users = [
            ("admin", "admin", None, None),
            ("vol", "volunteer", "420502", carer),
            ("vol_unlinked", "volunteer", None, None),
            ("gm_grid", "grid_manager", GRID_A, None),
            ("gm_b", "grid_manager", "420503", None),
            ("leader", "leader", None, None),
            ("leader_xl", "leader", "420502", None),
            ("disp", "dispatcher", None, None),
        ]
        for name, role, area, person in users:
            add_user(s, name, role, area, None, person_id=person)
    return {
        "h": {n: _token(settings, n, r, a) for n, r, a, _ in users},
        "carer": carer,
    }


def _incident(
    s: Any, n: int, grid: str, minutes: float | None, status: str = "accepted", by: str = "gm_grid"
) -> None:
    """An incident reported an hour ago in ``grid``, accepted ``minutes`` later (or not)."""
    created = NOW - timedelta(hours=1)
    inc = s.execute(
        text(
            "INSERT INTO incident (public_id, category, status, grid_code, created_at, "
            "updated_at) VALUES (:p, 'neighbour', :st, :g, :c, :c) RETURNING id"
        ),
        {"p": f"T{grid[-4:]}{n:04d}", "st": status, "g": grid, "c": created},
    ).scalar_one()
    s.execute(
        text(
            "INSERT INTO incident_event (incident_id, at, actor, to_status) "
            "VALUES (:i, :c, 'someone', 'reported')"
        ),
        {"i": inc, "c": created},
    )
    if minutes is not None:
        s.execute(
            text(
                "INSERT INTO incident_event (incident_id, at, actor, from_status, to_status) "
                "VALUES (:i, :t, :by, 'dispatched', 'accepted')"
            ),
            {"i": inc, "t": created + timedelta(minutes=minutes), "by": by},
        )


def test_volunteer_sees_only_their_own_subjects_without_points(
    world: dict[str, Any], server: str
) -> None:
    h = world["h"]
    url = f"{server}/api/v1/my/care-subjects"
    assert httpx.get(url, headers=h["vol"]).status_code == 422  # purpose required
    r = httpx.get(url, params={"purpose": "本周走访"}, headers=h["vol"])
    assert r.status_code == 200
    assert [x["code"] for x in r.json()] == ["CS-OWN-1", "CS-OWN-2"]
    assert set(r.json()[0]) == {"code", "category", "grid"}  # no point, no carer, no id number
    assert "111.29" not in r.text
    unlinked = httpx.get(url, params={"purpose": "本周走访"}, headers=h["vol_unlinked"])
    assert unlinked.status_code == 404 and unlinked.json()["type"].endswith("no-person-link")
    # the volunteer has no other door to care subjects, incidents or areas
    for path in ("/api/v1/care-subjects", "/api/v1/incidents", "/api/v1/areas"):
        got = httpx.get(server + path, params={"purpose": "looking"}, headers=h["vol"])
        assert got.status_code == 403, path
    assert httpx.get(url, params={"purpose": "看看"}, headers=h["gm_grid"]).status_code == 403
    trail = httpx.get(
        f"{server}/api/v1/audit", params={"action": "care_subject.read_own"}, headers=h["admin"]
    ).json()
    assert trail[0]["actor"] == "vol" and trail[0]["purpose"] == "本周走访"
    assert trail[0]["after"]["codes"] == ["CS-OWN-1", "CS-OWN-2"]


def test_grid_manager_scoped_to_one_grid(world: dict[str, Any], server: str, db: Engine) -> None:
    with session_scope(db) as s:
        for n, grid in enumerate((GRID_A, GRID_A2, GRID_B)):
            _incident(s, n, grid, 5.0)
    h = world["h"]["gm_grid"]
    subjects = httpx.get(
        f"{server}/api/v1/care-subjects", params={"purpose": "月度走访"}, headers=h
    ).json()
    assert {x["grid"] for x in subjects} == {GRID_A}
    assert {x["code"] for x in subjects} == {"CS-OWN-1", "CS-NOT-MINE"}
    listed = httpx.get(f"{server}/api/v1/incidents", headers=h).json()
    assert [i["grid_code"] for i in listed] == [GRID_A]
    other = httpx.get(f"{server}/api/v1/incidents", headers=world["h"]["disp"]).json()
    hidden = next(i["public_id"] for i in other if i["grid_code"] == GRID_A2)
    assert httpx.get(f"{server}/api/v1/incidents/{hidden}", headers=h).status_code == 404
    assert (
        httpx.get(f"{server}/open311/v2/requests.json", headers=h).json()[0]["agency_responsible"]
        == GRID_A
    )


def test_supervision_report(world: dict[str, Any], server: str, db: Engine) -> None:
    with session_scope(db) as s:
        for n in range(12):  # 12 responses in gm_grid's grid: 1, 2, … 12 minutes
            _incident(s, n, GRID_A, n + 1.0)
        _incident(s, 99, GRID_A, None, status="reported")  # open, no response yet
        for n in range(3):
            _incident(s, 50 + n, GRID_B, 10.0, by="gm_b")
    h = world["h"]
    url = f"{server}/api/v1/reports/supervision"
    r = httpx.get(url, headers=h["leader"])
    assert r.status_code == 200, r.text
    rows = {x["grid_manager"]: x for x in r.json()["rows"]}
    assert set(rows) == {"gm_grid", "gm_b"}
    a = rows["gm_grid"]
    assert a["reported"] == "13" and a["responded"] == "12"
    assert a["median_response_min"] == 6.5 and a["p90_response_min"] == pytest.approx(10.9)
    assert a["open_caseload"] == "13" and a["handled"] == "12"  # accepted counts as open
    b = rows["gm_b"]
    assert b["responded"] == "<11" and b["median_response_min"] is None  # too few to publish
    assert "CS-" not in r.text and "志愿者" not in r.text  # no care-subject identities
    scoped = httpx.get(url, headers=h["leader_xl"]).json()
    assert [x["grid_manager"] for x in scoped["rows"]] == ["gm_grid"]
    assert httpx.get(url, params={"area": "420503"}, headers=h["leader_xl"]).status_code == 404
    empty = httpx.get(url, params={"since": NOW.isoformat(), "until": NOW.isoformat()})
    assert empty.status_code == 401
    bad = httpx.get(
        url,
        params={"since": NOW.isoformat(), "until": (NOW - timedelta(days=1)).isoformat()},
        headers=h["leader"],
    )
    assert bad.status_code == 422 and bad.json()["type"].endswith("empty-window")
    assert httpx.get(url, params={"until": "0.5"}, headers=h["leader"]).status_code == 422
    for role in ("disp", "gm_grid", "vol"):
        assert httpx.get(url, headers=h[role]).status_code == 403


def test_page_size_is_capped(world: dict[str, Any], server: str, settings: Settings) -> None:
    h = world["h"]["admin"]
    big = settings.max_page_size * 10
    areas = httpx.get(f"{server}/api/v1/areas", params={"limit": big}, headers=h)
    assert areas.status_code == 200  # clamped, as the OpenAPI description says
    subjects = httpx.get(
        f"{server}/api/v1/care-subjects",
        params={"purpose": "分页检查", "limit": 1, "offset": 1},
        headers=h,
    )
    assert [x["code"] for x in subjects.json()] == ["CS-NOT-MINE"]
    for path in ("/api/v1/incidents", "/api/v1/audit", "/api/v1/grid-versions"):
        r = httpx.get(server + path, params={"limit": big}, headers=h)
        assert r.status_code == 422, path
    r = httpx.get(f"{server}/open311/v2/requests.json", params={"page_size": big}, headers=h)
    assert r.status_code == 422
    spec = httpx.get(f"{server}/openapi.json").json()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for p in op.get("parameters", []):
                if p["name"] in ("limit", "page_size") and method == "get":
                    schema = p["schema"].get("anyOf", [p["schema"]])[0]
                    capped = "maximum" in schema or "clamped" in p.get("description", "")
                    assert capped, f"{method} {path} {p['name']}"


@pytest.mark.parametrize(
    "body",
    [
        b'{"category": "neighbour", "lon": NaN, "lat": 30.7}',
        b'{"category": "neighbour", "lon": Infinity, "lat": 30.7}',
        b'{"category": "neighbour", "lon": 111.3, "lat": -Infinity}',
        b'{"category": "neighbour", "lon": 1e400, "lat": 30.7}',
    ],
)
def test_nan_and_infinity_are_rejected_without_echo(
    world: dict[str, Any], server: str, body: bytes
) -> None:
    r = httpx.post(
        f"{server}/api/v1/incidents",
        content=body,
        headers={**world["h"]["disp"], "content-type": "application/json"},
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "neighbour" not in r.text and "30.7" not in r.text


def test_nan_in_a_geojson_body_is_rejected(world: dict[str, Any], server: str) -> None:
    feature = (
        b'{"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", '
        b'"coordinates": [[[111.3, 30.7], [NaN, 30.71], [111.31, 30.71], [111.3, 30.7]]]}}'
    )
    r = httpx.post(
        f"{server}/ogc/collections/grids/items",
        content=feature,
        headers={**world["h"]["admin"], "content-type": "application/geo+json"},
    )
    assert r.status_code == 422 and "NaN" in r.json()["detail"]


def test_strict_bodies_and_query_times(world: dict[str, Any], server: str) -> None:
    h = world["h"]["admin"]
    r = httpx.post(f"{server}/api/v1/assignments:run", json={"keep_margin_m": False}, headers=h)
    assert r.status_code == 422  # false is not a number
    tiny = {"all": True, "households_per_grid": 5e-324}  # was a 500 (infinitely many grids)
    assert httpx.post(f"{server}/api/v1/gridding", json=tiny, headers=h).status_code == 422
    for heavy in ({"households_per_grid": 1.0}, {"grids": 999}):  # minutes of work: refused
        r = httpx.post(f"{server}/api/v1/gridding", json={"all": True, **heavy}, headers=h)
        assert r.status_code == 422 and next(iter(heavy)) in r.json()["detail"]
    r = httpx.get(f"{server}/api/v1/audit", params={"since": "0.5"}, headers=h)
    assert r.status_code == 422 and "ISO 8601" in r.text
    ok = httpx.get(f"{server}/api/v1/audit", params={"since": "2026-01-01"}, headers=h)
    assert ok.status_code == 200
    unknown = httpx.get(f"{server}/api/v1/incidents", params={"status": "0.86"}, headers=h)
    assert unknown.status_code == 422  # was an empty 200: statuses are a closed list now
    far = httpx.get(f"{server}/maps/incidents", params={"end": "0001-01-01"}, headers=h)
    assert far.status_code == 422 and "1900" in far.text  # was a 500 (date overflow)
    odd = httpx.get(f"{server}/api/v1/incidents/%C2%B3", headers=world["h"]["disp"])
    assert odd.status_code == 404  # "³" is a digit to Python, not an id


def test_405_names_every_method_of_the_path(world: dict[str, Any], server: str) -> None:
    r = httpx.request("OPTIONS", f"{server}/api/v1/incidents", headers=world["h"]["admin"])
    assert r.status_code == 405
    assert set(r.headers["allow"].split(", ")) >= {"GET", "POST"}
    r = httpx.request("PUT", f"{server}/api/v1/drafts/1", headers=world["h"]["admin"])
    assert r.status_code == 405 and {"GET", "DELETE"} <= set(r.headers["allow"].split(", "))


def test_every_route_parses_strict_json(server: str) -> None:
    from api import create_app
    from api.errors import _routes
    from api.limits import StrictJSONRoute

    app = create_app(Settings(database_url="postgresql+psycopg://u:p@127.0.0.1:1/x"))
    loose = [
        r.path
        for r in _routes(app.router.routes)
        if getattr(r, "include_in_schema", False) and not isinstance(r, StrictJSONRoute)
    ]
    assert not loose


def test_unknown_map_area_does_not_enter_the_refresh_list(
    world: dict[str, Any], server: str
) -> None:
    from api.routers import maps

    r = httpx.get(
        f"{server}/maps/coverage", params={"area": "999999"}, headers=world["h"]["leader"]
    )
    assert r.status_code == 404
    assert not [spec for spec in maps._RECENT if spec[1] == "999999"]  # found by fuzzing
