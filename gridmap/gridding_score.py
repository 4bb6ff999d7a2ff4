"""Scoring shared by the bisection sweeps and the straight cuts, and the cut geometry.

A candidate cut is judged by the Polsby-Popper it predicts for the grids its two sides will
become, minus the preference's ``cut_mu`` (:mod:`gridmap.gridding_prefs`) per typical grid side
of cut off the roads and :data:`NU` times the squared relative household error per grid. These
weights are the tuning knobs of the gridder.
"""

from __future__ import annotations

import numpy as np
import shapely

from gridmap.gridding_atoms import Atoms

__all__ = ["CLEAR", "NU", "clip_low", "half_planes", "predict"]

CLEAR = 0.25  # m: a cut passes at least this far from every unit point or footprint
NU = 50.0  # price of the squared relative household error
OMEGA_EXP = 0.5  # the side's irregularity is diluted over its grids as n**-OMEGA_EXP
_BIG = 1e7  # m: the half-plane rectangles reach this far
_XMIN, _XMAX = np.array([-_BIG, 0.0]), np.array([0.0, _BIG])  # low, high half-plane


def _pp_rect(r: np.ndarray) -> np.ndarray:
    r = np.maximum(r, 1e-9)
    return np.pi * r / (1.0 + r) ** 2


def predict(area: np.ndarray, perim: np.ndarray, cov: np.ndarray, n_s: int) -> np.ndarray:
    """Polsby-Popper expected of the ``n_s`` grids a side will become (rectangle model).

    The side is replaced by the rectangle with its principal moments; that rectangle is cut
    into the best arrangement of ``n_s`` cells; the side's own irregularity (its PP against its
    rectangle's) is passed on, diluted over the cells.
    """
    cxx, cyy, cxy = cov[:, 0], cov[:, 1], cov[:, 2]
    tr = np.maximum(cxx + cyy, 1e-12)
    disc = np.sqrt((cxx - cyy) ** 2 + 4 * cxy * cxy)
    l1 = (tr + disc) / 2
    l2 = np.maximum((tr - disc) / 2, 1e-9 * tr)
    rho = np.sqrt(l1 / l2)
    pp_side = 4 * np.pi * area / np.maximum(perim, 1e-9) ** 2
    omega = np.minimum(np.maximum(pp_side / _pp_rect(rho), 0.0), 1.0)  # np.clip, cheaper
    if n_s == 1:  # one arrangement: the same values without the (n, 1) detour
        best = _pp_rect(rho * n_s / 1.0)
    else:
        a = np.arange(1, n_s + 1, dtype=float)
        best = _pp_rect(rho[:, None] * n_s / a[None, :] ** 2).max(axis=1)
    return best * omega ** (1.0 / n_s**OMEGA_EXP)


def clip_low(
    at: Atoms, xg: np.ndarray, d: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Area share, perimeter and centroid of each atom's part below ``c`` along ``d``; chord.

    The atoms are rotated so that ``d`` is the x axis and clipped by rectangles (GEOS's
    rectangle clipping is ~10x faster than a general intersection).
    """
    coords, idx = shapely.get_coordinates(xg, return_index=True)
    local = coords - at.origin
    e = np.column_stack([-d[:, 1], d[:, 0]])
    lx, ly = local[:, 0], local[:, 1]
    di, ei = d[idx], e[idx]
    # (local * d[idx]).sum(1) without the reduction: x0 + (x1 + 0.0) is what it computes
    rot = np.empty_like(local)
    rot[:, 0] = lx * di[:, 0] + (ly * di[:, 1] + 0.0) - c[idx]
    rot[:, 1] = lx * ei[:, 0] + (ly * ei[:, 1] + 0.0)
    rg = xg.copy()
    shapely.lib.set_coordinates(rg, rot)  # fills the copy; xg is left as it was
    k = len(xg)
    both = np.concatenate([rg, rg])
    halves = shapely.lib.clip_by_rect(both, np.repeat(_XMIN, k), -_BIG, np.repeat(_XMAX, k), _BIG)
    low = halves[:k]
    lengths = shapely.lib.length(np.concatenate([halves, rg]))
    per_low = lengths[:k]
    chord = np.maximum((per_low + lengths[k : 2 * k] - lengths[2 * k :]) / 2, 0.0)
    cen = np.zeros((k, 2))
    ok = ~shapely.lib.is_empty(low)
    if ok.any():
        uv = shapely.get_coordinates(shapely.lib.centroid(low[ok]))
        cen[ok] = (uv[:, :1] + c[ok, None]) * d[ok] + uv[:, 1:] * e[ok]
    if not ok.all():
        cen[~ok] = shapely.get_coordinates(shapely.lib.centroid(xg[~ok])) - at.origin
    area = shapely.lib.area(np.concatenate([low, rg]))
    return area[:k] / np.maximum(area[k:], 1e-12), per_low, chord, cen


def half_planes(
    at: Atoms, xg: np.ndarray, d: np.ndarray, cg: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cut lines and low half-planes (as polygons) through the atoms ``xg``."""
    b = shapely.bounds(xg)
    mid = (b[:, :2] + b[:, 2:]) / 2
    r = np.hypot(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) + 10.0
    e = np.column_stack([-d[:, 1], d[:, 0]])
    p0 = mid + (cg - np.sum(mid * d, axis=1))[:, None] * d
    p1, p2 = p0 + r[:, None] * e, p0 - r[:, None] * e
    lines = shapely.linestrings(np.stack([p1, p2], axis=1))
    back = 2 * r[:, None] * d
    hp = shapely.polygons(np.stack([p1, p2, p2 - back, p1 - back, p1], axis=1))
    return lines, hp
