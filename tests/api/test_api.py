"""The API over real HTTP: health, authentication, areas as GeoJSON, problem+json errors."""

from __future__ import annotations

import re
import time

import httpx
import jwt
import pytest
from sqlalchemy import Engine

from gridmap.permissions import MATRIX, PUBLIC_OPERATIONS
from gridmap.security import TokenClaims, issue_token
from gridmap.settings import Settings
from gridmap.store.db import session_scope
from gridmap.store.imports import import_boundaries
from gridmap.store.users import add_user
from tests.helpers import DISTRICTS

PASSWORD = "correct horse battery"


@pytest.fixture
def api(db: Engine, server: str, settings: Settings) -> dict[str, str]:
    """Districts loaded, one user per role; returns name → bearer token."""
    import_boundaries(db, DISTRICTS, level="district", commit=True)
    users = [
        ("admin", "admin", None),
        ("leader", "leader", None),
        ("leader_xl", "leader", "420502"),
        ("vol", "volunteer", None),
    ]
    with session_scope(db) as s:
        for name, role, area in users:
            add_user(s, name, role, area, PASSWORD)
    return {
        name: issue_token(
            TokenClaims(name, role, area, 0), settings.signing_key(), settings.token_audience, 5
        )
        for name, role, area in users
    }


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_health(server: str) -> None:
    r = httpx.get(f"{server}/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["postgis"].startswith("3.")


@pytest.mark.parametrize("path", ["/api/v1/areas", "/api/v1/areas/420502", "/api/v1/auth/me"])
def test_401_without_token(api: dict[str, str], server: str, path: str) -> None:
    r = httpx.get(server + path)
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["status"] == 401 and r.json()["type"].endswith("missing-token")


def test_bad_tokens_are_401(api: dict[str, str], server: str, settings: Settings) -> None:
    key, aud = settings.signing_key(), settings.token_audience
    now = int(time.time())
    claims = {"sub": "admin", "role": "admin", "ver": 0, "aud": aud, "iat": now, "exp": now + 60}
    forged = {
        "alg none": jwt.encode(claims, None, algorithm="none"),
        "wrong key": jwt.encode(claims, "not-the-key-" * 3, algorithm="HS256"),
        "wrong audience": jwt.encode({**claims, "aud": "other"}, key, algorithm="HS256"),
        "expired": jwt.encode({**claims, "exp": now - 10}, key, algorithm="HS256"),
        "revoked version": jwt.encode({**claims, "ver": 7}, key, algorithm="HS256"),
        "unknown user": jwt.encode({**claims, "sub": "ghost"}, key, algorithm="HS256"),
        "garbage": "abc.def.ghi",
    }
    for what, token in forged.items():
        r = httpx.get(f"{server}/api/v1/areas", headers=auth(token))
        assert r.status_code == 401, what


def test_password_login(api: dict[str, str], server: str) -> None:
    r = httpx.post(
        f"{server}/api/v1/auth/token", data={"username": "leader_xl", "password": PASSWORD}
    )
    assert r.status_code == 200
    token = r.json()["access_token"]
    me = httpx.get(f"{server}/api/v1/auth/me", headers=auth(token)).json()
    assert me == {"name": "leader_xl", "role": "leader", "area": "420502"}
    bad = httpx.post(
        f"{server}/api/v1/auth/token", data={"username": "leader_xl", "password": "wrong password"}
    )
    assert bad.status_code == 401


def test_four_districts_with_codes_and_areas(api: dict[str, str], server: str) -> None:
    r = httpx.get(
        f"{server}/api/v1/areas", params={"level": "district"}, headers=auth(api["leader"])
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    fc = r.json()
    assert fc["type"] == "FeatureCollection" and fc["numberMatched"] == 4
    got = {
        f["properties"]["code"]: (f["properties"]["name"], f["properties"]["area_km2"])
        for f in fc["features"]
    }
    expected = {
        "420502": ("西陵区", 61.6),
        "420503": ("伍家岗区", 82.2),
        "420504": ("点军区", 532.6),
        "420505": ("猇亭区", 120.8),
    }
    assert set(got) == set(expected)
    for code, (name, km2) in expected.items():
        assert got[code][0] == name
        assert abs(got[code][1] - km2) / km2 < 0.005
    geom = fc["features"][0]["geometry"]
    assert geom["type"] == "MultiPolygon"
    lon, lat = geom["coordinates"][0][0][0]
    assert 110 < lon < 112 and 30 < lat < 31  # RFC 7946: lon, lat order


def test_single_area_and_scope(api: dict[str, str], server: str) -> None:
    one = httpx.get(f"{server}/api/v1/areas/420504", headers=auth(api["leader"]))
    assert one.status_code == 200 and one.json()["properties"]["name"] == "点军区"
    scoped = httpx.get(f"{server}/api/v1/areas", headers=auth(api["leader_xl"])).json()
    assert [f["id"] for f in scoped["features"]] == ["420502"]
    hidden = httpx.get(f"{server}/api/v1/areas/420504", headers=auth(api["leader_xl"]))
    assert hidden.status_code == 404  # outside the caller's scope looks like absent


def test_role_guard(api: dict[str, str], server: str) -> None:
    r = httpx.get(f"{server}/api/v1/areas", headers=auth(api["vol"]))
    assert r.status_code == 403
    assert r.json()["type"].endswith("forbidden")


@pytest.mark.parametrize(
    "path,status",
    [
        ("/api/v1/areas/999999", 404),
        ("/api/v1/areas/abc", 422),
        ("/api/v1/areas?level=planet", 422),
        ("/api/v1/areas?limit=-1", 422),
        ("/api/v1/nothing-here", 404),
    ],
)
def test_errors_are_problem_json(api: dict[str, str], server: str, path: str, status: int) -> None:
    r = httpx.get(server + path, headers=auth(api["admin"]))
    assert r.status_code == status
    body = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert body["status"] == status and body["type"] and body["title"]


def test_validation_errors_do_not_echo_input(api: dict[str, str], server: str) -> None:
    r = httpx.get(
        f"{server}/api/v1/areas", params={"level": "<script>x</script>"}, headers=auth(api["admin"])
    )
    assert r.status_code == 422 and "<script>" not in r.text


def test_body_limit(api: dict[str, str], server: str, settings: Settings) -> None:
    big = b"x" * (settings.max_body_bytes + 1)
    r = httpx.post(
        f"{server}/api/v1/auth/token",
        content=big,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413

    def chunks():  # no Content-Length: chunked transfer encoding
        # fields of ~0.5 MB each, so Starlette's own per-field and field-count caps stay quiet
        for i in range(settings.max_body_bytes // 65536 + 2):
            yield (b"&f=" if i % 8 == 0 else b"") + b"y" * 65536

    r = httpx.post(
        f"{server}/api/v1/auth/token",
        content=chunks(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413


def test_docs_work_offline(server: str) -> None:
    page = httpx.get(f"{server}/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert urls and all(u.startswith("/") for u in urls), urls
    for u in urls:
        assert httpx.get(server + u).status_code == 200, u
    assert httpx.get(f"{server}/openapi.json").status_code == 200


def test_every_operation_is_in_the_permission_matrix(server: str) -> None:
    spec = httpx.get(f"{server}/openapi.json").json()
    missing = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            name = op.get("x-permission")
            if name is None or (name not in MATRIX and name not in PUBLIC_OPERATIONS):
                missing.append(f"{method.upper()} {path}")
    assert not missing, f"operations without a permission entry: {missing}"


def test_login_throttling(api: dict[str, str], server: str) -> None:
    for _ in range(5):
        r = httpx.post(
            f"{server}/api/v1/auth/token", data={"username": "leader", "password": "guess-guess"}
        )
        assert r.status_code == 401
    r = httpx.post(f"{server}/api/v1/auth/token", data={"username": "leader", "password": PASSWORD})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    other = httpx.post(
        f"{server}/api/v1/auth/token", data={"username": "admin", "password": PASSWORD}
    )
    assert other.status_code == 200  # the throttle is per account and client


def test_field_report_page_is_offline(server: str) -> None:
    page = httpx.get(f"{server}/report")
    assert page.status_code == 200 and "现场上报" in page.text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert urls and all(u.startswith("/static/") for u in urls), urls
    for u in urls:
        assert httpx.get(server + u).status_code == 200, u
    assert "http://" not in page.text and "https://" not in page.text


def test_care_subjects_are_restricted_and_audited(
    api: dict[str, str], server: str, db: Engine, settings: Settings
) -> None:
    from sqlalchemy import text

    with session_scope(db) as s:
        add_user(s, "gm_x", "grid_manager", "420502", PASSWORD)
        s.execute(
            text(
                "INSERT INTO care_subject (code, category, grid_code, geom) VALUES "
                "('CS-CANARY-1', 'released', '420502001001001', "
                "ST_SetSRID(ST_MakePoint(111.2913579, 30.7024681), 4326)), "
                "('CS-OTHER-2', 'released', '420503001001001', "
                "ST_SetSRID(ST_MakePoint(111.35, 30.65), 4326))"
            )
        )
    gm = {
        "Authorization": "Bearer "
        + issue_token(
            TokenClaims("gm_x", "grid_manager", "420502", 0),
            settings.signing_key(),
            settings.token_audience,
            5,
        )
    }
    no_purpose = httpx.get(f"{server}/api/v1/care-subjects", headers=gm)
    assert no_purpose.status_code == 422
    r = httpx.get(f"{server}/api/v1/care-subjects", params={"purpose": "月度走访"}, headers=gm)
    assert r.status_code == 200
    assert [x["code"] for x in r.json()] == ["CS-CANARY-1"]  # the other area stays hidden
    assert "id_number" not in r.text
    for role in ("leader", "vol"):
        denied = httpx.get(
            f"{server}/api/v1/care-subjects", params={"purpose": "looking"}, headers=auth(api[role])
        )
        assert denied.status_code == 403
    trail = httpx.get(
        f"{server}/api/v1/audit", params={"action": "care_subject."}, headers=auth(api["admin"])
    ).json()
    assert trail[0]["actor"] == "gm_x" and trail[0]["purpose"] == "月度走访"
    assert httpx.get(f"{server}/api/v1/audit", headers=auth(api["leader"])).status_code == 403


def test_service_recovers_after_the_database_drops_every_connection(
    api: dict[str, str], server: str, owner_engine: Engine
) -> None:
    """Pooled connections are not pinged before use (a round trip per request); when the
    database drops them (a restart, a failover) the first request may be answered 503 — never
    500 — and the service reconnects for the next ones."""
    from sqlalchemy import text

    hdr = {"Authorization": f"Bearer {api['admin']}"}
    with httpx.Client(base_url=server, headers=hdr) as client:
        for _ in range(12):  # several pooled connections in use
            assert client.get("/api/v1/areas", params={"level": "district"}).status_code == 200
        with owner_engine.connect() as conn:
            dropped = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND application_name = 'gridmap'"
                )
            ).scalar_one()
        assert dropped >= 1
        answers = [client.get("/api/v1/areas", params={"level": "district"}) for _ in range(12)]
    codes = [r.status_code for r in answers]
    assert set(codes) <= {200, 503}, codes
    assert codes.count(503) <= 1, codes
    assert codes[-10:] == [200] * 10, codes
    if 503 in codes:
        failed = answers[codes.index(503)]
        assert failed.json()["type"].endswith("database-unavailable")
