"""The in-process locate of the current grids answers exactly as the database does."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import shapely
from sqlalchemy import Engine, text

from gridmap.errors import InvalidInput
from gridmap.store.db import session_scope
from gridmap.store.grids import publish_version, run_gridding, select_communities
from gridmap.store.incidents import locate


def test_fast_locate_matches_the_database(community: Engine) -> None:
    with session_scope(community) as s:
        r = run_gridding(s, select_communities(s), user="t", n_grids=7)
        publish_version(s, r.version_id, user="t")
    with community.connect() as conn:
        rows = conn.execute(
            text("SELECT ST_AsBinary(geom) FROM grid WHERE valid_to IS NULL")
        ).scalars()
        edges = shapely.union_all([shapely.from_wkb(bytes(w)).boundary for w in rows])
    rng = np.random.default_rng(3)
    # points on and near grid edges (within ±30 m), where ties and near_boundary matter
    along = shapely.line_interpolate_point(edges, rng.uniform(0, edges.length, 300))
    pts = [
        (p.x + dx, p.y + dy)
        for p, dx, dy in zip(
            along, rng.normal(0, 0.00012, 300), rng.normal(0, 0.00012, 300), strict=True
        )
    ]
    pts += [(p.x, p.y) for p in along[:50]]  # exactly on an edge or vertex
    now = datetime.now(UTC)
    compared = 0
    with session_scope(community) as s:
        for lon, lat in pts:
            try:
                fast = locate(s, lon, lat)
            except InvalidInput as exc:
                fast = {"error": exc.code}
            try:
                slow = locate(s, lon, lat, at=now)  # at= goes to PostGIS
            except InvalidInput as exc:
                slow = {"error": exc.code}
            assert fast == slow, (lon, lat, fast, slow)
            compared += "grid" in fast
    assert compared > 250
