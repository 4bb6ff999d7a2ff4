"""``gridmap batch``: re-grid, bulk-locate and staff by district on Dask distributed.

Thin commands: the database is read and written through :mod:`gridmap.store`, the work runs in
:mod:`gridmap.batch` on a :class:`~distributed.LocalCluster` (``--workers N``), on a running
cluster (``--scheduler tcp://host:8786``) or in this process (``--workers 0``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from gridmap.cli_common import Prefer
from gridmap.errors import GridmapError, InvalidInput
from gridmap.settings import get_settings

batch_app = typer.Typer(
    help="Batch work on Dask distributed: re-grid, bulk locate, staff per district.",
    no_args_is_help=True,
)

Scheduler = Annotated[
    str | None, typer.Option(help="address of a running Dask scheduler (tcp://host:8786)")
]
Workers = Annotated[
    int | None,
    typer.Option(help="local worker processes (default: one per core; 0 = no Dask, in-process)"),
]


def _workers(scheduler: str | None, workers: int | None) -> int | None:
    import os

    return None if scheduler else (os.cpu_count() or 1) if workers is None else workers


def _where(scheduler: str | None, workers: int | None) -> str:
    if scheduler:
        return f"dask scheduler {scheduler}"
    return f"dask LocalCluster, {workers} workers" if workers else "in-process"


@batch_app.command("grid")
def batch_grid(
    district: Annotated[str | None, typer.Option(help="one district (default: all)")] = None,
    households_per_grid: Annotated[
        float | None, typer.Option(help="target households per grid (default 250)")
    ] = None,
    prefer: Prefer = None,
    scheduler: Scheduler = None,
    workers: Workers = None,
    user: Annotated[str, typer.Option(help="who is gridding (audit)")] = "cli",
) -> None:
    """Re-grid every community (or a district's) into one new draft version, one Dask task per
    community; publish with `gridmap grid publish`."""
    from gridmap.batch import connect, dask_map
    from gridmap.cli_common import engine_for as _engine
    from gridmap.cli_common import fail as _fail
    from gridmap.gridding_prefs import check_preference
    from gridmap.store.db import session_scope
    from gridmap.store.grids import run_gridding, select_communities

    n = _workers(scheduler, workers)
    try:
        prefer = check_preference(prefer)  # before a cluster starts for nothing
        t0 = time.perf_counter()
        with connect(scheduler, n) as client, session_scope(_engine(get_settings())) as s:
            chosen = select_communities(s, district=district)
            with typer.progressbar(length=len(chosen), label="gridding", file=sys.stderr) as bar:
                result = run_gridding(
                    s,
                    chosen,
                    user=user,
                    households_per_grid=households_per_grid,
                    prefer=prefer,
                    progress=lambda _code: bar.update(1),
                    map_jobs=dask_map(client),
                )
    except GridmapError as exc:
        _fail(exc)
        return
    q = result.quality
    typer.echo(
        f"draft version {result.version_id} (prefer {prefer}): {result.grids} grids in "
        f"{result.communities} communities in {time.perf_counter() - t0:.1f} s "
        f"({_where(scheduler, n)}); CV median {q['cv_median']}, Polsby-Popper mean {q['pp_mean']}"
    )
    typer.echo(f"publish with: gridmap grid publish {result.version_id}")


@batch_app.command("locate")
def batch_locate(
    file: Annotated[Path, typer.Argument(help="CSV (lon,lat[,id]) or GeoJSON points")],
    out: Annotated[Path, typer.Option(help="write id,grid,status CSV here")],
    crs: Annotated[str, typer.Option(help="wgs84 | gcj02 | bd09 | EPSG:n")] = "wgs84",
    chunk: Annotated[int, typer.Option(help="points per Dask task")] = 1_000_000,
    scheduler: Scheduler = None,
    workers: Workers = None,
) -> None:
    """Locate many points (e.g. a year of incidents) to the current grids, in slices on Dask;
    same answers and statuses as `gridmap locate`."""
    from functools import partial

    from gridmap.batch import connect, locate_points
    from gridmap.cli_common import engine_for as _engine
    from gridmap.cli_common import fail as _fail
    from gridmap.store.db import session_scope
    from gridmap.store.locating import locate_frame, read_points

    n = _workers(scheduler, workers)
    try:
        if not file.exists():
            raise InvalidInput(f"file not found: {file}", code="file-not-found")
        points = read_points(
            file.read_bytes(), "json" if file.suffix in (".json", ".geojson") else "csv"
        )
        t0 = time.perf_counter()
        with connect(scheduler, n) as client, session_scope(_engine(get_settings())) as s:
            result = locate_frame(
                s,
                points,
                crs=crs,
                max_points=len(points),
                locator=partial(locate_points, client=client, chunk=chunk),
            )
    except GridmapError as exc:
        _fail(exc)
        return
    result.to_csv(out, index=False)
    counts = result["status"].value_counts().to_dict()
    typer.echo(
        f"wrote {len(result)} rows to {out} in {time.perf_counter() - t0:.1f} s "
        f"({_where(scheduler, n)}): {counts}"
    )


@batch_app.command("assign")
def batch_assign(
    keep_margin_m: Annotated[
        float, typer.Option(help="move a person only if it saves more metres than this")
    ] = 500.0,
    scheduler: Scheduler = None,
    workers: Workers = None,
    user: Annotated[str, typer.Option(help="who is assigning (audit)")] = "cli",
) -> None:
    """Post staff to grids within each district (a person belongs to the district of the grid
    nearest home), one optimal min-cost flow per district on Dask; straight-line metres.
    Care links are left as they are (`gridmap assign` does both city-wide)."""
    from gridmap.batch import assign_by_district, connect
    from gridmap.cli_common import engine_for as _engine
    from gridmap.cli_common import fail as _fail
    from gridmap.staffing import Quotas
    from gridmap.store.db import session_scope
    from gridmap.store.staff import save_staff_postings, staff_inputs

    settings = get_settings()
    n = _workers(scheduler, workers)
    summary: dict[str, Any]
    try:
        quotas = Quotas.from_config(settings.quotas_config())
        t0 = time.perf_counter()
        with connect(scheduler, n) as client, session_scope(_engine(settings)) as s:
            grids, people, _ = staff_inputs(s)
            staff = people[people["role"] != "care_volunteer"].reset_index(drop=True)
            result = assign_by_district(
                staff, grids, quotas, client=client, keep_margin_m=keep_margin_m
            )
            how = f"per district, {_where(scheduler, n)}"
            summary = save_staff_postings(s, staff, result, user=user, how=how)
        summary["seconds"] = round(time.perf_counter() - t0, 2)
    except GridmapError as exc:
        _fail(exc)
        return
    typer.echo(json.dumps(summary, ensure_ascii=False, indent=1))
