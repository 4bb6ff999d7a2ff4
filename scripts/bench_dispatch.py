"""Road cost for dispatch: early-stopping search against a full Dijkstra, and recommend().

Graphs: a random city-like graph — a jittered 150 × 150 lattice (150 m blocks), 10% of links
removed, 15% one-way, speeds 30/50/70 km/h, about 40k edges — and, when generated,
``data/scenario/roads.geojson`` (cost = length / class speed in seconds, two-way). Targets: 1
or 20 nodes within 3 km of the incident (candidate mediators nearby); searches run toward the
incident, as recommend() does. Prints, never asserts, timings.

    .venv/bin/python scripts/bench_dispatch.py [--queries 300]
"""

from __future__ import annotations

import argparse
import heapq
import math
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.sparse.csgraph import dijkstra

from gridmap.crs import to_wgs84
from gridmap.dispatch import RoadGraph, recommend

ROOT = Path(__file__).resolve().parents[1]
ROADS = ROOT / "data" / "scenario" / "roads.geojson"
METRIC = "EPSG:4546"
X0, Y0 = 500_000.0, 3_395_000.0  # near Yichang in EPSG:4546


def lattice(rng: np.random.Generator, side: int = 150, step: float = 150.0) -> RoadGraph:
    """A random city-like graph with one-way streets (see the module docstring)."""
    ii, jj = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    node = (ii * side + jj).ravel()
    x = X0 + ii.ravel() * step + rng.normal(0, step / 6, node.size)
    y = Y0 + jj.ravel() * step + rng.normal(0, step / 6, node.size)
    right = node[(ii < side - 1).ravel()]
    up = node[(jj < side - 1).ravel()]
    s = np.r_[right, up]
    t = np.r_[right + side, up + 1]
    keep = rng.random(len(s)) > 0.10
    s, t = s[keep], t[keep]
    speed = rng.choice([30.0, 50.0, 70.0], len(s), p=[0.6, 0.3, 0.1]) / 3.6
    cost = np.hypot(x[t] - x[s], y[t] - y[s]) / speed
    one_way = rng.random(len(s)) < 0.15
    rev = np.where(one_way, -1.0, cost)
    lon, lat = to_wgs84(x, y, METRIC)
    return RoadGraph.from_edges(
        s, t, cost, rev, node_ids=node, node_lon=lon, node_lat=lat, metric_crs=METRIC
    )


def scenario_roads() -> RoadGraph:
    roads = gpd.read_file(ROADS)
    cost = roads["length_m"].to_numpy(float) / (roads["maxspeed_kmh"].to_numpy(float) / 3.6)
    return RoadGraph.from_edges(
        roads["source"], roads["target"], cost, cost, geometry=roads.geometry.values
    )


def timed(runs: list[float], fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Call ``fn(*args, **kw)``, append its wall time (ms) to ``runs``, return its result."""
    t = time.perf_counter()
    out = fn(*args, **kw)
    runs.append((time.perf_counter() - t) * 1e3)
    return out


def p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def heap_search(graph: RoadGraph, src: int, targets: np.ndarray) -> np.ndarray:
    """The alternative measured against: a pure-Python Dijkstra on the transposed graph that
    stops once every target is settled (``src`` and ``targets`` are node indices)."""
    m = graph.matrix(toward=True)
    indptr, indices, data = m.indptr, m.indices, m.data
    dist, done, todo = {src: 0.0}, set(), set(targets.tolist())
    heap = [(0.0, src)]
    while heap and todo:
        d, a = heapq.heappop(heap)
        if a in done:
            continue
        done.add(a)
        todo.discard(a)
        for k in range(indptr[a], indptr[a + 1]):
            b, nd = int(indices[k]), d + float(data[k])
            if nd < dist.get(b, math.inf):
                dist[b] = nd
                heapq.heappush(heap, (nd, b))
    return np.array([dist[i] if i in done else math.inf for i in targets.tolist()])


def bench_search(name: str, graph: RoadGraph, rng: np.random.Generator, queries: int) -> None:
    xy = graph._xy
    assert xy is not None
    print(f"graph: {name}, {len(graph.node_ids):,} nodes, {graph.csr.nnz:,} directed arcs")
    finite = np.flatnonzero(np.isfinite(xy[:, 0]))
    m = graph.matrix(toward=True)
    for k in (1, 20):
        times: dict[str, list[float]] = {"full": [], "auto": [], "heap": []}
        worst = 0.0
        for _ in range(queries):
            src = int(rng.choice(finite))
            d = np.hypot(*(xy[finite] - xy[src]).T)
            near = finite[(d < 3000) & (d > 0)]
            tgt_idx = rng.choice(near, min(k, len(near)), replace=False)
            src_id, tgt = graph.node_ids[src], graph.node_ids[tgt_idx]
            full = timed(times["full"], dijkstra, m, indices=src)[tgt_idx]
            auto = timed(times["auto"], graph.travel_times, src_id, tgt, toward=True)
            heap = timed(times["heap"], heap_search, graph, src, tgt_idx)
            for other in (auto, heap):
                assert np.array_equal(np.isfinite(full), np.isfinite(other))
                both = np.isfinite(full)
                worst = max(worst, float(np.max(np.abs(full[both] - other[both]), initial=0)))
        med = {name: statistics.median(v) for name, v in times.items()}
        print(
            f"  1→{k:<2} targets ≤ 3 km: full Dijkstra {med['full']:5.2f} ms | early-stop C "
            f"(travel_times) {med['auto']:5.2f} ms, p99 {p(times['auto'], 99):5.2f}, "
            f"{med['full'] / med['auto']:4.1f}× | early-stop Python heap {med['heap']:5.2f} ms, "
            f"{med['full'] / med['heap']:4.1f}× | max |Δcost| {worst:.1e}"
        )


def bench_recommend(graph: RoadGraph, rng: np.random.Generator, queries: int) -> None:
    """recommend() end to end: 200 mediators within 6 km (radius 5 km), line vs road."""
    xy = graph._xy
    assert xy is not None and graph.metric_crs is not None
    finite = np.flatnonzero(np.isfinite(xy[:, 0]))
    now = datetime(2026, 11, 27, 9, tzinfo=UTC)
    for with_graph in (False, True):
        runs: list[float] = []
        for _ in range(queries):
            src = int(rng.choice(finite))
            ilon, ilat = to_wgs84(xy[src, 0], xy[src, 1], graph.metric_crs)
            d = np.hypot(*(xy[finite] - xy[src]).T)
            pick = rng.choice(finite[d < 6000], 200, replace=True)
            plon, plat = to_wgs84(xy[pick, 0], xy[pick, 1], graph.metric_crs)
            df = pd.DataFrame(
                {
                    "person_id": np.arange(200),
                    "name": [f"m{i}" for i in range(200)],
                    "grid": rng.choice(list("ABCDEFGH"), 200),
                    "lon": plon,
                    "lat": plat,
                    "status": rng.choice(["available", "busy", "off_duty"], 200, p=[0.7, 0.2, 0.1]),
                    "open_cases": rng.integers(0, 4, 200),
                    "caseload_cap": 3,
                    "position_at": now - timedelta(minutes=5),
                    "roles": "mediator",
                }
            )
            incident = {"grid": "A", "lon": float(ilon), "lat": float(ilat), "category": "邻里纠纷"}
            g = graph if with_graph else None
            adj, comm = {"A": {"B"}}, {"A": "c", "C": "c"}
            timed(runs, recommend, incident, df, adjacency=adj, community_of=comm, graph=g, now=now)
        kind = "road graph" if with_graph else "straight line"
        print(
            f"  recommend(), 200 candidates, {kind:13}: median {statistics.median(runs):5.2f} ms, "
            f"p99 {p(runs, 99):5.2f} ms"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    graphs = [("random city-like lattice", lattice(rng))]
    if ROADS.exists():
        graphs.append(("data/scenario/roads.geojson (two-way)", scenario_roads()))
    for name, graph in graphs:
        bench_search(name, graph, rng, args.queries)
        bench_recommend(graph, rng, max(50, args.queries // 3))


if __name__ == "__main__":
    main()
