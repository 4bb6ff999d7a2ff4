"""Province-scale batch work on Dask distributed: re-gridding, bulk locate, staffing by district.

Why Dask: each of these splits into independent pieces (a community, a slice of points, a
district) that take seconds to minutes each, so a cluster of worker processes scales them
without changing their answers. Every function here takes ``client``: ``None`` runs the very
same per-piece function in this process one piece after another (the reference path), a
:class:`distributed.Client` runs the pieces on its workers — a :class:`~distributed.LocalCluster`
from :func:`connect` with ``workers=N`` or a real cluster given its scheduler address. Results
are gathered in input order, so both paths return identical values.

No SQL here: :mod:`gridmap.store` reads the inputs and writes the results
(``gridmap batch grid|locate|assign``). Pieces are sent to workers pickled; a
:class:`~gridmap.locate.GridIndex` is scattered once to every worker, not once per slice.

Examples
--------
>>> import shapely
>>> from gridmap.locate import GridIndex
>>> index = GridIndex.build(["g1"], [shapely.box(111.30, 30.70, 111.31, 30.71)])
>>> idx, status = locate_points(index, [111.305, 111.4], [30.705, 30.705], chunk=1)
>>> idx.tolist(), status.tolist()
([0, -1], [0, 1])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from gridmap.errors import InvalidInput
from gridmap.gridding_jobs import GridJob, GridOutcome, run_job
from gridmap.locate import GridIndex
from gridmap.staffing import Assignment, Quotas, assign_staff

__all__ = [
    "assign_by_district",
    "connect",
    "dask_map",
    "district_parts",
    "grid_jobs",
    "locate_points",
    "merge_assignments",
    "share_index",
]

T = TypeVar("T")
R = TypeVar("R")

DISTRICT_DIGITS = 6  # 420502 西陵区: the first 6 digits of a community or grid code


@contextmanager
def connect(
    scheduler: str | None = None, workers: int | None = None, threads_per_worker: int = 1
) -> Iterator[Any]:
    """A Dask client for the duration of the block, or ``None`` for the in-process path.

    ``scheduler`` (``tcp://host:8786``) joins a running cluster; else ``workers`` ≥ 1 starts a
    :class:`~distributed.LocalCluster` of that many worker processes (one thread each: the
    work is CPU-bound Python/GEOS, processes sidestep the GIL); ``None`` or 0 uses no Dask.
    """
    if scheduler:
        from distributed import Client

        with Client(scheduler) as client:
            yield client
    elif workers:
        from distributed import Client, LocalCluster

        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=threads_per_worker,
                processes=True,
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
    else:
        yield None


def dask_map(client: Any) -> Callable[[Callable[[T], R], Sequence[T]], Iterator[R]]:
    """``map_jobs(fn, items)`` for :func:`gridmap.store.grids.run_gridding`: one task per item,
    the largest first (``item.size`` when it has one), results yielded in input order."""

    def run(fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        if client is None:
            yield from (fn(i) for i in items)
            return
        futures = [
            client.submit(fn, item, pure=False, priority=int(getattr(item, "size", 0)))
            for item in items
        ]
        try:
            for f in futures:
                yield f.result()
        finally:
            client.cancel(futures)

    return run


def grid_jobs(
    jobs: Sequence[GridJob],
    *,
    client: Any = None,
    households_per_grid: float | None = None,
    n_grids: int | None = None,
    prefer: str | None = None,
) -> list[GridOutcome]:
    """Grid many communities (one task each); same outcomes as running them one by one."""
    fn = partial(run_job, households_per_grid=households_per_grid, n_grids=n_grids, prefer=prefer)
    return list(dask_map(client)(fn, jobs))


def _locate_slice(index: GridIndex, lonlat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx, status = index.locate_status(lonlat[0], lonlat[1])  # rows: contiguous, fast
    return idx.astype(np.int32), status


def share_index(client: Any, index: GridIndex) -> Any:
    """Send ``index`` to every worker once; pass the returned future to :func:`locate_points`
    for any number of batches (a province index is hundreds of MB: ship it once, not per
    batch)."""
    return client.scatter(index, broadcast=True, hash=False)  # own key: no release race


def locate_points(
    index: Any,
    lon: Any,
    lat: Any,
    *,
    client: Any = None,
    chunk: int = 1_000_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Grid index (-1: none) and status per WGS84 point, as :meth:`GridIndex.locate_status`.

    The points are cut into slices of ``chunk``; with a client the slices are spread over the
    workers and located where they lie, against ``index`` — a :class:`GridIndex` (sent to
    every worker for this call) or the future from :func:`share_index` (already there).
    """
    lon = np.atleast_1d(np.asarray(lon, dtype="float64"))
    lat = np.atleast_1d(np.asarray(lat, dtype="float64"))
    if lon.shape != lat.shape or lon.ndim != 1:
        raise InvalidInput("lon and lat must be 1-d arrays of equal length", code="shape")
    if chunk < 1:
        raise InvalidInput("chunk must be at least 1", code="invalid-chunk")
    slices = [
        np.vstack([lon[a : a + chunk], lat[a : a + chunk]]) for a in range(0, len(lon), chunk)
    ]
    if client is None:
        parts = [_locate_slice(index, s) for s in slices]
    else:
        shared = share_index(client, index) if isinstance(index, GridIndex) else index
        data = client.scatter(slices, hash=False)
        futures = [client.submit(_locate_slice, shared, d, pure=False) for d in data]
        parts = client.gather(futures)
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int8)
    return (
        np.concatenate([p[0] for p in parts]).astype(np.int64),
        np.concatenate([p[1] for p in parts]),
    )


def district_parts(
    people: pd.DataFrame, grids: pd.DataFrame, digits: int = DISTRICT_DIGITS
) -> list[tuple[str, pd.DataFrame, pd.DataFrame]]:
    """Split staff and grids by district: a grid by its code, a person by the district of the
    grid nearest their home (metric x/y). Districts in code order, rows in input order."""
    if not len(grids):
        raise InvalidInput("no grids to assign to", code="no-grids")
    g_district = grids["code"].astype(str).str[:digits].to_numpy()
    tree = cKDTree(grids[["x", "y"]].to_numpy(float))
    _, nearest = tree.query(people[["x", "y"]].to_numpy(float)) if len(people) else (None, [])
    p_district = g_district[np.asarray(nearest, dtype=np.int64)]
    return [
        (
            str(d),
            people[p_district == d].reset_index(drop=True),
            grids[g_district == d].reset_index(drop=True),
        )
        for d in np.unique(g_district)
    ]


def merge_assignments(parts: Sequence[Assignment]) -> Assignment:
    """One :class:`Assignment` from per-district ones (districts share no person or grid)."""
    frames = {
        name: pd.concat([getattr(a, name) for a in parts], ignore_index=True)
        for name in ("postings", "moves", "unfilled", "idle")
    }
    return Assignment(
        **frames,
        total_cost_m=float(sum(a.total_cost_m for a in parts)),
        min_slots=int(sum(a.min_slots for a in parts)),
        certified=all(a.certified for a in parts),
    )


def _assign_part(
    part: tuple[str, pd.DataFrame, pd.DataFrame], quotas: Quotas, keep_margin_m: float, k: int
) -> Assignment:
    _, people, grids = part
    return assign_staff(people, grids, quotas, keep_margin_m=keep_margin_m, k=k)


def assign_by_district(
    people: pd.DataFrame,
    grids: pd.DataFrame,
    quotas: Quotas | None = None,
    *,
    client: Any = None,
    keep_margin_m: float = 500.0,
    k: int = 30,
) -> Assignment:
    """Optimal staff postings within each district (straight-line metres), one task per
    district; the districts' optimal assignments merged."""
    parts = district_parts(people, grids)
    fn = partial(_assign_part, quotas=quotas or Quotas(), keep_margin_m=keep_margin_m, k=k)
    return merge_assignments(list(dask_map(client)(fn, parts)))
