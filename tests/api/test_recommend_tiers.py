"""The tier-first recommendation equals a ranking of every mediator in the radius."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from sqlalchemy import text

from gridmap.dispatch import recommend
from gridmap.store import dispatching as D
from gridmap.store.db import session_scope
from tests.api.test_incidents import city  # noqa: F401  (fixture)


def _full(s: Any, inc: dict[str, Any], limit: int) -> Any:
    adjacency, community_of = D._adjacency(s)
    return recommend(
        {"grid": inc["grid_code"], "lon": inc["lon"], "lat": inc["lat"], "category": "邻里纠纷"},
        D._candidates(s, inc["lon"], inc["lat"], 5000.0),
        adjacency=adjacency,
        community_of=community_of,
        graph=D._graph(s),
        limit=limit,
        invited=D._invited(s),
    )


def test_tier_first_search_ranks_like_the_full_search(city: dict[str, Any]) -> None:  # noqa: F811
    rng = np.random.default_rng(8)
    with session_scope(city["engine"]) as s:
        # a second community far away with its own mediator: only the full search sees it
        s.execute(
            text(
                "INSERT INTO person (name, roles, status, caseload_cap, home) VALUES "
                "('远方调解员', 'mediator', 'available', 3, ST_SetSRID(ST_MakePoint(:x, :y), "
                "4326))"
            ),
            {"x": city["geoms"][0].centroid.x + 0.01, "y": city["geoms"][0].centroid.y},
        )
        for code, geom in zip(city["codes"], city["geoms"], strict=True):
            minx, miny, maxx, maxy = geom.bounds
            for _ in range(3):
                p = shapely.Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
                if not geom.contains(p):
                    continue
                inc = {
                    "grid_code": code,
                    "lon": p.x,
                    "lat": p.y,
                    "service_code": None,
                    "category": "邻里纠纷",
                }
                for limit in (3, 5, 12):
                    fast = D.recommend_for(s, inc, limit=limit).to_dict()
                    full = _full(s, inc, limit).to_dict()
                    assert fast["candidates"] == full["candidates"], (code, limit)
                    assert fast["shortfall"] == full["shortfall"]
        s.rollback()
