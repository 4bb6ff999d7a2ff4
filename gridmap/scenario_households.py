"""Household units of the synthetic scenario (pure): sampling and community assignment.

Towers and low-rise buildings around Gaussian centres, rural houses in village clusters,
rejection-sampled on land, off the roads and with a minimum spacing per kind
(:func:`_households`); then each unit is assigned to the community covering it, units too close
to a community edge being moved to a nearby free spot (:func:`_assign`). Part of
:mod:`gridmap.scenario`; the order of random draws is part of the committed output.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from scipy.spatial import cKDTree

from gridmap.crs import to_wgs84
from gridmap.scenario_base import (
    _KINDS,
    EDGE_CLEARANCE_M,
    METRIC,
    ScenarioConfig,
    _centres_m,
    _m,
    _xy_m,
)


def _building(kind: str, rng: np.random.Generator) -> int:
    if kind == "tower":
        return 40 + int(rng.beta(1.3, 2.2) * 160.999)
    if kind == "low":
        return 5 + int(25.999 * rng.random() ** 1.6)
    return int(rng.choice((1, 2, 3), p=(0.3, 0.5, 0.2)))


def _households(
    land: dict[str, Any],
    villages: Mapping[str, list[tuple[float, float, int]]],
    roads_m: np.ndarray,
    cfg: ScenarioConfig,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Building points (metric) with households, residents, kind and district."""
    tree = shapely.STRtree(roads_m)
    cell = 35.0
    taken: dict[tuple[int, int], list[tuple[float, float, float]]] = {}

    def free(x: float, y: float, sp: float) -> bool:
        ix, iy = int(x // cell), int(y // cell)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for ox, oy, osp in taken.get((ix + dx, iy + dy), ()):
                    if (ox - x) ** 2 + (oy - y) ** 2 < max(sp, osp) ** 2:
                        return False
        return True

    rows: list[tuple[float, float, int, str, str]] = []
    for code in sorted(land):
        poly = land[code]
        shapely.prepare(poly)
        cs, cxy = _centres_m(code)
        sources = []
        for c, xy in zip(cs, cxy, strict=True):
            sources += [
                ("tower", xy, 0.8 * c.sigma_m, c.tower_hh),
                ("low", xy, 1.6 * c.sigma_m, c.low_hh),
            ]
        sources += [
            ("rural", np.array([vx, vy]), 60 + 7 * math.sqrt(hh), hh)
            for vx, vy, hh in villages[code]
        ]
        for kind, xy, sigma, quota in sources:
            left, sig, idle, sp = round(quota * cfg.scale), sigma, 0, _KINDS[kind][0]
            while left > 0:
                cand = xy + rng.normal(0.0, sig, (128, 2))
                ok = shapely.contains_xy(poly, cand[:, 0], cand[:, 1])
                if ok.any():
                    idx = np.flatnonzero(ok)
                    near = tree.query(
                        shapely.points(cand[idx]), predicate="dwithin", distance=12.0
                    )[0]
                    ok[idx[np.unique(near)]] = False
                placed = 0
                for x, y in cand[ok].tolist():
                    if not free(x, y, sp):
                        continue
                    size = _building(kind, rng)
                    taken.setdefault((int(x // cell), int(y // cell)), []).append((x, y, sp))
                    rows.append((x, y, size, kind, code))
                    left, placed = left - size, placed + 1
                    if left <= 0:
                        break
                idle = 0 if placed else idle + 1
                if idle >= 20:  # saturated: widen the kernel
                    sig, idle = sig * 1.25, 0
                    if sig > 50_000:
                        raise RuntimeError(f"{code}: no room left for {kind} buildings")
    out = {
        k: np.array([r[n] for r in rows])
        for n, k in enumerate(("x", "y", "hh", "kind", "district"))
    }
    lo = np.array([_KINDS[k][1] for k in out["kind"]])
    hi = np.array([_KINDS[k][2] for k in out["kind"]])
    out["res"] = np.maximum(out["hh"], np.rint(out["hh"] * rng.uniform(lo, hi))).astype(int)
    return out


def _assign(
    polys: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    hh: dict[str, np.ndarray],
    land: dict[str, Any],
    roads: gpd.GeoDataFrame,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Community index of every point; points within ``EDGE_CLEARANCE_M`` of a community edge
    are moved to a nearby free spot (same rules as sampling), else dropped (index -1)."""
    bound_m = _m(shapely.boundary(polys))
    tree = shapely.STRtree(polys)
    road_tree = shapely.STRtree(_m(roads.geometry.to_numpy()))
    spacing = np.array([_KINDS[k][0] for k in hh["kind"]])

    def locate(x: np.ndarray, y: np.ndarray, xy_m: np.ndarray) -> np.ndarray:
        pi, ci = tree.query(shapely.points(np.column_stack([x, y])), predicate="intersects")
        out = np.full(len(x), -1)
        out[pi] = ci
        out[np.bincount(pi, minlength=len(x)) != 1] = -1
        ok = out >= 0
        far = shapely.distance(shapely.points(xy_m[ok]), bound_m[out[ok]]) >= EDGE_CLEARANCE_M
        out[np.flatnonzero(ok)[~far]] = -1
        return out

    lon, lat = lon.copy(), lat.copy()
    xy = _xy_m(lon, lat)
    comm = locate(lon, lat, xy)
    good = comm >= 0
    xy_good, kd_sp = xy[good], spacing[good]
    kd = cKDTree(xy_good)
    moved: list[tuple[float, float, float]] = []
    for i in np.flatnonzero(~good):
        for attempt in range(200):
            q = xy[i] + rng.normal(0.0, 20.0 + attempt, 2)
            qlon, qlat = (round(float(v), 6) for v in to_wgs84(q[0], q[1], METRIC))
            qm = _xy_m([qlon], [qlat])
            near = kd.query_ball_point(qm[0], 35.0)
            if any(np.hypot(*(xy_good[n] - qm[0])) < max(kd_sp[n], spacing[i]) for n in near):
                continue
            if any(
                math.hypot(mx - qm[0, 0], my - qm[0, 1]) < max(ms, spacing[i])
                for mx, my, ms in moved
            ):
                continue
            if not shapely.contains_xy(land[hh["district"][i]], qm[0, 0], qm[0, 1]):
                continue
            if len(road_tree.query(shapely.points(qm[0]), predicate="dwithin", distance=12.0)):
                continue
            c = locate(np.array([qlon]), np.array([qlat]), qm)[0]
            if c >= 0:
                lon[i], lat[i], comm[i] = qlon, qlat, c
                moved.append((float(qm[0, 0]), float(qm[0, 1]), float(spacing[i])))
                break
    return comm, lon, lat
