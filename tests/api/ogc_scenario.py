"""A small scenario for the OGC API and export tests: published grids, an open draft,
incidents with reporter data (which must never come out) and one user per role."""

from __future__ import annotations

from typing import Any

import shapely
from sqlalchemy import Engine, text

from gridmap.security import TokenClaims, issue_token
from gridmap.settings import Settings
from gridmap.store.db import session_scope
from gridmap.store.grids import publish_version, run_gridding, select_communities
from gridmap.store.incidents import create_incident
from gridmap.store.users import add_user

N_PUBLISHED = 8
N_DRAFT = 5
USERS = [
    ("admin", "admin", None),
    ("planner", "planner", None),
    ("planner_xl", "planner", "420502"),
    ("planner_wjg", "planner", "420503"),
    ("leader", "leader", None),
    ("disp", "dispatcher", None),
    ("disp_wjg", "dispatcher", "420503"),
    ("gm", "grid_manager", None),
    ("vol", "volunteer", None),
]
CANARY_CONTACT = "13800001111"
CANARY_REPORTER = "报告人甲"


def seed(engine: Engine, settings: Settings) -> dict[str, Any]:
    """Seed the ``community`` fixture's database; returns codes, draft id and auth headers."""
    with session_scope(engine) as s:
        published = run_gridding(s, select_communities(s), user="t", n_grids=N_PUBLISHED)
        publish_version(s, published.version_id, user="t")
        draft = run_gridding(s, select_communities(s), user="t", n_grids=N_DRAFT)
        grids = s.execute(
            text(
                "SELECT code, ST_AsBinary(geom) FROM grid WHERE valid_to IS NULL "
                "AND valid_from IS NOT NULL ORDER BY code"
            )
        ).all()
        incidents = []
        for _code, wkb in grids[:3]:
            p = shapely.from_wkb(bytes(wkb)).representative_point()
            inc = create_incident(
                s,
                category="邻里纠纷",
                x=p.x,
                y=p.y,
                description="楼上漏水 " + CANARY_REPORTER,
                address="某路1号",
                contact=CANARY_CONTACT,
                reporter=CANARY_REPORTER,
            )
            incidents.append(inc["public_id"])
        for name, role, area in USERS:
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
        for name, role, area in USERS
    }
    return {
        "codes": [c for c, _ in grids],
        "geoms": {c: shapely.from_wkb(bytes(w)) for c, w in grids},
        "draft": draft.version_id,
        "incidents": incidents,
        "tokens": tokens,
        "engine": engine,
    }
