"""Dask distributed batch: 1 worker against 2 (and the in-process path), same run, same data.

Reads the Yichang scenario (``data/scenario/``: 121 communities, household units, roads) and
times, on a :class:`distributed.LocalCluster` of 1 and then N worker processes (one thread each):

* gridding every community (one task per community, the biggest first) — the grids are then
  used for the next two steps;
* bulk locate of ``--points`` points (99% inside the grids, 1% anywhere around; slices of
  ``--chunk``; the index is sent to every worker once beforehand — timed apart — and the
  slices are sent to the workers and located there, their transfer included in the time);
* staff assignment per district (a synthetic roster in Yichang's proportions; one min-cost flow
  per district).

Cluster start-up is not timed (a warm-up task runs first). Every distributed result is
compared with the in-process one and must be identical. Prints, never asserts, timings; with
``--json`` also writes the figures there.

    .venv/bin/python scripts/bench_batch.py [--communities 121] [--points 2000000]
        [--workers 2] [--repeat 3] [--chunk 250000] [--json benchmarks/batch.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gridmap.batch import assign_by_district, connect, grid_jobs, locate_points, share_index
from gridmap.crs import from_wgs84, metric_crs_for, metric_crs_for_geometry
from gridmap.gridding_jobs import GridJob, GridOutcome, make_job
from gridmap.locate import GridIndex
from gridmap.roster_synth import synthetic_roster
from gridmap.staffing import Assignment

SCENARIO = Path(__file__).resolve().parents[1] / "data" / "scenario"


def load_jobs(folder: Path, limit: int | None) -> list[GridJob]:
    """Gridding jobs for the scenario's communities (the first ``limit`` by code)."""
    comm = gpd.read_file(folder / "communities.geojson").sort_values("code")
    if limit:
        comm = comm.head(limit)
    units = pd.read_csv(folder / "households.csv", dtype={"community": str})
    roads = np.asarray(gpd.read_file(folder / "roads.geojson").geometry.values, dtype=object)
    tree = shapely.STRtree(roads)
    crs = metric_crs_for_geometry(shapely.box(*comm.total_bounds))
    by_comm = dict(tuple(units.groupby("community")))
    jobs = []
    for code, geom in zip(comm["code"].astype(str), comm.geometry.values, strict=True):
        u = by_comm.get(code, units.iloc[:0])
        near = roads[tree.query(shapely.box(*geom.bounds))]
        jobs.append(
            make_job(
                code,
                geom,
                u["lon"].to_numpy(float),
                u["lat"].to_numpy(float),
                u["households"].to_numpy(float),
                u["residents"].to_numpy(float),
                near,
                crs,
            )
        )
    return jobs


def same_grids(a: list[GridOutcome], b: list[GridOutcome]) -> bool:
    return all(
        x.code == y.code
        and x.seq.tolist() == y.seq.tolist()
        and x.households.tolist() == y.households.tolist()
        and shapely.to_wkb(x.geoms).tolist() == shapely.to_wkb(y.geoms).tolist()
        for x, y in zip(a, b, strict=True)
    )


def same_assignment(a: Assignment, b: Assignment) -> bool:
    return all(
        getattr(a, n).equals(getattr(b, n)) for n in ("postings", "moves", "unfilled", "idle")
    )


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall time of ``repeat`` runs and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def staff_case(outcomes: list[GridOutcome]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Grids (code, metric x/y) and a synthetic roster's staff (metric x/y, no postings)."""
    codes = [f"{o.code}{int(s):03d}" for o in outcomes for s in o.seq]
    geoms = np.concatenate([o.geoms for o in outcomes])
    pts = shapely.point_on_surface(geoms)
    hh = np.concatenate([o.households for o in outcomes])
    ll = pd.DataFrame(
        {"code": codes, "x": shapely.get_x(pts), "y": shapely.get_y(pts), "households": hh}
    )
    roster = synthetic_roster(ll, seed=0)
    crs = metric_crs_for(float(ll["x"].mean()), float(ll["y"].mean()))
    gx, gy = from_wgs84(ll["x"].to_numpy(), ll["y"].to_numpy(), crs)
    grids = pd.DataFrame({"code": codes, "x": gx, "y": gy})
    staff = roster.staff
    staff = staff[staff["role"] != "care_volunteer"].reset_index(drop=True)
    px, py = from_wgs84(staff["lon"].to_numpy(float), staff["lat"].to_numpy(float), crs)
    ids = [f"s{i:06d}" for i in range(len(staff))]
    people = pd.DataFrame({"id": ids, "role": staff["role"], "x": px, "y": py})
    return people, grids


def incident_points(
    index: GridIndex, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points like a year of incidents: 99% uniform inside the grids, 1% anywhere in
    their bounding box (outside points cost a lat/lon swap check, as in production)."""
    minx, miny, maxx, maxy = shapely.total_bounds(index.geoms)
    inside = n - n // 100
    lon, lat = np.zeros(0), np.zeros(0)
    while len(lon) < inside:
        x, y = rng.uniform(minx, maxx, 2 * inside), rng.uniform(miny, maxy, 2 * inside)
        keep = index.locate(x, y) >= 0
        lon, lat = np.r_[lon, x[keep]], np.r_[lat, y[keep]]
    lon = np.r_[lon[:inside], rng.uniform(minx, maxx, n - inside)]
    lat = np.r_[lat[:inside], rng.uniform(miny, maxy, n - inside)]
    order = rng.permutation(n)
    return lon[order], lat[order]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=SCENARIO)
    ap.add_argument("--communities", type=int, default=0, help="first N by code (0: all)")
    ap.add_argument("--points", type=int, default=2_000_000)
    ap.add_argument("--chunk", type=int, default=250_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="runs of locate and assign (median)")
    ap.add_argument(
        "--skip-serial",
        action="store_true",
        help="no in-process gridding run (grids compared with the 1-worker run instead)",
    )
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)

    t = time.perf_counter()
    jobs = load_jobs(args.data, args.communities or None)
    print(
        f"{len(jobs)} communities, {sum(j.size for j in jobs)} household units "
        f"(inputs {time.perf_counter() - t:.1f} s); load {os.getloadavg()[0]:.2f}, "
        f"{os.cpu_count()} cores"
    )
    res: dict[str, Any] = {"communities": len(jobs), "points": args.points, "cores": os.cpu_count()}
    res["load_before"] = round(os.getloadavg()[0], 2)

    serial_grids: list[GridOutcome] | None = None
    if not args.skip_serial:
        res["grid_serial_s"], serial_grids = timed(lambda: grid_jobs(jobs), 1)
        print(f"gridding in-process            {res['grid_serial_s']:8.1f} s")
    rng = np.random.default_rng(20261127)
    by_workers: dict[int, dict[str, Any]] = {}
    index: GridIndex | None = None
    lon = lat = np.zeros(0)
    ref_loc: tuple[np.ndarray, np.ndarray] | None = None
    ref_assign: Assignment | None = None
    people = grids = pd.DataFrame()
    for n in sorted({1, args.workers}):
        with connect(workers=n) as client:
            client.submit(sum, [1, 2]).result()  # workers up and answering
            r: dict[str, Any] = {}
            r["grid_s"], outcomes = timed(lambda c=client: grid_jobs(jobs, client=c), 1)
            ref = "in-process" if not args.skip_serial else "the 1-worker run"
            if serial_grids is None:  # --skip-serial: the first (1-worker) run is the reference
                serial_grids = outcomes
            r["grid_identical"] = same_grids(outcomes, serial_grids)
            print(
                f"gridding, {n} worker(s)          {r['grid_s']:8.1f} s  "
                f"identical to {ref}: {r['grid_identical']}"
            )
            if index is None:
                codes = [f"{o.code}{int(s):03d}" for o in outcomes for s in o.seq]
                t = time.perf_counter()
                index = GridIndex.build(codes, np.concatenate([o.geoms for o in outcomes]))
                res["index_build_s"] = round(time.perf_counter() - t, 2)
                res["grids"] = len(codes)
                lon, lat = incident_points(index, args.points, rng)
                t = time.perf_counter()
                ref_loc = locate_points(index, lon, lat, chunk=args.chunk)
                res["locate_serial_s"] = round(time.perf_counter() - t, 3)
                people, grids = staff_case(outcomes)
                t = time.perf_counter()
                ref_assign = assign_by_district(people, grids)
                res["assign_serial_s"] = round(time.perf_counter() - t, 3)
                res["staff"] = len(people)
                print(
                    f"{len(codes)} grids, index {res['index_build_s']} s; in-process locate "
                    f"{res['locate_serial_s']} s, assign {res['assign_serial_s']} s"
                )
            assert ref_loc is not None and ref_assign is not None
            r["share_index_s"], shared = timed(lambda c=client, ix=index: share_index(c, ix), 1)
            r["locate_s"], loc = timed(
                lambda c=client, ix=shared, x=lon, y=lat: locate_points(
                    ix, x, y, client=c, chunk=args.chunk
                ),
                args.repeat,
            )
            r["locate_identical"] = bool(
                np.array_equal(loc[0], ref_loc[0]) and np.array_equal(loc[1], ref_loc[1])
            )
            r["locate_pts_per_s"] = round(args.points / r["locate_s"])
            r["assign_s"], a = timed(
                lambda c=client, p=people, g=grids: assign_by_district(p, g, client=c),
                args.repeat,
            )
            r["assign_identical"] = same_assignment(a, ref_assign)
            print(
                f"locate {args.points} pts, {n} worker(s)  {r['locate_s']:8.3f} s "
                f"({r['locate_pts_per_s']:,} pts/s; index shipped once before, "
                f"{r['share_index_s']:.2f} s) identical: {r['locate_identical']}"
            )
            print(
                f"assign per district, {n} worker(s) {r['assign_s']:8.3f} s "
                f"identical: {r['assign_identical']}"
            )
            by_workers[n] = r
    res["by_workers"] = by_workers
    if args.workers > 1:
        one, many = by_workers[1], by_workers[args.workers]
        res["speedup"] = {
            k: round(one[f"{k}_s"] / many[f"{k}_s"], 2) for k in ("grid", "locate", "assign")
        }
        print(f"speed-up {args.workers} workers over 1: {res['speedup']}")
    res["load_after"] = round(os.getloadavg()[0], 2)
    print(f"load average after: {res['load_after']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
