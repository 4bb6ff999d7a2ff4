"""Province scale on the batch path: gridding time, bulk-locate throughput, peak memory.

1. **Gridding one city at province density**: the Yichang scenario's 121 communities gridded
   at ``--households-per-grid`` (default 100: ≈ 10 million households in ≈ 100,000 grids) on
   a Dask LocalCluster of ``--workers`` processes. A province of ``--cities`` such cities
   (``scripts/make_scenario.py --province``) takes about that many times as long on the same
   workers — an extrapolation, printed as such.
2. **Province-sized index**: that city's grids tiled ``--cities`` times side by side (shifted
   by whole tile widths and recoded, as the province generator lays its cities out), indexed
   with :class:`gridmap.locate.GridIndex` at ``--cell`` metres (build time, raster bytes).
3. **A year of incidents**: ``--incidents`` points at the tiled household units (weighted by
   households, jittered 20 m), located in-process and on the workers (points per second).
4. **Peak memory**: resident set of this process and the largest worker.

Tile serving is not measured here (it needs the province loaded into PostGIS). Prints, never
asserts, timings; ``--json`` writes the figures.

    .venv/bin/python scripts/bench_province.py [--cities 36] [--workers 2] [--incidents 1000000]
        [--households-per-grid 100] [--communities 0] [--cell 10] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_batch import SCENARIO, load_jobs

from gridmap.batch import connect, grid_jobs, locate_points, share_index
from gridmap.locate import GridIndex
from gridmap.scenario_province import MARGIN_DEG, incident_points, tile_offsets


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cities", type=int, default=36)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--incidents", type=int, default=1_000_000)
    ap.add_argument("--households-per-grid", type=float, default=100.0)
    ap.add_argument("--communities", type=int, default=0, help="first N by code (0: all)")
    ap.add_argument("--cell", type=float, default=10.0)
    ap.add_argument("--chunk", type=int, default=250_000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    res: dict[str, Any] = {"load_before": round(os.getloadavg()[0], 2), "cities": args.cities}
    jobs = load_jobs(SCENARIO, args.communities or None)
    units = pd.read_csv(SCENARIO / "households.csv", dtype={"community": str})
    units = units[units["community"].isin([j.code for j in jobs])]
    with connect(workers=args.workers) as client:
        client.submit(sum, [1, 2]).result()
        t = time.perf_counter()
        out = grid_jobs(jobs, client=client, households_per_grid=args.households_per_grid)
        t_grid = time.perf_counter() - t
        n_grids = sum(len(o.seq) for o in out)
        res["city"] = {
            "communities": len(jobs),
            "households": int(units["households"].sum()),
            "grids": n_grids,
            "gridding_s": round(t_grid, 1),
            "workers": args.workers,
        }
        res["province_gridding_estimate_h"] = round(t_grid * args.cities / 3600, 2)
        print(
            f"gridding 1 city ({len(jobs)} communities, {int(units['households'].sum())} "
            f"households) at {args.households_per_grid:g} households/grid: {n_grids} grids in "
            f"{t_grid:.1f} s on {args.workers} workers → {args.cities} cities ≈ "
            f"{res['province_gridding_estimate_h']} h on the same workers (extrapolated)",
            flush=True,
        )
        codes = np.array([f"{o.code}{int(s):03d}" for o in out for s in o.seq], dtype=object)
        geoms = np.concatenate([o.geoms for o in out])
        minx, miny, maxx, maxy = shapely.total_bounds(geoms)
        w, h = maxx - minx + MARGIN_DEG, maxy - miny + MARGIN_DEG
        all_codes, all_geoms, all_units = [], [], []
        for k, (c, r) in enumerate(tile_offsets(args.cities), start=1):
            off = np.array([c * w, r * h])
            all_codes.append(np.array([f"42{k:02d}{s[4:]}" for s in codes], dtype=object))
            all_geoms.append(shapely.transform(geoms, lambda xy, o=off: xy + o))
            all_units.append(units.assign(lon=units["lon"] + off[0], lat=units["lat"] + off[1]))
        t = time.perf_counter()
        index = GridIndex.build(
            np.concatenate(all_codes), np.concatenate(all_geoms), cell_m=args.cell
        )
        t_index = time.perf_counter() - t
        res["index"] = {
            "grids": len(index.codes),
            "cell_m": args.cell,
            "build_s": round(t_index, 1),
            "raster_mb": round(index.nbytes / 1e6, 1),
        }
        print(
            f"province index: {len(index.codes)} grids over {args.cities} cities, built in "
            f"{t_index:.1f} s, raster {index.nbytes / 1e6:.0f} MB at {args.cell:g} m",
            flush=True,
        )
        inc = incident_points(pd.concat(all_units, ignore_index=True), args.incidents, seed=1)
        lon, lat = inc["lon"].to_numpy(float), inc["lat"].to_numpy(float)
        del all_units, all_geoms
        t = time.perf_counter()
        ref = locate_points(index, lon, lat, chunk=args.chunk)
        t_one = time.perf_counter() - t
        t = time.perf_counter()
        shared = share_index(client, index)
        t_share = time.perf_counter() - t
        t = time.perf_counter()
        got = locate_points(shared, lon, lat, client=client, chunk=args.chunk)
        t_many = time.perf_counter() - t
        same = bool(np.array_equal(ref[0], got[0]) and np.array_equal(ref[1], got[1]))
        located = float(np.mean(ref[0] >= 0))
        exact = index.fallback_share(lon[:200_000], lat[:200_000])
        res["locate"] = {
            "incidents": args.incidents,
            "located_share": round(located, 4),
            "exact_check_share": round(exact, 4),
            "in_process_s": round(t_one, 2),
            "in_process_pts_per_s": round(args.incidents / t_one),
            "share_index_s": round(t_share, 2),
            "dask_s": round(t_many, 2),
            "dask_pts_per_s": round(args.incidents / t_many),
            "identical": same,
        }
        print(
            f"locate {args.incidents:,} incidents ({located:.1%} in a grid, {exact:.0%} on "
            f"boundary pixels: exact check): in-process "
            f"{t_one:.2f} s ({args.incidents / t_one / 1e6:.2f} M/s); {args.workers} workers "
            f"{t_many:.2f} s ({args.incidents / t_many / 1e6:.2f} M/s, points sent included; "
            f"the index shipped to the workers once before: {t_share:.1f} s); identical: {same}",
            flush=True,
        )
        worker_rss = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    res["peak_rss_mb"] = {
        "main": round(_rss_mb()),
        "largest_worker": round(max(worker_rss.values()) / 1024),
    }
    res["load_after"] = round(os.getloadavg()[0], 2)
    print(
        f"peak resident memory: this process {res['peak_rss_mb']['main']} MB, largest worker "
        f"{res['peak_rss_mb']['largest_worker']} MB (limit 24 GB); load {res['load_before']} → "
        f"{res['load_after']}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
