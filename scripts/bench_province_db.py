"""The whole SYNTHETIC province in PostGIS: load it, grid it, serve it — and measure each step.

Input: ``scripts/make_scenario.py --province 36 --workers 2`` (``.gridmap/province/``). The
database named by ``--db`` (default ``gridmap_province`` on ``$GM_BASE``, or a full URL) is
**dropped and recreated** by the ``load`` phase. Phases (``--phases``, default all, in order;
each runs in its own process, so every peak resident memory belongs to that phase alone):

- ``load``: migrations; cities (the dissolved districts, kind ``city``, code ``42kk``) through
  :func:`gridmap.store.areas.upsert_areas`; districts, streets and communities through the
  boundary import (:func:`gridmap.store.imports.import_boundaries`, validated against their
  parents); household units and road edges through :mod:`gridmap.store.bulk`. Time per table,
  rows, table and database size.
- ``grid``: every community at ``--households-per-grid`` (100: ≈ 100,000 grids) into one draft
  with :func:`gridmap.store.grids.run_gridding` on a Dask LocalCluster of ``--workers``
  processes (the code of ``gridmap batch grid``), then published with
  :func:`gridmap.store.history.publish_draft`. Wall time split into reading the inputs, the
  gridding itself and writing; grids/s; peak memory of this process and of each worker.
- ``incidents``: the year of incidents with their lifecycle events
  (:func:`gridmap.scenario_province.incident_histories`) located to the published grids and
  COPYed by :func:`gridmap.store.bulk.load_incidents`.
- ``serve``: ``gridmap serve`` (one process) on ``--port``; vector tiles per zoom (cold = first
  request, then the same tiles again from the server's tile cache), the same tiles rendered
  straight through SQL (no cache, no HTTP), ``GET /api/v1/locate`` (first request builds the
  100,000-grid index in the server), the coverage map and dashboard for the whole province and
  for one city (a leader scoped to it); the server's peak resident memory.

Prints, never asserts, timings; figures are merged into ``--json``
(default ``benchmarks/province_db.json``). Long (≈ 30 min on 2 cores):
``scripts/bench_all.py --only province_db`` runs it, the default suite does not.

    source /work/gm_base.sh   # or pass --db postgresql+psycopg://…/gridmap_province
    flock /tmp/gridmap-bench.lock .venv/bin/python scripts/bench_province_db.py \\
        [--phases load,grid,incidents,serve] [--workers 2] [--tiles 120] [--port 8790]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_api import wait_until_serving  # noqa: E402

PHASES = ("load", "grid", "incidents", "serve")
ZOOMS = (8, 10, 12, 14, 16)


def _rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _url(db: str) -> str:
    if "://" in db:
        return db
    base = os.environ.get("GM_BASE")
    if not base:
        sys.exit("set GM_BASE (source /work/gm_base.sh) or pass --db as a full URL")
    return f"{base}/{db}"


def _engine(url: str) -> Any:
    from gridmap.store.db import make_engine

    return make_engine(url, statement_timeout_ms=0, app_role=None)  # bulk work: no timeout


def _vacuum(url: str, *tables: str) -> float:
    """VACUUM ANALYZE (the tables, or the whole database); seconds."""
    from sqlalchemy import text

    t = time.perf_counter()
    with _engine(url).connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        for table in tables or ("",):
            c.execute(text(f"VACUUM ANALYZE {table}"))
    return round(time.perf_counter() - t, 1)


def _sizes(url: str) -> dict[str, Any]:
    from sqlalchemy import text

    tables = ("area", "household_unit", "road_edge", "grid", "incident", "incident_event")
    with _engine(url).connect() as c:
        out: dict[str, Any] = {
            t: {
                "rows": int(c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()),
                "mb": round(
                    c.execute(text(f"SELECT pg_total_relation_size('{t}')")).scalar_one() / 1e6,
                    1,
                ),
            }
            for t in tables
        }
        out["database_mb"] = round(
            c.execute(text("SELECT pg_database_size(current_database())")).scalar_one() / 1e6
        )
    return out


# -- load ------------------------------------------------------------------------------------
def phase_load(args: argparse.Namespace, url: str) -> dict[str, Any]:
    import geopandas as gpd
    import pandas as pd
    from sqlalchemy import create_engine, text

    from gridmap.store.areas import upsert_areas
    from gridmap.store.bulk import load_household_units, load_road_edges
    from gridmap.store.db import migrate, session_scope
    from gridmap.store.imports import import_boundaries

    head, name = url.rsplit("/", 1)
    admin = create_engine(f"{head}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    res: dict[str, Any] = {}
    t = time.perf_counter()
    migrate(url)
    res["migrate_s"] = round(time.perf_counter() - t, 1)
    engine = _engine(url)
    data = args.data
    t = time.perf_counter()
    districts = gpd.read_file(data / "districts.geojson")
    cities = districts.dissolve(by="parent", as_index=False)[["parent", "geometry"]]
    cities = cities.rename(columns={"parent": "code"})
    cities["name"] = [f"合成市{c[2:]}" for c in cities["code"]]
    cities["parent"] = None
    with session_scope(engine) as s:
        upsert_areas(s, cities, level="city", source="districts.geojson (dissolved)", user="bench")
    res["city"] = {"rows": len(cities), "s": round(time.perf_counter() - t, 1)}
    print(f"city          {len(cities):>9,} rows in {res['city']['s']:6.1f} s", flush=True)
    for level, file in (
        ("district", "districts.geojson"),
        ("street", "streets.geojson"),
        ("community", "communities.geojson"),
    ):
        t = time.perf_counter()
        report = import_boundaries(
            engine, data / file, level=level, commit=True, user="bench", synthetic=True
        )
        if not report.ok:
            sys.exit(f"{file}: {report.problems[:3]}")
        res[level] = {"rows": report.features, "s": round(time.perf_counter() - t, 1)}
        print(f"{level:<13} {report.features:>9,} rows in {res[level]['s']:6.1f} s", flush=True)
    t = time.perf_counter()
    units = pd.read_csv(data / "households.csv", dtype={"community": str})
    t_read = time.perf_counter() - t
    with session_scope(engine) as s:
        n = load_household_units(s, units, source="households.csv", user="bench")
    res["household_unit"] = {
        "rows": n,
        "households": int(units["households"].sum()),
        "read_s": round(t_read, 1),
        "s": round(time.perf_counter() - t - t_read, 1),
    }
    print(
        f"household_unit {n:>8,} rows in {res['household_unit']['s']:6.1f} s "
        f"({n / res['household_unit']['s']:,.0f} rows/s; CSV read {t_read:.1f} s)",
        flush=True,
    )
    del units
    t = time.perf_counter()
    roads = gpd.read_file(data / "roads.geojson", engine="pyogrio")
    t_read = time.perf_counter() - t
    with session_scope(engine) as s:
        n = load_road_edges(s, roads, source="roads.geojson", user="bench")
    res["road_edge"] = {
        "rows": n,
        "read_s": round(t_read, 1),
        "s": round(time.perf_counter() - t - t_read, 1),
    }
    print(
        f"road_edge     {n:>9,} rows in {res['road_edge']['s']:6.1f} s "
        f"({n / res['road_edge']['s']:,.0f} rows/s; GeoJSON read {t_read:.1f} s)",
        flush=True,
    )
    del roads
    res["vacuum_analyze_s"] = _vacuum(url)
    res["sizes"] = _sizes(url)
    print(f"VACUUM ANALYZE {res['vacuum_analyze_s']} s; sizes {res['sizes']}", flush=True)
    return res


# -- grid ------------------------------------------------------------------------------------
def phase_grid(args: argparse.Namespace, url: str) -> dict[str, Any]:
    from gridmap.batch import connect, dask_map
    from gridmap.store.db import session_scope
    from gridmap.store.grids import run_gridding, select_communities
    from gridmap.store.history import publish_draft

    engine = _engine(url)
    marks: dict[str, float] = {}
    done = [0]

    def progress(_code: str) -> None:
        done[0] += 1
        if done[0] == 1:
            marks["first"] = time.perf_counter()
        marks["last"] = time.perf_counter()
        if done[0] % 500 == 0:
            print(f"  {done[0]} communities gridded, {time.perf_counter() - t0:.0f} s", flush=True)

    with connect(workers=args.workers) as client:
        client.submit(sum, [1, 2]).result()
        base = dask_map(client)

        def map_jobs(fn: Any, jobs: Any) -> Any:
            marks["jobs_ready"] = time.perf_counter()
            return base(fn, jobs)

        t0 = time.perf_counter()
        with session_scope(engine) as s:
            chosen = select_communities(s)
            result = run_gridding(
                s,
                chosen,
                user="bench",
                households_per_grid=args.households_per_grid,
                progress=progress,
                map_jobs=map_jobs,
            )
            marks["written"] = time.perf_counter()
        marks["committed"] = time.perf_counter()
        worker_rss = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    t = time.perf_counter()
    with session_scope(engine) as s:
        publish_draft(s, result.version_id, user="bench", scope=None)
    t_pub = time.perf_counter() - t
    t_vac = _vacuum(url, "grid")
    wall = marks["committed"] - t0
    q = result.quality
    res = {
        "communities": result.communities,
        "grids": result.grids,
        "households_per_grid": args.households_per_grid,
        "workers": args.workers,
        "read_inputs_s": round(marks["jobs_ready"] - t0, 1),
        "gridding_s": round(marks["last"] - marks["jobs_ready"], 1),
        "write_draft_s": round(marks["committed"] - marks["last"], 1),
        "wall_s": round(wall, 1),
        "grids_per_s": round(result.grids / wall, 1),
        "publish_s": round(t_pub, 1),
        "vacuum_analyze_s": t_vac,
        "quality": {k: v for k, v in q.items() if k != "per_community"},
        "peak_rss_mb": {
            "main": _rss_mb(),
            "workers": sorted(round(v / 1024) for v in worker_rss.values()),
        },
        "sizes": _sizes(url),
    }
    print(
        f"gridded {result.communities} communities into {result.grids} grids in {wall:.0f} s "
        f"on {args.workers} workers ({res['grids_per_s']} grids/s): read inputs "
        f"{res['read_inputs_s']} s, gridding {res['gridding_s']} s, write draft "
        f"{res['write_draft_s']} s; published in {t_pub:.1f} s; peak memory main "
        f"{res['peak_rss_mb']['main']} MB, workers {res['peak_rss_mb']['workers']} MB",
        flush=True,
    )
    return res


# -- incidents -------------------------------------------------------------------------------
def phase_incidents(args: argparse.Namespace, url: str) -> dict[str, Any]:
    import pandas as pd

    from gridmap.scenario_province import incident_histories
    from gridmap.store.bulk import load_incidents
    from gridmap.store.db import session_scope

    engine = _engine(url)
    t = time.perf_counter()
    inc = pd.read_csv(args.data / "incidents.csv")
    inc, events = incident_histories(inc, seed=1)
    t_prep = time.perf_counter() - t
    t = time.perf_counter()
    with session_scope(engine) as s:
        counts = load_incidents(s, inc, events, source="incidents.csv", user="bench")
    t_load = time.perf_counter() - t
    t_vac = _vacuum(url, "incident", "incident_event")
    res = {
        **counts,
        "prepare_s": round(t_prep, 1),
        "load_s": round(t_load, 1),
        "vacuum_analyze_s": t_vac,
        "peak_rss_mb": _rss_mb(),
        "sizes": _sizes(url),
    }
    print(
        f"incidents: {counts['incidents']:,} ({counts['located']:,} in a grid) and "
        f"{counts['events']:,} events located and COPYed in {t_load:.1f} s "
        f"(histories made in {t_prep:.1f} s); peak memory {res['peak_rss_mb']} MB",
        flush=True,
    )
    return res


# -- serve -----------------------------------------------------------------------------------
class RssWatch(threading.Thread):
    """Peak resident memory of a process and its children (sampled every 0.2 s)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak_mb, self.stop = pid, 0.0, threading.Event()

    def now_mb(self) -> float:
        total = 0
        pids = [self.pid]
        try:
            kids = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
            pids += [int(k) for k in kids]
        except OSError:
            pass
        for p in pids:
            try:
                for line in Path(f"/proc/{p}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.peak_mb = max(self.peak_mb, self.now_mb())


def _pct(ms: list[float]) -> dict[str, float]:
    import numpy as np

    if not ms:
        return {"n": 0}
    a = np.asarray(ms)
    return {
        "n": len(ms),
        "p50": round(float(np.percentile(a, 50)), 1),
        "p95": round(float(np.percentile(a, 95)), 1),
        "p99": round(float(np.percentile(a, 99)), 1),
        "max": round(float(a.max()), 1),
    }


def _tile_sets(url: str, n: int, seed: int = 7) -> dict[int, list[tuple[int, int]]]:
    """Per zoom, the tiles people look at: every tile over the province at z ≤ 10, else ``n``
    distinct tiles drawn at household units weighted by households (where the grids are)."""
    import numpy as np
    from sqlalchemy import text

    from gridmap.store.mapdata import tiles_covering

    with _engine(url).connect() as c:
        box = c.execute(
            text(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT "
                "ST_Extent(geom) AS e FROM grid WHERE valid_from IS NOT NULL "
                "AND valid_to IS NULL) x"
            )
        ).one()
        pts = np.array(
            c.execute(
                text(
                    "SELECT ST_X(geom), ST_Y(geom), households FROM household_unit "
                    "TABLESAMPLE SYSTEM (5) REPEATABLE (7)"
                )
            ).all(),
            dtype=float,
        )
    rng = np.random.default_rng(seed)
    out: dict[int, list[tuple[int, int]]] = {}
    for z in ZOOMS:
        cover = tiles_covering(tuple(box), z)
        if z <= 10:
            out[z] = cover
            continue
        pick = rng.choice(len(pts), size=20 * n, p=pts[:, 2] / pts[:, 2].sum())
        seen: dict[tuple[int, int], None] = {}
        for lon, lat in pts[pick, :2]:
            seen.setdefault(tiles_covering((lon, lat, lon, lat), z)[0], None)
            if len(seen) >= n:
                break
        out[z] = list(seen)
    return out


def phase_serve(args: argparse.Namespace, url: str) -> dict[str, Any]:
    import numpy as np
    from sqlalchemy.orm import Session

    from gridmap.security import TokenClaims, issue_token
    from gridmap.staffing_model import Quotas
    from gridmap.store.db import session_scope
    from gridmap.store.mapdata import render_tile
    from gridmap.store.users import add_user, get_user

    engine = _engine(url)
    secret = secrets.token_hex(32)
    city = args.city
    with session_scope(engine) as s:
        for name, role, area in (("bench_admin", "admin", None), ("bench_leader", "leader", city)):
            if get_user(s, name) is None:
                add_user(s, name, role, area, None, actor="bench")
    tokens = {
        who: issue_token(TokenClaims(f"bench_{who}", role, area, 0), secret, "gridmap", 600)
        for who, role, area in (("admin", "admin", None), ("leader", "leader", city))
    }
    sets = _tile_sets(url, args.tiles)
    res: dict[str, Any] = {"load_before": _load(), "city": city}
    # the server's locate index, built here the same way (time and resident memory it adds)
    from gridmap.store.locating import _build_current

    rss0 = RssWatch(os.getpid()).now_mb()
    t = time.perf_counter()
    with Session(engine) as s:
        current = _build_current(s)
    res["locate_index"] = {
        "grids": len(current.grids.codes),
        "build_s": round(time.perf_counter() - t, 1),
        "raster_mb": round(current.grids.nbytes / 1e6),
        "rss_added_mb": round(RssWatch(os.getpid()).now_mb() - rss0),
    }
    del current
    print(f"locate index of the current grids: {res['locate_index']}", flush=True)
    # the same tiles straight through SQL: no cache, no HTTP (what a cache miss costs)
    sql: dict[str, Any] = {}
    with Session(engine) as s:
        for z in ZOOMS:
            for layer in ("grids", "areas"):
                ms, sizes = [], []
                for x, y in sets[z]:
                    t = time.perf_counter()
                    data = render_tile(s, layer, z, x, y, None, Quotas())
                    ms.append((time.perf_counter() - t) * 1000)
                    sizes.append(len(data))
                sql[f"z{z}_{layer}"] = {
                    **_pct(ms),
                    "kb_mean": round(float(np.mean(sizes)) / 1024, 1),
                    "kb_max": round(max(sizes) / 1024, 1),
                    "empty": int(sum(1 for b in sizes if not b)),
                }
                print(f"SQL  z{z:<2} {layer:<5} {sql[f'z{z}_{layer}']}", flush=True)
            s.rollback()
    res["tiles_sql"] = sql
    env = {
        **os.environ,
        "GRIDMAP_DATABASE_URL": url,
        "GRIDMAP_SECRET_KEY": secret,
        "GRIDMAP_DATA_DIR": tempfile.mkdtemp(prefix="gridmap-province-"),
    }
    log = ROOT / "benchmarks" / "logs" / "serve_province.txt"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "gridmap.cli", "serve", "--port", str(args.port)]
    with log.open("w") as fh:
        proc = subprocess.Popen([*cmd, "--no-access-log"], env=env, stdout=fh, stderr=fh)
    watch = RssWatch(proc.pid)
    watch.start()
    started = time.perf_counter()
    base = f"http://127.0.0.1:{args.port}"
    try:
        try:
            wait_until_serving(proc, base, log, attempts=240)
        except RuntimeError as exc:
            sys.exit(str(exc))
        res["server_up_s"] = round(time.perf_counter() - started, 1)
        time.sleep(2)  # let the start-up page build begin
        res["server_rss_idle_mb"] = round(watch.now_mb())
        res.update(_serve_requests(base, tokens, sets, url, watch))
        res["locate"]["answered_after_start_s"] = round(
            res["locate"].pop("_answered_at") - started, 1
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        watch.stop.set()
    res["server_peak_rss_mb"] = round(watch.peak_mb)
    res["load_after"] = _load()
    print(f"server peak resident memory {res['server_peak_rss_mb']} MB", flush=True)
    return res


def _serve_requests(
    base: str, tokens: dict[str, str], sets: dict[int, list[tuple[int, int]]], url: str, watch: Any
) -> dict[str, Any]:
    import httpx
    import numpy as np
    from sqlalchemy import text

    res: dict[str, Any] = {}
    admin = httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {tokens['admin']}"}, timeout=600
    )
    leader = httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {tokens['leader']}"}, timeout=600
    )
    # locate: the first request builds the index of the current grids in the server
    with _engine(url).connect() as c:
        pts = np.array(
            c.execute(
                text("SELECT ST_X(geom), ST_Y(geom) FROM incident ORDER BY random() LIMIT 501")
            ).all(),
            dtype=float,
        )
    before = watch.now_mb()
    t = time.perf_counter()
    r = admin.get("/api/v1/locate", params={"lon": pts[0, 0], "lat": pts[0, 1]})
    first = time.perf_counter() - t
    answered_at = time.perf_counter()
    ms, codes = [], []
    for lon, lat in pts[1:]:
        t = time.perf_counter()
        rr = admin.get("/api/v1/locate", params={"lon": lon, "lat": lat})
        ms.append((time.perf_counter() - t) * 1000)
        codes.append(rr.status_code)
    res["locate"] = {
        "_answered_at": answered_at,
        "first_request_s": round(first, 2),
        "first_status": r.status_code,
        "grid": r.json().get("grid") if r.status_code == 200 else r.text[:200],
        "rss_growth_mb": round(watch.now_mb() - before),
        "sequential_ms": _pct(ms),
        "status_counts": {str(k): codes.count(k) for k in sorted(set(codes))},
    }
    print(f"HTTP locate {res['locate']}", flush=True)
    # tiles, highest zoom first (the server warms z10–12 of a scope in the background)
    http: dict[str, Any] = {}
    for z in sorted(ZOOMS, reverse=True):
        for layer in ("grids", "areas"):
            row: dict[str, Any] = {}
            for rnd in ("cold", "cached"):
                ms, sizes, bad = [], [], 0
                for x, y in sets[z]:
                    t = time.perf_counter()
                    rr = admin.get(f"/tiles/{layer}/{z}/{x}/{y}.pbf")
                    ms.append((time.perf_counter() - t) * 1000)
                    sizes.append(len(rr.content))
                    bad += rr.status_code != 200
                row[rnd] = {**_pct(ms), "errors": bad}
            row["kb_mean"] = round(float(np.mean(sizes)) / 1024, 1)
            row["kb_max"] = round(max(sizes) / 1024, 1)
            http[f"z{z}_{layer}"] = row
            print(f"HTTP z{z:<2} {layer:<5} {row}", flush=True)
    res["tiles_http"] = http
    # pages: the whole province (admin) and one city (a leader scoped to it)
    pages: dict[str, Any] = {}
    for who, client, path in (
        ("province", admin, "/maps/coverage"),
        ("province", admin, "/dashboard?level=district"),
        ("city", leader, "/maps/coverage"),
        ("city", leader, "/dashboard?level=community"),
        ("city", leader, "/dashboard?level=street&format=xlsx"),
        ("city", leader, "/maps/incidents"),
        ("province", admin, "/maps/incidents"),
    ):
        row = {}
        for rnd in ("first", "second"):
            t = time.perf_counter()
            try:
                rr = client.get(path)
                row[rnd] = {"status": rr.status_code, "kb": round(len(rr.content) / 1024, 1)}
            except httpx.HTTPError as exc:
                row[rnd] = {"status": type(exc).__name__}
            row[rnd]["s"] = round(time.perf_counter() - t, 2)
        pages[f"{who} {path}"] = row
        print(f"page {who:<8} {path:<40} {row}", flush=True)
    res["pages"] = pages
    return res


# -- driver ----------------------------------------------------------------------------------
RUN = {
    "load": phase_load,
    "grid": phase_grid,
    "incidents": phase_incidents,
    "serve": phase_serve,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / ".gridmap" / "province")
    ap.add_argument("--db", default="gridmap_province", help="database name on $GM_BASE, or URL")
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--households-per-grid", type=float, default=100.0)
    ap.add_argument("--tiles", type=int, default=120, help="tiles per zoom above z10")
    ap.add_argument("--city", default="4201", help="the city of the city-scoped pages")
    ap.add_argument("--port", type=int, default=8790)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "province_db.json")
    ap.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    url = _url(args.db)
    phases = [p for p in args.phases.split(",") if p]
    unknown = set(phases) - set(PHASES)
    if unknown:
        sys.exit(f"unknown phases {sorted(unknown)}; known: {PHASES}")
    if args.in_process:  # one phase, in this process (so its peak memory is its own)
        (phase,) = phases
        t, load0 = time.perf_counter(), _load()
        res = RUN[phase](args, url)
        res.update(
            wall_s=round(time.perf_counter() - t, 1),
            load_before=load0,
            load_after=_load(),
            peak_rss_mb_process=_rss_mb(),
            at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        out = json.loads(args.json.read_text()) if args.json.exists() else {}
        if phase == "load":
            out = {}  # a new database: the old figures no longer describe it
        out[phase] = res
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1, ensure_ascii=False))
        print(
            f"== {phase}: {res['wall_s']} s, load {load0} → {res['load_after']}, peak memory "
            f"{res['peak_rss_mb_process']} MB",
            flush=True,
        )
        return 0
    if not (args.data / "communities.geojson").exists() and "load" in phases:
        sys.exit(f"no province in {args.data}: scripts/make_scenario.py --province 36 first")
    rest = [a for a in (argv if argv is not None else sys.argv[1:])]
    for phase in phases:
        cmd = [sys.executable, __file__, *rest, "--phases", phase, "--in-process"]
        code = subprocess.run(cmd, check=False).returncode
        if code:
            print(f"phase {phase} failed (exit {code})", flush=True)
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
