"""Bulk point → grid: gridmap.locate.GridIndex against geopandas.sjoin, same process, same data.

Grids: ``data/scenario/grids.geojson`` when a colleague has generated it (``--grids`` to name
another file), else ≈ 1,110 Voronoi cells over the four Yichang districts (denser in the urban
districts 西陵区/伍家岗区). Points: uniform over the districts. Both sides apply the same rule
(covers, then the lowest code) and must give identical answers. Prints, never asserts, timings.

    .venv/bin/python scripts/bench_locate.py [--points 1000000] [--cell 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridmap.locate import GridIndex

ROOT = Path(__file__).resolve().parents[1]
DISTRICTS = ROOT / "data" / "boundaries" / "yichang_districts.geojson"
SCENARIO_GRIDS = ROOT / "data" / "scenario" / "grids.geojson"
URBAN = ("420502", "420503")


def sample_in(area: shapely.Geometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform points inside ``area`` (rejection sampling in lon/lat)."""
    minx, miny, maxx, maxy = area.bounds
    out: list[np.ndarray] = []
    got = 0
    shapely.prepare(area)
    while got < n:
        x, y = rng.uniform(minx, maxx, 2 * n), rng.uniform(miny, maxy, 2 * n)
        keep = shapely.contains_xy(area, x, y)
        out.append(np.column_stack([x[keep], y[keep]]))
        got += int(keep.sum())
    return np.concatenate(out)[:n]


def voronoi_grids(
    districts: gpd.GeoDataFrame, n: int, rng: np.random.Generator
) -> gpd.GeoDataFrame:
    """Voronoi cells clipped to the districts: half the seeds in the urban districts."""
    city = shapely.union_all(districts.geometry.values)
    urban = shapely.union_all(districts[districts["code"].isin(URBAN)].geometry.values)
    seeds = np.r_[sample_in(city, n - n // 2, rng), sample_in(urban, n // 2, rng)]
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds)))
    cells = shapely.intersection(cells, city)
    cells = cells[~shapely.is_empty(cells) & (shapely.area(cells) > 0)]
    codes = [f"4205{k:011d}" for k in rng.permutation(len(cells))]
    return gpd.GeoDataFrame({"code": codes}, geometry=list(cells), crs="EPSG:4326")


def sjoin_locate(
    grids: gpd.GeoDataFrame, rank: np.ndarray, lon: np.ndarray, lat: np.ndarray
) -> np.ndarray:
    """The baseline: sjoin 'intersects' (= covers for points), then the lowest-code rule."""
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326")
    j = gpd.sjoin(pts, grids[["geometry"]], predicate="intersects", how="inner")
    pairs = pd.DataFrame({"p": j.index.to_numpy(), "g": j["index_right"].to_numpy()})
    pairs["r"] = rank[pairs["g"].to_numpy()]
    best = pairs.sort_values(["p", "r"]).drop_duplicates("p")
    out = np.full(len(lon), -1, dtype=np.int64)
    out[best["p"].to_numpy()] = best["g"].to_numpy()
    return out


def timed(fn: Callable[[], np.ndarray], repeat: int) -> tuple[float, np.ndarray]:
    times: list[float] = []
    result = np.zeros(0)
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--grids", type=Path, default=SCENARIO_GRIDS)
    ap.add_argument("--n-grids", type=int, default=1110)
    ap.add_argument("--cell", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=20261127)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    districts = gpd.read_file(DISTRICTS)
    if args.grids.exists():
        grids = gpd.read_file(args.grids).to_crs("EPSG:4326")[["code", "geometry"]]
        source = str(
            args.grids.relative_to(ROOT) if args.grids.is_relative_to(ROOT) else args.grids
        )
    else:
        grids = voronoi_grids(districts, args.n_grids, rng)
        source = f"Voronoi cells over the 4 districts (seed {args.seed})"
    grids = grids.reset_index(drop=True)
    city = shapely.union_all(districts.geometry.values)
    lon, lat = sample_in(city, args.points, rng).T
    print(f"grids: {len(grids)} from {source}; points: {len(lon):,} uniform over the districts")

    t = time.perf_counter()
    index = GridIndex.build(grids["code"].to_numpy(), grids.geometry.values, cell_m=args.cell)
    build = time.perf_counter() - t
    print(f"build: {build:.2f} s, raster {index.nbytes / 1e6:.1f} MB at {args.cell:g} m cells")

    t_ours, ours = timed(lambda: index.locate(lon, lat), max(args.repeat, 5))
    t_sjoin, base = timed(lambda: sjoin_locate(grids, index.rank, lon, lat), args.repeat)
    t_exact, exact = timed(lambda: index.exact(lon, lat), args.repeat)
    fallback = index.fallback_share(lon, lat)
    n = len(lon)
    same = np.array_equal(ours, base) and np.array_equal(exact, base)
    print(f"located: {np.mean(np.asarray(base) >= 0):.1%}; exact fallback share: {fallback:.2%}")
    print(f"geopandas.sjoin + tie-break : {t_sjoin:7.3f} s  {n / t_sjoin / 1e6:6.2f} M points/s")
    print(f"STRtree exact only          : {t_exact:7.3f} s  {n / t_exact / 1e6:6.2f} M points/s")
    print(f"GridIndex.locate            : {t_ours:7.3f} s  {n / t_ours / 1e6:6.2f} M points/s")
    print(f"ratio locate / sjoin        : {t_sjoin / t_ours:.1f}×  (target ≥ 5×)")
    print(
        f"identical answers           : {same}"
        + ("" if same else f" ({int(np.sum(np.asarray(ours) != np.asarray(base)))} differ)")
    )


if __name__ == "__main__":
    main()
