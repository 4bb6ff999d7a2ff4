"""Straight cuts across many blocks: the compact alternative to a sweep that follows roads.

A bisection may also cut its whole region by one straight line through a gap between unit
extents, splitting every block it crosses. Such a cut is off the roads for its whole length, so
it only wins where the road-following sweeps of :mod:`gridmap.gridding_bisect` would leave
ragged or elongated sides. Sides are measured exactly: the region is rotated so the cut is
vertical and clipped by rectangles, which GEOS does quickly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from gridmap.gridding_atoms import Atoms, UnitSet, polygon_props, union_atoms
from gridmap.gridding_prefs import prices
from gridmap.gridding_score import CLEAR, NU, predict

__all__ = ["LineCut", "apply_line", "best_line"]

BIG = 1e7
_XMIN, _XMAX = np.array([-BIG, 0.0]), np.array([0.0, BIG])  # low, high half-plane


@dataclass
class LineCut:
    score: float
    angle: int
    c: float  # position along ``uset.dirs[angle]``, relative to the atoms' origin


def _side_props(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Area, perimeter, central moments (Jxx, Jyy, Jxy) and part count of (multi)polygons."""
    k = len(geoms)
    if ((shapely.lib.get_type_id(geoms) == 3) & ~shapely.lib.is_empty(geoms)).all():
        parts, owner = geoms, np.arange(k)  # all single polygons: they are their parts
    else:
        parts, owner = shapely.get_parts(geoms, return_index=True)
        keep = shapely.lib.get_type_id(parts) == 3
        parts, owner = parts[keep], owner[keep]
    area, perim, cen, mom = polygon_props(parts, np.zeros(2))
    s0 = np.bincount(owner, area, k)
    s1 = np.column_stack([np.bincount(owner, area * cen[:, i], k) for i in range(2)])
    s2 = np.column_stack(
        [
            np.bincount(owner, mom[:, 0] + area * cen[:, 0] ** 2, k),
            np.bincount(owner, mom[:, 1] + area * cen[:, 1] ** 2, k),
            np.bincount(owner, mom[:, 2] + area * cen[:, 0] * cen[:, 1], k),
        ]
    )
    c = s1 / np.maximum(s0, 1e-9)[:, None]
    cov = s2 - s0[:, None] * np.column_stack([c[:, 0] ** 2, c[:, 1] ** 2, c[:, 0] * c[:, 1]])
    count = np.bincount(owner[area > 1e-6], minlength=k)
    return s0, np.bincount(owner, perim, k), cov, count


def best_line(at: Atoms, region: np.ndarray, n: int, uset: UnitSet) -> LineCut | None:
    """The best straight cut of ``region`` for ``n`` grids, or None (no gap, no households)."""
    ux = np.concatenate([at.units[a] for a in region])
    hh = uset.hh[ux] if len(ux) else np.zeros(0)
    W = float(hh.sum())
    if len(ux) < 2 or W <= 0:
        return None
    n1, n2 = n // 2, n - n // 2
    T, per, mn = W * n1 / n, W / n, min(n1, n2)
    lo, hi = uset.lo[ux], uset.hi[ux]
    srt = np.argsort(lo, axis=0, kind="stable")
    lo_s = np.take_along_axis(lo, srt, axis=0)
    run = np.maximum.accumulate(np.take_along_axis(hi, srt, axis=0), axis=0)
    cumh = np.cumsum(hh[srt], axis=0)
    dev = np.where(lo_s[1:] - run[:-1] > 2 * CLEAR, np.abs(cumh[:-1] - T), np.inf)
    best = np.argmin(dev, axis=0)
    K = len(uset.dirs)
    ok = np.isfinite(dev[best, np.arange(K)])
    if not ok.any():
        return None
    angles = np.flatnonzero(ok)
    i = best[angles]
    c = (run[i, angles] + lo_s[i + 1, angles]) / 2
    err = np.abs(cumh[i, angles] - T) / (per * mn)
    whole = union_atoms([at.geoms[a] for a in region])
    if whole.geom_type != "Polygon":
        return None
    coords = shapely.get_coordinates(whole) - at.origin
    d, e = uset.dirs[angles], np.column_stack([-uset.dirs[angles, 1], uset.dirs[angles, 0]])
    rot = np.stack([coords @ d.T - c, coords @ e.T], axis=-1)  # (vertex, angle, uv)
    rot = rot.transpose(1, 0, 2).reshape(-1, 2)
    k = len(angles)
    rg = np.full(k, whole, dtype=object)
    shapely.lib.set_coordinates(rg, np.ascontiguousarray(rot))
    # low sides, then high sides: one clip and one pass over both
    sides = shapely.lib.clip_by_rect(
        np.concatenate([rg, rg]), np.repeat(_XMIN, k), -BIG, np.repeat(_XMAX, k), BIG
    )
    s0, sp, sc, sk = _side_props(sides)
    aA, pA, kA = s0[:k], sp[:k], sk[:k]
    aB, pB, kB = s0[k:], sp[k:], sk[k:]
    chord = np.maximum((pA + pB - whole.length) / 2, 0.0)
    scale = np.sqrt(whole.area / n)
    if n1 == n2:  # both sides in one call: the same values
        pr = predict(s0, sp, sc, n1)
        pred = (n1 * pr[:k] + n2 * pr[k:]) / n
    else:
        pred = (n1 * predict(aA, pA, sc[:k], n1) + n2 * predict(aB, pB, sc[k:], n2)) / n
    score = pred - prices().cut_mu * chord / scale - NU * err**2
    score = np.where((kA == 1) & (kB == 1), score, -np.inf)  # a side in pieces: not this cut
    j = int(np.argmax(score))
    if not np.isfinite(score[j]):
        return None
    return LineCut(float(score[j]), int(angles[j]), float(c[j]))


def apply_line(
    at: Atoms, region: np.ndarray, cut: LineCut, uset: UnitSet
) -> tuple[np.ndarray, np.ndarray]:
    """Cut every atom of ``region`` the line crosses; return the low and high atom ids."""
    d = uset.dirs[cut.angle]
    cg = cut.c + float(d @ at.origin)
    low, high = [], []
    coords, idx = shapely.get_coordinates(
        np.asarray([at.geoms[x] for x in region], dtype=object), return_index=True
    )
    proj = coords @ d
    pmin = np.full(len(region), np.inf)
    pmax = np.full(len(region), -np.inf)
    np.minimum.at(pmin, idx, proj)
    np.maximum.at(pmax, idx, proj)
    for t, x in enumerate(region):
        if pmax[t] <= cg:
            low.append(np.array([x]))
        elif pmin[t] >= cg:
            high.append(np.array([x]))
        else:
            side = uset.hi[at.units[x], cut.angle] < cut.c
            lo_ids, hi_ids = at.commit(at.plan_split(int(x), side, cg, d, uset), uset)
            low.append(lo_ids)
            high.append(hi_ids)
    return _cat(low), _cat(high)


def _cat(parts: list) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0, dtype=int)
