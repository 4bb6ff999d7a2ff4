"""Split one community polygon into grids (网格) of about equal households.

The grids partition the community exactly: they are unions of atoms, the blocks of the community
cut by its roads (:mod:`gridmap.gridding_blocks`), some of them cut further by straight lines
between household units (:mod:`gridmap.gridding_atoms`). Recursive bisection
(:mod:`gridmap.gridding_bisect`) picks each cut among sweeps in 24 directions turned to the
street grid that stop on a road or cut one block, and straight cuts across several blocks
(:mod:`gridmap.gridding_lines`), scoring predicted compactness against length off the roads and
household imbalance (:mod:`gridmap.gridding_score`). Detached pieces go to the neighbour sharing
the longest edge and badly scored neighbour pairs are re-cut (:mod:`gridmap.gridding_repair`).
Last, single atoms move between neighbouring grids while that improves compactness, balance and
length on the roads together (:mod:`gridmap.gridding_polish`); then boundary blocks between
neighbouring grids of unequal households are cut between their units so that the part facing
the emptier grid changes hands, when that improves the same objective
(:mod:`gridmap.gridding_balance`), and the atoms are polished again. Last, a grid still 10 % or
more off the mean households is bisected afresh together with all its neighbours, on a copy of
the atoms, and the copy is kept when it scores better (:mod:`gridmap.gridding_regroup`).
With :data:`LLOYD` (off by default: after the balancing cuts it no longer pays for its time), a
copy also goes through capacity-constrained Lloyd steps on the atoms
(:mod:`gridmap.gridding_lloyd`), repair and polishing, and replaces the polished grids only
where it is no worse in balance and compactness and better on the polishing objective.
Building units are indivisible: no unit point lies on a grid edge and no footprint is split.

Work happens in a metric CRS (the caller projects; :func:`grid_community_wgs84` does it for WGS84
input). Multipart communities: grids are shared out to the parts in proportion to households
(largest remainder, at least one per part with households); a part without households becomes a
grid of its own, because joining it to another grid would make that grid non-contiguous.

Examples
--------
>>> import numpy as np
>>> from shapely.geometry import box
>>> rng = np.random.default_rng(0)
>>> units = {"x": rng.uniform(0, 1000, 400), "y": rng.uniform(0, 600, 400),
...          "households": np.full(400, 10), "residents": np.full(400, 25)}
>>> grids = grid_community(box(-10, -10, 1010, 610), units, households_per_grid=1000)
>>> list(grids["seq"]), int(grids["households"].sum())
([1, 2, 3, 4], 4000)
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from gridmap.crs import metric_crs_for_geometry, to_metric, transform_geometry
from gridmap.errors import InvalidInput
from gridmap.gridding_atoms import ANGLE_STEP, Atoms, UnitSet, union_atoms
from gridmap.gridding_balance import balance
from gridmap.gridding_bisect import partition, refine
from gridmap.gridding_blocks import build_atoms
from gridmap.gridding_lloyd import copy_atoms, grid_figures, lloyd
from gridmap.gridding_polish import polish
from gridmap.gridding_prefs import preferring
from gridmap.gridding_quality import grid_quality, polsby_popper
from gridmap.gridding_regroup import regroup
from gridmap.gridding_repair import components, fix_contiguity, merge_slivers

__all__ = [
    "DEFAULT_HOUSEHOLDS_PER_GRID",
    "SLIVER_SHARE",
    "grid_community",
    "grid_community_wgs84",
    "grid_quality",
    "polsby_popper",
]

DEFAULT_HOUSEHOLDS_PER_GRID = 250  # ≈ 280,000 households / 1,110 grids in Yichang's city
SLIVER_SHARE = 0.10  # a grid under this share of the target households is a sliver
POLISH = True  # move single atoms between neighbouring grids after the repairs
REFINE_PASSES = 2  # passes re-cutting neighbouring pairs after the recursive bisection
BALANCE = True  # cut boundary blocks between neighbouring grids to even out households
LLOYD = False  # also try capacity-constrained Lloyd steps on the atoms; keep the better grids
REGROUP = True  # bisect a badly unbalanced grid and its neighbours afresh; keep if better


def _units(units: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Points, households, residents and footprints from a GeoDataFrame or a mapping."""
    if isinstance(units, gpd.GeoDataFrame):
        geom = np.asarray(units.geometry.values, dtype=object)
        is_poly = np.isin(shapely.get_type_id(geom), [3, 6])
        pts = np.where(is_poly, shapely.point_on_surface(geom), geom)
        xy = shapely.get_coordinates(pts).reshape(-1, 2)
        foot = (
            np.array([g if f else None for g, f in zip(geom, is_poly, strict=True)], dtype=object)
            if is_poly.any()
            else None
        )
        hh = units["households"].to_numpy(dtype=float)
        res = (
            units["residents"].to_numpy(dtype=float)
            if "residents" in units
            else np.zeros(len(units))
        )
    elif isinstance(units, Mapping):
        xy = np.column_stack([np.asarray(units["x"], float), np.asarray(units["y"], float)])
        hh = np.asarray(units["households"], dtype=float)
        res = np.asarray(units.get("residents", np.zeros(len(hh))), dtype=float)
        foot = units.get("footprints")
        foot = None if foot is None else np.asarray(foot, dtype=object)
    else:
        raise InvalidInput(
            "units must be a GeoDataFrame or a mapping of arrays", code="invalid-units"
        )
    if xy.shape[0] != len(hh) or len(res) != len(hh):
        raise InvalidInput("units: coordinates and counts differ in length", code="invalid-units")
    if len(hh) and (not np.all(np.isfinite(xy)) or np.any(hh < 0) or np.any(~np.isfinite(hh))):
        raise InvalidInput(
            "units: coordinates must be finite and households ≥ 0", code="invalid-units"
        )
    return xy, hh, res, foot


def _directions(roads: np.ndarray | None, community: BaseGeometry) -> np.ndarray:
    """Cut directions every ``ANGLE_STEP`` degrees, turned to the main street orientation.

    The orientation is the length-weighted mean of the road segments' angles modulo 90°, so a
    street grid at any angle gets cuts exactly along and across its streets.
    """
    theta = 0.0
    if roads is not None and len(roads):
        rb = shapely.bounds(roads)
        minx, miny, maxx, maxy = community.bounds
        near = roads[
            (rb[:, 0] <= maxx) & (rb[:, 2] >= minx) & (rb[:, 1] <= maxy) & (rb[:, 3] >= miny)
        ]
        coords, idx = shapely.get_coordinates(near, return_index=True)
        if len(coords) > 1:
            same = idx[1:] == idx[:-1]
            v = (coords[1:] - coords[:-1])[same]
            w = np.hypot(v[:, 0], v[:, 1])
            z = np.sum(w * np.exp(4j * np.arctan2(v[:, 1], v[:, 0])))
            if abs(z) > 1e-9 * max(w.sum(), 1e-9):
                theta = float(np.angle(z)) / 4.0
    ang = theta + np.deg2rad(np.arange(0.0, 360.0, ANGLE_STEP))
    return np.column_stack([np.cos(ang), np.sin(ang)])


def _unit_set(
    xy: np.ndarray,
    hh: np.ndarray,
    res: np.ndarray,
    foot: np.ndarray | None,
    origin: np.ndarray,
    dirs: np.ndarray,
) -> UnitSet:
    """Extents of every unit (point or footprint) along every cut direction."""
    local = xy - origin
    lo = local @ dirs.T
    hi = lo.copy()
    if foot is not None:
        has = np.flatnonzero([f is not None for f in foot])
        if len(has):
            coords, owner = shapely.get_coordinates(foot[has], return_index=True)
            proj = (coords - origin) @ dirs.T
            fmin = np.full((len(has), len(dirs)), np.inf)
            fmax = np.full((len(has), len(dirs)), -np.inf)
            np.minimum.at(fmin, owner, proj)
            np.maximum.at(fmax, owner, proj)
            lo[has] = np.minimum(lo[has], fmin)
            hi[has] = np.maximum(hi[has], fmax)
    return UnitSet(xy=xy, hh=hh, res=res, lo=lo, hi=hi, footprints=foot, dirs=dirs)


def _roads(roads: Any) -> np.ndarray | None:
    if roads is None:
        return None
    if isinstance(roads, BaseGeometry):
        roads = [roads]
    arr = np.asarray(getattr(roads, "values", roads), dtype=object)
    if len(arr) == 0:
        return None
    poly = np.isin(shapely.get_type_id(arr), [3, 6])
    arr = np.where(poly, shapely.boundary(arr), arr)  # a river given as a polygon: its banks
    return shapely.get_parts(arr)


def _allocate(n: int, hh: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Grids per part: one per empty part, the rest by largest remainder, ≥ 1 per full part.

    With no households anywhere, parts share the grids by area.
    """
    full = hh > 0
    weight = hh
    if not full.any():
        full, weight = np.ones(len(hh), dtype=bool), area
    alloc = np.ones(len(hh), dtype=int)  # one grid per part to start, empty or not
    left = n - len(hh)
    if left < 0:
        raise InvalidInput(f"{n} grids cannot cover {len(hh)} separate parts", code="too-few-grids")
    if left:
        quota = weight[full] / weight[full].sum() * (n - int((~full).sum()))
        extra = np.minimum(np.maximum(np.floor(quota) - 1, 0).astype(int), left)
        while extra.sum() > left:
            extra[np.argmax(extra)] -= 1
        rem = quota - 1 - extra
        for i in np.argsort(-rem, kind="stable")[: left - int(extra.sum())]:
            extra[i] += 1
        alloc[np.flatnonzero(full)] += extra
    return alloc


@lru_cache(maxsize=16)
def _parsed_crs(crs: str | int) -> CRS:
    """``crs`` parsed once (a GeoDataFrame would parse a name or code on every call)."""
    return CRS.from_user_input(crs)


def _reading_order(geoms: list, scale: float) -> np.ndarray:
    """Rows of height ``scale`` from north to south, west to east within a row."""
    pts = shapely.get_coordinates(shapely.point_on_surface(np.asarray(geoms, dtype=object)))
    top = pts[:, 1].max()
    row = np.floor((top - pts[:, 1]) / max(scale, 1e-9))
    return np.lexsort((-pts[:, 1], pts[:, 0], row))


def _improve(
    at: Atoms, leaves: list[np.ndarray], uset: UnitSet, small: float
) -> tuple[Atoms, list[np.ndarray]]:
    """Polish ``leaves``; with :data:`LLOYD`, also Lloyd-step, repair and polish a copy, and
    keep it where it is no worse in balance and compactness and scores better overall."""
    best = polish(at, leaves, small)
    if BALANCE:
        cut = balance(at, best, uset, small)
        if any(len(a) != len(b) or (a != b).any() for a, b in zip(cut, best, strict=True)):
            best = polish(at, cut, small)  # unchanged grids are already polished
    if REGROUP:
        at, best = regroup(at, best, uset, small)
    if not LLOYD:
        return at, best
    work = copy_atoms(at)
    cand = fix_contiguity(work, lloyd(work, [lv.copy() for lv in leaves], uset))
    if any(len(lv) == 0 or float(work.hh[lv].sum()) < small for lv in cand) or any(
        len(components(work, lv)) > 1 for lv in cand
    ):
        return at, best
    cand = polish(work, cand, small)
    old, new = grid_figures(at, best), grid_figures(work, cand)
    if new[0] > old[0] and new[1] <= old[1] + 1e-9 and new[2] >= old[2] - 1e-9:
        return work, cand
    return at, best


def grid_community(
    community: BaseGeometry,
    units: Any,
    *,
    households_per_grid: float | None = None,
    n_grids: int | None = None,
    roads: Any = None,
    crs: Any = None,
    prefer: str | None = None,
) -> gpd.GeoDataFrame:
    """Partition a community (metric CRS) into household-balanced, compact grids.

    Parameters
    ----------
    community : Polygon or MultiPolygon in a metric CRS (metres).
    units : GeoDataFrame with ``households`` (and ``residents``) and point geometry, or footprint
        polygons; or a mapping with arrays ``x``, ``y``, ``households``, optional ``residents``
        and ``footprints``. Units outside the community count for the nearest block.
    households_per_grid : target K; the grid count is ``max(1, round(total / K))`` (default
        :data:`DEFAULT_HOUSEHOLDS_PER_GRID`). Grids under 10 % of K are merged into a neighbour.
    n_grids : exact number of grids instead of K.
    roads : road and river lines near the community (metric); grid edges prefer them.
    crs : CRS of the result; defaults to the units' CRS when they are a GeoDataFrame.
    prefer : what gives way where the targets conflict (:mod:`gridmap.gridding_prefs`):
        ``balance`` (default), ``streets`` (edges on the roads first) or ``compact`` (roads
        ignored).

    Returns
    -------
    GeoDataFrame with ``seq`` (1..n, rows north to south, west to east), ``households``,
    ``residents``, ``n_units`` and one Polygon per grid; ``attrs["unit_seq"]`` gives each
    unit's grid ``seq``.
    """
    with preferring(prefer) as chosen:
        return _grid_community(
            community,
            units,
            households_per_grid=households_per_grid,
            n_grids=n_grids,
            roads=roads if chosen.use_roads else None,
            crs=crs,
        )


def _grid_community(
    community: BaseGeometry,
    units: Any,
    *,
    households_per_grid: float | None,
    n_grids: int | None,
    roads: Any,
    crs: Any,
) -> gpd.GeoDataFrame:
    """:func:`grid_community` with the preference's prices in force."""
    if households_per_grid is not None and n_grids is not None:
        raise InvalidInput("give households_per_grid or n_grids, not both", code="invalid-target")
    if n_grids is not None and int(n_grids) < 1:
        raise InvalidInput("n_grids must be ≥ 1", code="invalid-target")
    k_target = (
        None if n_grids is not None else float(households_per_grid or DEFAULT_HOUSEHOLDS_PER_GRID)
    )
    if k_target is not None and not 1 <= k_target < float("inf"):  # 5e-324 overflowed n
        raise InvalidInput("households_per_grid must be at least 1", code="invalid-target")
    community = shapely.make_valid(community) if not community.is_valid else community
    parts = [p for p in shapely.get_parts(community) if p.geom_type == "Polygon" and p.area > 0]
    if not parts:
        raise InvalidInput("community has no area", code="empty-community")
    xy, hh, res, foot = _units(units)
    if crs is None and isinstance(units, gpd.GeoDataFrame):
        crs = units.crs
    origin = np.array(community.centroid.coords[0])
    road_arr = _roads(roads)
    uset = _unit_set(xy, hh, res, foot, origin, _directions(road_arr, community))
    parr = np.asarray(parts, dtype=object)
    owner = np.zeros(len(hh), dtype=int)
    if len(parts) > 1 and len(hh):
        owner = shapely.STRtree(parr).query_nearest(shapely.points(xy), all_matches=False)[1]
    part_hh = np.bincount(owner, hh, len(parts))
    total = float(hh.sum())
    if k_target is None:
        n = int(n_grids or 1)
    else:  # every part with households needs a grid, every empty part one
        n = max(1, round(total / k_target))
        full = int((part_hh > 0).sum())
        n = max(n, full) + len(parts) - full if full else len(parts)
    alloc = _allocate(n, part_hh, shapely.area(parr))
    geoms, members = [], []
    for p, part in enumerate(parts):
        idx = np.flatnonzero(owner == p)
        at = build_atoms(part, road_arr, uset, idx, origin)
        leaves = partition(at, int(alloc[p]), uset) if alloc[p] > 1 else [np.flatnonzero(at.alive)]
        leaves = fix_contiguity(at, leaves)
        if len(leaves) > 1 and REFINE_PASSES:
            leaves = refine(at, leaves, uset, REFINE_PASSES)
        if k_target is not None and total >= SLIVER_SHARE * k_target:
            leaves = merge_slivers(at, leaves, SLIVER_SHARE * k_target)
        if POLISH and len(leaves) > 1:
            small = SLIVER_SHARE * k_target if k_target is not None else 0.0
            at, leaves = _improve(at, leaves, uset, small if total >= small else 0.0)
        for lv in leaves:
            geom = union_atoms([at.geoms[a] for a in lv])
            geoms.append(geom)
            members.append(
                np.sort(np.concatenate([at.units[a] for a in lv])) if len(lv) else np.empty(0, int)
            )
    order = _reading_order(geoms, np.sqrt(community.area / len(geoms)))
    unit_seq = np.zeros(len(hh), dtype=int)
    cols: dict[str, list[int]] = {"seq": [], "households": [], "residents": [], "n_units": []}
    for seq, g in enumerate(order, start=1):
        m = members[g]
        unit_seq[m] = seq
        cols["seq"].append(seq)
        cols["households"].append(round(float(hh[m].sum())))
        cols["residents"].append(round(float(res[m].sum())))
        cols["n_units"].append(len(m))
    if isinstance(crs, str | int) and not isinstance(crs, bool):
        crs = _parsed_crs(crs)
    frame = pd.DataFrame({k: np.array(v, dtype=np.int64) for k, v in cols.items()})
    frame["geometry"] = gpd.array.from_shapely(
        np.asarray([geoms[g] for g in order], dtype=object), crs=crs
    )
    out = gpd.GeoDataFrame(frame, geometry="geometry", crs=crs)  # quicker than from rows
    out.attrs["unit_seq"] = unit_seq
    return out


def grid_community_wgs84(
    community: BaseGeometry,
    units: Any,
    *,
    households_per_grid: float | None = None,
    n_grids: int | None = None,
    roads: Any = None,
    prefer: str | None = None,
) -> gpd.GeoDataFrame:
    """:func:`grid_community` for WGS84 lon/lat input; grids come back in EPSG:4326.

    The work is done in the community's local metric CRS (:func:`gridmap.crs.to_metric`);
    ``units`` coordinates (``x``/``y`` or point geometry) are lon/lat.
    """
    metric = metric_crs_for_geometry(community)
    if isinstance(units, gpd.GeoDataFrame):
        m_units: Any = units.set_geometry(
            to_metric(np.asarray(units.geometry.values), metric), crs=metric
        )
    else:
        pts = to_metric(
            shapely.points(np.asarray(units["x"], float), np.asarray(units["y"], float)), metric
        )
        m_units = dict(units)
        m_units["x"], m_units["y"] = shapely.get_x(pts), shapely.get_y(pts)
        if units.get("footprints") is not None:
            m_units["footprints"] = [
                None if f is None else to_metric(f, metric) for f in units["footprints"]
            ]
    road_m = (
        None
        if roads is None
        else to_metric(
            np.asarray(
                getattr(roads, "values", [roads] if isinstance(roads, BaseGeometry) else roads),
                dtype=object,
            ),
            metric,
        )
    )
    grids = grid_community(
        to_metric(community, metric),
        m_units,
        households_per_grid=households_per_grid,
        n_grids=n_grids,
        roads=road_m,
        crs=metric,
        prefer=prefer,
    )
    out = grids.set_geometry(
        transform_geometry(np.asarray(grids.geometry.values), metric, "wgs84"), crs="EPSG:4326"
    )
    out.attrs["unit_seq"] = grids.attrs["unit_seq"]
    return out
