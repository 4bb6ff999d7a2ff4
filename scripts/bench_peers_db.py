"""The database peers: bulk locate vs a PostGIS set join, road cost vs naive pgRouting.

Against the configured database (``GRIDMAP_DATABASE_URL``, filled by ``gridmap demo
--no-serve``), same run, same data:

* **locate**: ``--points`` uniform points over the current grids' bounding box. Ours:
  :class:`gridmap.locate.GridIndex` over the current grids (build time reported apart). Peer:
  the points COPYed into a temporary table, then one set join
  ``DISTINCT ON (p.id) … JOIN grid g ON ST_Intersects(g.geom, p.geom) ORDER BY p.id, g.code``
  (the same covers + lowest-code rule); its time without and with the COPY. Answers must match.
* **road cost**: ``--queries`` incidents (random road nodes), each with 20 target nodes within
  3 km. Ours: :meth:`gridmap.roads.RoadGraph.travel_times` (graph in memory). Peer: naive
  ``pgr_dijkstra`` over the whole ``road_edge`` table per query (pgRouting rebuilds the graph on
  every call). Costs must agree.

SQL lives here, not in ``gridmap/store``, because it is the peer being measured. Prints, never
asserts, timings; ``--json`` writes the figures.

    .venv/bin/python scripts/bench_peers_db.py [--points 1000000] [--queries 100] [--json F]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gridmap.settings import get_settings
from gridmap.store.db import database_url, make_engine
from gridmap.store.dispatching import _graph
from gridmap.store.locating import grid_index

CURRENT = "g.valid_from IS NOT NULL AND g.valid_to IS NULL"


def bench_locate(engine: Any, n: int, rng: np.random.Generator) -> dict[str, Any]:
    with engine.connect() as conn:
        from sqlalchemy.orm import Session

        t = time.perf_counter()
        index = grid_index(Session(bind=conn))
        build = time.perf_counter() - t
        minx, miny, maxx, maxy = shapely.total_bounds(index.geoms)
        lon, lat = rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)
        t = time.perf_counter()
        ours = index.locate(lon, lat)
        t_ours = time.perf_counter() - t
        raw = conn.connection.dbapi_connection
        assert raw is not None
        t = time.perf_counter()
        with raw.cursor() as cur:
            cur.execute("CREATE TEMP TABLE bench_pts (id int, lon float8, lat float8)")
            buf = io.StringIO()
            np.savetxt(buf, np.column_stack([np.arange(n), lon, lat]), fmt="%d,%.9f,%.9f")
            with cur.copy("COPY bench_pts FROM STDIN (FORMAT csv)") as copy:
                copy.write(buf.getvalue())
            cur.execute(
                "ALTER TABLE bench_pts ADD COLUMN geom geometry(Point, 4326); "
                "UPDATE bench_pts SET geom = ST_SetSRID(ST_MakePoint(lon, lat), 4326); ANALYZE "
                "bench_pts"
            )
        t_copy = time.perf_counter() - t
        t = time.perf_counter()
        rows = conn.execute(
            text(
                "SELECT DISTINCT ON (p.id) p.id, g.code FROM bench_pts p JOIN grid g "
                f"ON {CURRENT} AND ST_Intersects(g.geom, p.geom) ORDER BY p.id, g.code"
            )
        ).all()
        t_join = time.perf_counter() - t
        conn.execute(text("DROP TABLE bench_pts"))
    peer = np.full(n, None, dtype=object)
    if rows:
        ids, codes = zip(*rows, strict=True)
        peer[np.asarray(ids)] = codes
    mine = np.full(n, None, dtype=object)
    mine[ours >= 0] = index.codes[ours[ours >= 0]]
    same = bool(np.all(peer == mine))
    res = {
        "points": n,
        "grids": len(index.codes),
        "index_build_s": round(build, 2),
        "ours_s": round(t_ours, 3),
        "postgis_join_s": round(t_join, 3),
        "postgis_copy_s": round(t_copy, 3),
        "ratio_join_over_ours": round(t_join / t_ours, 1),
        "ratio_copy_join_over_ours": round((t_join + t_copy) / t_ours, 1),
        "identical": same,
    }
    print(
        f"locate {n:,} points over {len(index.codes)} grids: ours {t_ours:.3f} s "
        f"({n / t_ours / 1e6:.2f} M points/s; index build {build:.2f} s) | PostGIS set join "
        f"{t_join:.2f} s (+ COPY {t_copy:.2f} s) | ratio join/ours {t_join / t_ours:.1f}×, "
        f"with COPY {(t_join + t_copy) / t_ours:.1f}× | identical: {same}"
    )
    return res


def bench_roads(engine: Any, queries: int, rng: np.random.Generator) -> dict[str, Any]:
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        graph = _graph(s)
    if graph is None or graph._xy is None:
        print("road cost: no road network loaded; skipped")
        return {}
    xy = graph._xy
    finite = np.flatnonzero(np.isfinite(xy[:, 0]))
    ours, peer, worst = [], [], 0.0
    edges = "SELECT id, source, target, cost, reverse_cost FROM road_edge"
    with engine.connect() as conn:
        for _ in range(queries):
            src = int(rng.choice(finite))
            d = np.hypot(*(xy[finite] - xy[src]).T)
            near = finite[(d < 3000) & (d > 0)]
            tgt = rng.choice(near, min(20, len(near)), replace=False)
            src_id, tgt_ids = int(graph.node_ids[src]), graph.node_ids[tgt]
            t = time.perf_counter()
            mine = graph.travel_times(src_id, tgt_ids)
            ours.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            rows = conn.execute(
                text(
                    "SELECT end_vid, agg_cost FROM pgr_dijkstra(:e, :s, :t, directed => true) "
                    "WHERE edge = -1"
                ),
                {"e": edges, "s": src_id, "t": [int(v) for v in tgt_ids]},
            ).all()
            peer.append((time.perf_counter() - t) * 1e3)
            got = dict(rows)
            theirs = np.array([got.get(int(v), np.inf) for v in tgt_ids], dtype=float)
            both = np.isfinite(theirs) & np.isfinite(mine)
            if not np.array_equal(np.isfinite(theirs), np.isfinite(mine)):
                worst = float("inf")
            elif both.any():
                worst = max(worst, float(np.max(np.abs(theirs[both] - mine[both]))))
    o, p = statistics.median(ours), statistics.median(peer)
    print(
        f"road cost, 1 → 20 targets ≤ 3 km, {queries} queries on {len(graph.node_ids):,} nodes: "
        f"ours {o:.2f} ms | naive pgr_dijkstra {p:.1f} ms | ratio {p / o:.0f}× | "
        f"max |Δcost| {worst:.1e}"
    )
    return {
        "queries": queries,
        "ours_ms_median": round(o, 3),
        "pgrouting_ms_median": round(p, 2),
        "ratio_pgrouting_over_ours": round(p / o, 1),
        "max_abs_cost_difference": worst,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    engine = make_engine(database_url(get_settings()))
    rng = np.random.default_rng(args.seed)
    res = {"load_before": round(os.getloadavg()[0], 2)}
    res["locate"] = bench_locate(engine, args.points, rng)
    res["road_cost"] = bench_roads(engine, args.queries, rng)
    res["load_after"] = round(os.getloadavg()[0], 2)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
