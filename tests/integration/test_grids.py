"""Gridding into PostGIS drafts, publishing, and the grids API, on a small real community."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine, text

from gridmap.errors import ConflictError
from gridmap.security import TokenClaims, issue_token
from gridmap.settings import Settings
from gridmap.store.db import session_scope
from gridmap.store.grids import publish_version, run_gridding, select_communities
from gridmap.store.users import add_user
from tests.helpers import COMMUNITY


def _partition_figures(db: Engine, version: int) -> dict[str, float]:
    with db.connect() as conn:
        return dict(
            conn.execute(
                text("""
            WITH g AS (SELECT id, ST_Transform(geom, 4546) AS geom FROM grid
                       WHERE version_id = :v),
                 c AS (SELECT ST_Transform(geom, 4546) AS geom FROM area WHERE code = :c)
            SELECT (SELECT ST_Area(c.geom) FROM c) AS community,
                   (SELECT ST_Area(ST_Union(geom)) FROM g) AS union_area,
                   (SELECT coalesce(sum(ST_Area(ST_Intersection(a.geom, b.geom))), 0)
                      FROM g a JOIN g b ON a.id < b.id AND ST_Intersects(a.geom, b.geom))
                      AS overlap,
                   (SELECT ST_Area(ST_Difference(c.geom, (SELECT ST_Union(geom) FROM g)))
                      FROM c) AS gap,
                   (SELECT count(*) FROM g WHERE ST_NumGeometries(geom) = 1) AS single_part,
                   (SELECT count(*) FROM g) AS n
            """),
                {"v": version, "c": COMMUNITY},
            )
            .mappings()
            .one()
        )


def test_draft_partitions_the_community(community: Engine) -> None:
    with session_scope(community) as s:
        chosen = select_communities(s, community=COMMUNITY)
        result = run_gridding(s, chosen, user="planner", households_per_grid=1000)
    with community.connect() as conn:
        total = conn.execute(text("SELECT sum(households) FROM household_unit")).scalar_one()
        rows = conn.execute(
            text("SELECT code, households, valid_from FROM grid ORDER BY code")
        ).all()
    assert result.grids == max(1, round(total / 1000)) == len(rows)
    assert [r[0] for r in rows] == [f"{COMMUNITY}{i:03d}" for i in range(1, len(rows) + 1)]
    assert sum(r[1] for r in rows) == total
    assert all(r[2] is None for r in rows)  # a draft is not valid yet
    f = _partition_figures(community, result.version_id)
    assert f["overlap"] <= 0.01 and f["gap"] <= 1.0
    assert abs(f["union_area"] - f["community"]) <= 1.0
    assert f["single_part"] == f["n"]


def test_exact_number_of_grids(community: Engine) -> None:
    with session_scope(community) as s:
        result = run_gridding(s, select_communities(s, community=COMMUNITY), user="p", n_grids=7)
    assert result.grids == 7


def test_publish_replaces_current_grids(community: Engine) -> None:
    with session_scope(community) as s:
        first = run_gridding(s, select_communities(s), user="p", households_per_grid=2000)
        publish_version(s, first.version_id, user="p")
    with session_scope(community) as s:
        second = run_gridding(s, select_communities(s), user="p", households_per_grid=800)
        publish_version(s, None, user="p")  # latest draft
    with community.connect() as conn:
        current = (
            conn.execute(
                text(
                    "SELECT DISTINCT version_id FROM grid WHERE valid_from IS NOT NULL "
                    "AND valid_to IS NULL"
                )
            )
            .scalars()
            .all()
        )
        statuses = dict(conn.execute(text("SELECT id, status FROM grid_version")).all())
        closed = conn.execute(
            text("SELECT count(*) FROM grid WHERE version_id = :v AND valid_to IS NOT NULL"),
            {"v": first.version_id},
        ).scalar_one()
    assert current == [second.version_id]
    assert statuses == {first.version_id: "superseded", second.version_id: "published"}
    assert closed == first.grids
    with pytest.raises(ConflictError), session_scope(community) as s:
        publish_version(s, second.version_id, user="p")


def test_gridding_api(community: Engine, server: str, settings: Settings) -> None:
    with session_scope(community) as s:
        add_user(s, "plan", "planner", "420502", None)
        add_user(s, "lead", "leader", None, None)
        add_user(s, "plan_wjg", "planner", "420503", None)

    def tok(name: str, role: str, area: str | None) -> dict[str, str]:
        t = issue_token(
            TokenClaims(name, role, area, 0), settings.signing_key(), settings.token_audience, 5
        )
        return {"Authorization": f"Bearer {t}"}

    planner, leader = tok("plan", "planner", "420502"), tok("lead", "leader", None)
    body = {"community": COMMUNITY, "households_per_grid": 1500}
    assert httpx.post(f"{server}/api/v1/gridding", json=body, headers=leader).status_code == 403
    other = httpx.post(
        f"{server}/api/v1/gridding", json=body, headers=tok("plan_wjg", "planner", "420503")
    )
    assert other.status_code == 404  # outside the planner's district
    bad = httpx.post(
        f"{server}/api/v1/gridding", json={"all": True, "community": COMMUNITY}, headers=planner
    )
    assert bad.status_code == 422
    r = httpx.post(f"{server}/api/v1/gridding", json=body, headers=planner)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["status"] == "draft" and out["grids"] >= 1
    assert out["quality"]["max_overlap_m2"] <= 0.01
    draft = httpx.get(
        f"{server}/api/v1/grids", params={"version": out["version"]}, headers=leader
    ).json()
    assert draft["numberMatched"] == out["grids"]
    assert httpx.get(f"{server}/api/v1/grids", headers=leader).json()["numberMatched"] == 0
    foreign = httpx.post(
        f"{server}/api/v1/grid-versions/{out['version']}/publish",
        headers=tok("plan_wjg", "planner", "420503"),
    )
    assert foreign.status_code == 404
    pub = httpx.post(f"{server}/api/v1/grid-versions/{out['version']}/publish", headers=planner)
    assert pub.status_code == 200
    again = httpx.post(f"{server}/api/v1/grid-versions/{out['version']}/publish", headers=planner)
    assert again.status_code == 409
    current = httpx.get(
        f"{server}/api/v1/grids", params={"community": COMMUNITY}, headers=leader
    ).json()
    assert current["numberMatched"] == out["grids"]
    props = current["features"][0]["properties"]
    assert props["code"].startswith(COMMUNITY) and props["valid_from"]


def test_gridding_preference_is_kept_and_checked(
    community: Engine, server: str, settings: Settings
) -> None:
    """The API and the CLI take a preference, record it on the draft and refuse unknown ones
    (a 422 / exit 2 naming the choices) without writing a draft."""
    from tests.integration.test_cli import run

    with session_scope(community) as s:
        add_user(s, "plan", "planner", "420502", None)
    t = issue_token(
        TokenClaims("plan", "planner", "420502", 0),
        settings.signing_key(),
        settings.token_audience,
        5,
    )
    planner = {"Authorization": f"Bearer {t}"}

    def drafts() -> list[tuple[int, dict]]:
        with community.connect() as conn:
            return [tuple(r) for r in conn.execute(text("SELECT id, params FROM grid_version"))]

    body = {"community": COMMUNITY, "households_per_grid": 1000}
    url = f"{server}/api/v1/gridding"
    bad = httpx.post(url, json={**body, "prefer": "pretty"}, headers=planner)
    assert bad.status_code == 422 and "streets" in bad.text
    cli_bad = run(settings, "grid", "--community", COMMUNITY, "--prefer", "pretty")
    assert cli_bad.returncode == 2 and "balance, streets, compact" in cli_bad.stderr
    assert drafts() == []
    r = httpx.post(url, json={**body, "prefer": "streets"}, headers=planner)
    assert r.status_code == 201, r.text
    cli = run(settings, "grid", "--community", COMMUNITY, "--prefer", "compact")
    assert cli.returncode == 0, cli.stderr
    assert "(prefer compact)" in cli.stdout
    default = httpx.post(url, json=body, headers=planner)
    assert default.status_code == 201
    assert [p["prefer"] for _, p in sorted(drafts())] == ["streets", "compact", "balance"]
    listed = httpx.get(f"{server}/api/v1/grid-versions", headers=planner)
    assert listed.status_code == 200, listed.text
    rows = listed.json()
    assert [v["prefer"] for v in rows] == ["balance", "compact", "streets"]  # newest first
    for v in rows:  # figures to compare the drafts by, without the per-community detail
        assert set(v["quality"]) >= {"cv_median", "pp_mean", "road_alignment_mean"}
        assert "per_community" not in v["quality"]
