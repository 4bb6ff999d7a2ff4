"""One community's gridding as a self-contained job: inputs in, WGS84 grids and figures out.

Why a job object: the same pure step runs in the database loop of
:func:`gridmap.store.grids.run_gridding` and on Dask workers (:mod:`gridmap.batch`), so a
distributed re-gridding is identical to the single-process one by construction. A job carries
everything the step needs (metric community, unit arrays, metric roads, the CRS) and pickles
cheaply (shapely geometries and numpy arrays).

Examples
--------
>>> import numpy as np, shapely
>>> rng = np.random.default_rng(0)
>>> units = {"x": rng.uniform(0, 1000, 200), "y": rng.uniform(0, 600, 200),
...          "households": np.full(200, 10.0), "residents": np.full(200, 25.0)}
>>> job = GridJob("420502001001", shapely.box(-10, -10, 1010, 610), units, None, "EPSG:4546")
>>> out = run_job(job, households_per_grid=1000)
>>> out.seq.tolist(), int(out.households.sum())
([1, 2], 2000)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely

from gridmap.crs import transform_geometry
from gridmap.gridding import grid_community, grid_quality

__all__ = ["GridJob", "GridOutcome", "make_job", "run_job"]


@dataclass(frozen=True)
class GridJob:
    """Inputs for one community, all in the metric CRS ``crs``."""

    code: str
    community_m: Any
    units: dict[str, np.ndarray]
    roads_m: np.ndarray | None
    crs: str

    @property
    def size(self) -> int:
        """Household units: a rough cost estimate, to start the big jobs first."""
        return len(self.units["households"])


@dataclass(frozen=True)
class GridOutcome:
    """Grids of one community: sequence numbers, counts, WGS84 geometries, quality figures."""

    code: str
    seq: np.ndarray
    households: np.ndarray
    residents: np.ndarray
    geoms: np.ndarray
    quality: dict[str, Any] = field(default_factory=dict)


def make_job(
    code: str,
    community: Any,
    lon: np.ndarray,
    lat: np.ndarray,
    households: np.ndarray,
    residents: np.ndarray,
    roads: np.ndarray | None,
    crs: str,
) -> GridJob:
    """A job from WGS84 inputs (community, unit points, road lines), projected to ``crs``."""
    n = len(lon)
    pts = transform_geometry(shapely.points(lon, lat), "wgs84", crs) if n else []
    units = {
        "x": shapely.get_x(pts) if n else np.asarray(lon, dtype=float),
        "y": shapely.get_y(pts) if n else np.asarray(lat, dtype=float),
        "households": np.asarray(households, dtype=float),
        "residents": np.asarray(residents, dtype=float),
    }
    road_m = transform_geometry(roads, "wgs84", crs) if roads is not None and len(roads) else None
    return GridJob(code, transform_geometry(community, "wgs84", crs), units, road_m, crs)


def run_job(
    job: GridJob,
    *,
    households_per_grid: float | None = None,
    n_grids: int | None = None,
    prefer: str | None = None,
) -> GridOutcome:
    """Grid one community and measure the result (pure; safe on any worker)."""
    grids = grid_community(
        job.community_m,
        job.units,
        households_per_grid=households_per_grid,
        n_grids=n_grids,
        roads=job.roads_m,
        crs=job.crs,
        prefer=prefer,
    )
    q = grid_quality(job.community_m, grids, job.units, job.roads_m)
    wgs = transform_geometry(np.asarray(grids.geometry.values), job.crs, "wgs84")
    return GridOutcome(
        code=job.code,
        seq=grids["seq"].to_numpy(dtype=np.int64),
        households=grids["households"].to_numpy(dtype=float),
        residents=grids["residents"].to_numpy(dtype=float),
        geoms=np.asarray(wgs, dtype=object),
        quality={k: v for k, v in q.items() if isinstance(v, (int, float)) or v is None},
    )
