"""Balanced power diagrams (weighted Voronoi) for the synthetic scenario (pure).

Centres and weights are found so every cell carries an equal share of a mass (households and
area), and the diagram's edges are computed from the lower hull of the lifted sites. Used by
:mod:`gridmap.scenario_partition`.

Examples
--------
>>> c = np.array([[0.0, 0.0], [1.0, 0.0]])
>>> _power_assign(np.array([[0.2, 0.0], [0.8, 0.0]]), c, np.zeros(2)).tolist()
[0, 1]
"""

from __future__ import annotations

import numpy as np
import shapely
from scipy.spatial import ConvexHull


def _power_assign(p: np.ndarray, c: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Index of the power cell of each point: argmin |p - c|² - w (|p|² dropped)."""
    return np.argmin((c**2).sum(1) - w - 2.0 * (p @ c.T), axis=1)


def _kmeans(p: np.ndarray, mass: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Weighted k-means++ seeding and a few Lloyd steps."""
    c = [p[rng.choice(len(p), p=mass)]]
    for _ in range(1, k):
        d2 = np.min(((p[:, None, :] - np.array(c)[None]) ** 2).sum(-1), axis=1) * mass
        c.append(p[rng.choice(len(p), p=d2 / d2.sum())])
    cc = np.array(c)
    for _ in range(10):
        a = _power_assign(p, cc, np.zeros(k))
        for j in range(k):
            m = mass[a == j]
            if m.sum() > 0:
                cc[j] = (p[a == j] * m[:, None]).sum(0) / m.sum()
    return cc


def _solve_weights(
    p: np.ndarray,
    mass: np.ndarray,
    c: np.ndarray,
    w: np.ndarray,
    scale: float,
    iters: int = 120,
    tol: float = 0.03,
) -> np.ndarray:
    """Power weights giving every cell ~``1/k`` of ``mass`` (dual ascent with Rprop steps)."""
    k = len(c)
    target = mass.sum() / k
    w = w.copy()
    step = np.full(k, 0.02 * scale)
    last = np.zeros(k)
    for _ in range(iters):
        err = (target - np.bincount(_power_assign(p, c, w), mass, k)) / target
        if np.abs(err).max() < tol:
            break
        sign = np.sign(err)
        step = np.clip(np.where(sign == last, step * 1.3, step * 0.5), 1e-6 * scale, scale)
        w += step * sign
        last = sign
    return w


def _balance(p: np.ndarray, mass: np.ndarray, c0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres and weights of a compact power diagram whose cells carry equal ``mass`` (km).

    Alternates solving the weights for fixed centres and moving centres half-way to their cells'
    centroids; an empty cell is re-seeded inside the heaviest one.
    """
    k = len(c0)
    c, w = c0.astype(float).copy(), np.zeros(k)
    scale = float(np.prod(np.ptp(p, axis=0) + 1e-3)) / k
    for rnd in range(6):
        w = _solve_weights(p, mass, c, w, scale)
        a = _power_assign(p, c, w)
        load = np.bincount(a, mass, k)
        for empty in np.flatnonzero(load <= 0):
            big = int(np.argmax(load))
            far = np.flatnonzero(a == big)
            far = far[np.argmax(((p[far] - c[big]) ** 2).sum(1))]
            c[empty], w[empty] = (p[far] + c[big]) / 2, w[big]
            load[big] = 0
        if rnd == 5:
            break
        for j in range(k):
            m = mass[a == j]
            if m.sum() > 0:
                c[j] = 0.5 * c[j] + 0.5 * (p[a == j] * m[:, None]).sum(0) / m.sum()
    return c, _solve_weights(p, mass, c, w, scale)


def _power_edges(c: np.ndarray, w: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Edges of the power diagram (metres, EPSG:4546) of centres ``c`` (km, minus ``origin``)."""
    if len(c) < 2:
        return np.array([], dtype=object)
    far = 20.0 * (float(np.ptp(c, axis=0).max()) + 10.0)
    mid = c.mean(0)
    sites = np.vstack([c, mid + far * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])])
    ww = np.r_[w, np.zeros(4)]
    hull = ConvexHull(np.column_stack([sites, (sites**2).sum(1) - ww]))
    eq = hull.equations
    lower = eq[:, 2] < -1e-12
    vert = (-eq[:, :2] / (2.0 * eq[:, 2:3]) + origin) * 1000.0
    segs = []
    for f in np.flatnonzero(lower):
        for g in hull.neighbors[f]:
            if g > f and lower[g] and np.hypot(*(vert[f] - vert[g])) > 1e-6:
                segs.append([vert[f], vert[g]])
    return shapely.linestrings(np.array(segs)) if segs else np.array([], dtype=object)
