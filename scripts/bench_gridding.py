"""Benchmark the gridder on a whole city; compare with PySAL spopt on a few communities.

Reads ``data/scenario/`` (communities.geojson, households.csv, roads.geojson, WGS84) when it is
there, else builds a synthetic city (perturbed street grid, a river, tower clusters among
low-rise). Every community is projected to EPSG:4546 and gridded with
``DEFAULT_HOUSEHOLDS_PER_GRID`` households per grid. Prints figures; never asserts timings.

    .venv/bin/python scripts/bench_gridding.py [--synthetic] [--spopt N] [--k 250]
        [--prefer balance|streets|compact]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gridmap.crs import to_metric  # noqa: E402
from gridmap.gridding import DEFAULT_HOUSEHOLDS_PER_GRID, grid_community  # noqa: E402
from gridmap.gridding_prefs import PREFERENCES  # noqa: E402
from gridmap.gridding_quality import grid_quality, polsby_popper  # noqa: E402

METRIC = "EPSG:4546"
SCENARIO = ROOT / "data" / "scenario"


def synthetic_city(seed: int = 7, n_comm: int = 121) -> tuple[list, list, list, np.ndarray]:
    """Communities, per-community unit dicts and roads of a made-up city (metric, EPSG:4546)."""
    rng = np.random.default_rng(seed)
    x0, y0, w, h, sx, sy = 500_000.0, 3_390_000.0, 9_000.0, 6_000.0, 170.0, 140.0
    nx, ny = int(w / sx) + 1, int(h / sy) + 1
    gx, gy = np.meshgrid(np.arange(nx) * sx, np.arange(ny) * sy)
    px = x0 + gx + rng.normal(0, 10, gx.shape) + 120 * np.sin(gy / 1500)
    py = y0 + gy + rng.normal(0, 10, gy.shape) + 80 * np.sin(gx / 2000)
    roads = []
    for j in range(ny):
        for i in range(nx):
            a = (px[j, i], py[j, i])
            if i + 1 < nx and rng.random() > 0.12:
                roads.append(shapely.LineString([a, (px[j, i + 1], py[j, i + 1])]))
            if j + 1 < ny and rng.random() > 0.12:
                roads.append(shapely.LineString([a, (px[j + 1, i], py[j + 1, i])]))
    t = np.linspace(0, 1, 200)
    river = shapely.LineString(
        np.column_stack([x0 - 100 + t * (w + 200), y0 + 0.45 * h + 400 * np.sin(t * 7)])
    )
    roads.append(river)
    outline = shapely.box(x0 + 30, y0 + 30, x0 + w - 200, y0 + h - 200)
    seeds = rng.uniform((x0, y0), (x0 + w, y0 + h), (n_comm, 2))
    samples = rng.uniform((x0, y0), (x0 + w, y0 + h), (20000, 2))
    for _ in range(8):  # Lloyd steps: communities of similar size
        lab = np.argmin(((samples[:, None, :] - seeds[None]) ** 2).sum(-1), axis=1)
        seeds = np.array([samples[lab == k].mean(0) for k in range(n_comm)])
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=outline.buffer(1000))
    )
    cells = shapely.intersection(cells, outline)
    # a few communities are bent (two cells joined): concave shapes
    comms_geo = list(cells[np.argsort(shapely.get_x(shapely.centroid(cells)), kind="stable")])
    roads += list(shapely.boundary(np.asarray(comms_geo, dtype=object)))  # main roads on edges
    road_arr = np.asarray(roads, dtype=object)
    comms, units = [], []
    centres = seeds[rng.choice(n_comm, 25, replace=False)]
    for geom in comms_geo:
        comms.append(geom)
        near = road_arr[shapely.intersects(road_arr, geom)]
        lines = shapely.get_parts(shapely.intersection(near, geom))
        blocks = shapely.get_parts(
            shapely.polygonize(shapely.get_parts(shapely.union_all([geom.boundary, *lines])))
        )
        blocks = blocks[shapely.contains(geom, shapely.point_on_surface(blocks))]
        inner = shapely.buffer(blocks, -8.0)
        inner = inner[~shapely.is_empty(inner)]
        area = shapely.area(inner)
        nb = rng.poisson(np.maximum(area / 1250.0, 1))
        pts, hhs = [], []
        for b, cnt in zip(inner, nb, strict=True):
            minx, miny, maxx, maxy = b.bounds
            cand = rng.uniform((minx, miny), (maxx, maxy), (cnt * 3 + 5, 2))
            cand = cand[shapely.contains_xy(b, cand[:, 0], cand[:, 1])][:cnt]
            dist = np.min(np.hypot(*(cand[:, None, :] - centres[None]).transpose(2, 0, 1)), axis=1)
            tower = rng.random(len(cand)) < 0.22 * np.exp(-((dist / 500.0) ** 2))
            hh = np.where(tower, rng.integers(30, 130, len(cand)), rng.integers(1, 11, len(cand)))
            pts.append(cand)
            hhs.append(hh)
        xy = np.concatenate(pts) if pts else np.zeros((0, 2))
        hh = np.concatenate(hhs) if hhs else np.zeros(0)
        units.append(
            {
                "x": xy[:, 0],
                "y": xy[:, 1],
                "households": hh.astype(float),
                "residents": np.round(hh * rng.uniform(2.2, 3.2, len(hh))),
            }
        )
    codes = np.array([f"420502{k:06d}" for k in range(n_comm)])
    return comms, units, roads, codes


def scenario_city(folder: Path = SCENARIO) -> tuple[list, list, list, np.ndarray]:
    """The scenario (communities, households.csv, roads; WGS84), projected to EPSG:4546."""
    comm = gpd.read_file(folder / "communities.geojson")
    hh = pd.read_csv(folder / "households.csv")
    roads = gpd.read_file(folder / "roads.geojson")
    comm_m = to_metric(np.asarray(comm.geometry.values), METRIC)
    pts = to_metric(shapely.points(hh["lon"].to_numpy(), hh["lat"].to_numpy()), METRIC)
    xy = shapely.get_coordinates(pts)
    road_m = list(to_metric(np.asarray(roads.geometry.values), METRIC))
    code_col = "code" if "code" in comm else comm.columns[0]
    codes = comm[code_col].astype(str).to_numpy()
    by = hh["community"].astype(str).to_numpy()
    units = []
    for c in codes:
        sel = by == c
        units.append(
            {
                "x": xy[sel, 0],
                "y": xy[sel, 1],
                "households": hh["households"].to_numpy(float)[sel],
                "residents": hh["residents"].to_numpy(float)[sel],
            }
        )
    return list(comm_m), units, road_m, codes


def run_ours(
    comms: list, units: list, roads: list, k: float, prefer: str | None = None
) -> tuple[list, float]:
    tree = shapely.STRtree(np.asarray(roads, dtype=object))
    road_arr = np.asarray(roads, dtype=object)
    t0, c0 = time.perf_counter(), time.process_time()
    results = []
    for geom, u in zip(comms, units, strict=True):
        near = road_arr[tree.query(geom)]
        results.append(
            grid_community(geom, u, households_per_grid=k, roads=near, crs=METRIC, prefer=prefer)
        )
    print(
        f"gridding CPU time {time.process_time() - c0:.2f} s (wall time below; the machine "
        f"may be shared)"
    )
    return results, time.perf_counter() - t0


def _pct(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q)) if len(a) else float("nan")


def report(
    comms: list, units: list, roads: list, results: list, elapsed: float, k: float
) -> list[dict]:
    road_arr = np.asarray(roads, dtype=object)
    tree = shapely.STRtree(road_arr)
    qs = []
    for geom, u, g in zip(comms, units, results, strict=True):
        near = road_arr[tree.query(geom.buffer(20))]
        qs.append(grid_quality(geom, g, u, near, target=k))
    cv = np.array([q["cv"] for q in qs if q["n_grids"] > 1])
    pp = np.concatenate([polsby_popper(g.geometry) for g in results])
    internal = np.array([q["road_alignment"] for q in qs if q["n_grids"] > 1])
    ngrids = sum(q["n_grids"] for q in qs)
    hh_total = sum(float(np.sum(u["households"])) for u in units)
    print(
        f"communities {len(comms)}  households {hh_total:,.0f}  units "
        f"{sum(len(u['households']) for u in units):,}  K={k:g}"
    )
    print(f"grids {ngrids}  time {elapsed:.2f} s ({1000 * elapsed / len(comms):.1f} ms/community)")
    print(
        f"CV per community: median {_pct(cv, 50):.3f}  p90 {_pct(cv, 90):.3f}  "
        f"max {cv.max() if len(cv) else float('nan'):.3f}"
    )
    print(f"Polsby-Popper: mean {pp.mean():.3f}  p10 {_pct(pp, 10):.3f}  min {pp.min():.3f}")
    print(
        f"road alignment (per community): mean {internal.mean():.3f}  "
        f"p10 {_pct(internal, 10):.3f}  min {internal.min():.3f}"
    )
    worst = {key: max(q[key] for q in qs) for key in ("max_overlap", "gap_area", "outside_area")}
    print(
        f"partition: max overlap {worst['max_overlap']:.2e} m²  max gap "
        f"{worst['gap_area']:.2e} m²  outside {worst['outside_area']:.2e}"
        f" m²  non-polygons {sum(q['non_polygons'] for q in qs)}  invalid "
        f"{sum(q['invalid'] for q in qs)}  slivers {sum(q['slivers'] for q in qs)}  units on "
        f"edge {sum(q['units_on_edge'] for q in qs)}  unassigned "
        f"{sum(q['units_unassigned'] for q in qs)}"
    )
    return qs


def _lattice(geom, u: dict, cell: float) -> gpd.GeoDataFrame:
    """~``cell`` m squares over the community with their household counts (spopt's input)."""
    minx, miny, maxx, maxy = geom.bounds
    xs, ys = np.arange(minx, maxx, cell), np.arange(miny, maxy, cell)
    boxes = shapely.box(*np.meshgrid(xs, ys), *np.meshgrid(xs + cell, ys + cell))
    cells = shapely.intersection(boxes.ravel(), geom)
    cells = shapely.get_parts(cells[~shapely.is_empty(cells)])
    cells = cells[shapely.get_type_id(cells) == 3]
    cells = cells[shapely.area(cells) > 1.0]
    pts = shapely.points(u["x"], u["y"])
    pi, ci = shapely.STRtree(cells).query(pts, predicate="intersects")
    first = np.unique(pi, return_index=True)[1]
    hh = np.bincount(ci[first], u["households"][pi[first]], len(cells))
    cen = shapely.get_coordinates(shapely.centroid(cells))
    return gpd.GeoDataFrame(
        {"households": hh, "x": cen[:, 0], "y": cen[:, 1]}, geometry=cells, crs=METRIC
    )


def _regions(frame: gpd.GeoDataFrame, labels: np.ndarray) -> tuple[float, float, int]:
    """CV of households and mean Polsby-Popper of the dissolved regions; their count."""
    frame = frame.assign(region=labels)
    hh = frame.groupby("region")["households"].sum().to_numpy()
    geoms = [shapely.union_all(g.geometry.values) for _, g in frame.groupby("region")]
    return float(hh.std() / hh.mean()), float(polsby_popper(geoms).mean()), len(hh)


def compare_spopt(
    comms: list, units: list, roads: list, results: list, k: float, sample: int
) -> None:
    """Ours against PySAL spopt max-p and SKATER on ~100 m lattices, on a few communities."""
    try:
        import libpysal
        from spopt.region import MaxPHeuristic, Skater
    except ImportError:
        print("spopt comparison skipped: pip install spopt libpysal")
        return
    import warnings

    warnings.filterwarnings("ignore")
    road_arr = np.asarray(roads, dtype=object)
    tree = shapely.STRtree(road_arr)
    sizes = np.array([len(r) for r in results])
    cand = np.flatnonzero(sizes >= 4)
    picks = cand[np.linspace(0, len(cand) - 1, min(sample, len(cand))).astype(int)]
    print(f"\nspopt on {len(picks)} communities (100 m lattice; ratios are theirs / ours)")
    print(
        f"{'community':>9} {'method':>7} {'grids':>5} {'time s':>8} {'CV':>6} {'PP':>5} "
        f"{'t/ours':>7} {'CV/ours':>7} {'PP/ours':>7}"
    )
    for i in picks:
        t0 = time.perf_counter()
        near = road_arr[tree.query(comms[i])]
        ours = grid_community(comms[i], units[i], households_per_grid=k, roads=near)
        t_ours = time.perf_counter() - t0
        q = grid_quality(comms[i], results[i], units[i])
        cv_o, pp_o = q["cv"], q["pp_mean"]
        print(f"{i:>9} {'ours':>7} {len(ours):>5} {t_ours:>8.3f} {cv_o:>6.3f} {pp_o:>5.2f}")
        lat = _lattice(comms[i], units[i], 100.0)
        w = libpysal.weights.Rook.from_dataframe(lat, use_index=False, silence_warnings=True)
        runs = [
            (
                "max-p",
                lambda lat=lat, w=w: MaxPHeuristic(
                    lat,
                    w,
                    ["x", "y"],
                    "households",
                    k,
                    top_n=2,
                    max_iterations_construction=5,
                    max_iterations_sa=2,
                ),
            ),
            (
                "skater",
                lambda lat=lat, w=w, n=len(results[i]): Skater(
                    lat, w, ["x", "y", "households"], n_clusters=n, floor=1
                ),
            ),
        ]
        for name, make in runs:
            t0 = time.perf_counter()
            model = make()
            model.solve()
            dt = time.perf_counter() - t0
            cv, pp, n = _regions(lat, np.asarray(model.labels_))
            print(
                f"{'':>9} {name:>7} {n:>5} {dt:>8.3f} {cv:>6.3f} {pp:>5.2f} "
                f"{dt / t_ours:>7.0f} {cv / max(cv_o, 1e-9):>7.1f} {pp / max(pp_o, 1e-9):>7.2f}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--synthetic", action="store_true", help="ignore data/scenario")
    ap.add_argument("--data", type=Path, default=SCENARIO, help="scenario folder")
    ap.add_argument("--k", type=float, default=DEFAULT_HOUSEHOLDS_PER_GRID)
    ap.add_argument("--prefer", choices=list(PREFERENCES), default=None, help="gridding preference")
    ap.add_argument(
        "--spopt", type=int, default=5, help="communities compared with spopt (0: none)"
    )
    args = ap.parse_args()
    use_scenario = not args.synthetic and (args.data / "communities.geojson").exists()
    t0 = time.perf_counter()
    comms, units, roads, _ = scenario_city(args.data) if use_scenario else synthetic_city()
    print(
        f"data: {args.data if use_scenario else 'synthetic city'} "
        f"(loaded in {time.perf_counter() - t0:.1f} s)"
    )
    if args.prefer:
        print(f"preference: {args.prefer}")
    results, elapsed = run_ours(comms, units, roads, args.k, args.prefer)
    report(comms, units, roads, results, elapsed, args.k)
    if args.spopt:
        compare_spopt(comms, units, roads, results, args.k, args.spopt)


if __name__ == "__main__":
    main()
