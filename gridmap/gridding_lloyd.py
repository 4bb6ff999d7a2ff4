"""Capacity-constrained Lloyd iteration on atoms, started from the bisection's grids.

Each grid becomes a site at its centroid. Atoms are assigned to sites by a transportation
problem (min-cost flow, OR-Tools): each atom supplies its households, each site takes between
``(1 - TOL)`` and ``(1 + TOL)`` times the mean, and a household costs the squared distance from
its atom's centroid to the site. The flow is a basic solution, so at most ``n - 1`` atoms are
split between sites; each goes to the site holding the larger share. Atoms without households
go to the nearest site. Sites move to the new grids' centroids and the step repeats.

The assignment is not contiguous by construction: the caller repairs contiguity and polishes,
and :func:`partition_score` lets it keep whichever of the old and new grids scores better.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from gridmap.gridding_atoms import Atoms, UnitSet
from gridmap.gridding_balance import _gap as balance_gap
from gridmap.gridding_polish import NU
from gridmap.gridding_prefs import prices

__all__ = ["ITERS", "TOL", "copy_atoms", "grid_figures", "lloyd"]

ITERS = 4  # Lloyd steps at most
TOL = 0.03  # a site may take this relative deviation from the mean households
COST_SCALE = 1e6  # integer costs: squared distance in units of (typical grid side)² / COST_SCALE
BIG = 10**12  # reward for filling a site up to its lower bound (a lower bound made soft)
CUT_MIN = 0.02  # an atom split by the flow is cut when its smaller share exceeds this × mean
PIN_ROUNDS = 6  # flows solved again after pinning atoms that cannot be cut near their share


def _centroids(at: Atoms, ids: np.ndarray, lab: np.ndarray, n: int) -> np.ndarray:
    area = at.area[ids]
    a = np.bincount(lab, area, n)
    c = np.column_stack([np.bincount(lab, area * at.cen[ids, i], n) for i in range(2)])
    return c / np.maximum(a, 1e-12)[:, None]


def _flow(
    hh: np.ndarray, d2: np.ndarray, tol: float, allowed: np.ndarray | None = None
) -> np.ndarray | None:
    """Households of each atom sent to each site (min-cost flow); None if OR-Tools fails."""
    from ortools.graph.python import min_cost_flow

    m, n = d2.shape
    supply = np.rint(hh).astype(np.int64)
    total = int(supply.sum())
    mean = total / n
    lo = int(np.floor(mean * (1 - tol)))
    hi = int(np.ceil(mean * (1 + tol)))
    while hi * n < total:
        hi += 1
    cost = np.rint(d2 / max(float(d2.max()), 1e-12) * COST_SCALE).astype(np.int64)
    sink = m + n
    tails = np.concatenate([np.repeat(np.arange(m), n), np.arange(m, m + n), np.arange(m, m + n)])
    heads = np.concatenate([np.tile(np.arange(m, m + n), m), np.full(2 * n, sink)])
    cap = np.repeat(supply, n) if allowed is None else (supply[:, None] * allowed).ravel()
    caps = np.concatenate([cap, np.full(n, lo), np.full(n, hi - lo)])
    costs = np.concatenate([cost.ravel(), np.full(n, -BIG // max(total, 1)), np.zeros(n, int)])
    smcf = min_cost_flow.SimpleMinCostFlow()
    smcf.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
    smcf.set_nodes_supplies(
        np.arange(m + n + 1), np.concatenate([supply, np.zeros(n, int), [-total]])
    )
    if smcf.solve() != smcf.OPTIMAL:
        return None
    return smcf.flows(np.arange(m * n)).reshape(m, n)


def _gap(
    at: Atoms, x: int, share: float, toward: np.ndarray, uset: UnitSet
) -> tuple[int, float, float] | None:
    """Direction, position and household share of the cut of atom ``x`` through a gap between
    its units that puts closest to ``share`` households on the side facing ``toward`` (the
    balancing cuts' gap search, in the direction closest to ``toward``)."""
    a = int(np.argmax(uset.dirs @ toward))
    got = balance_gap(at, x, a, share, uset)
    return None if got is None else (a, *got)


def _cut(at: Atoms, x: int, a: int, c: float, uset: UnitSet) -> tuple | None:
    """Cut atom ``x`` at ``c`` along direction ``a``; (low ids, high ids) or None."""
    d = uset.dirs[a]
    cg = float(c + d @ at.origin)
    plan = at.plan_split(x, uset.hi[at.units[x], a] < c, cg, d, uset)
    if len(plan.pieces) < 2:
        return None
    return at.commit(plan, uset)


def _plan_cuts(
    at: Atoms, ids: np.ndarray, hh: np.ndarray, d2: np.ndarray, sites: np.ndarray, uset: UnitSet
) -> tuple[np.ndarray | None, dict[int, tuple[int, float, int, int]]]:
    """Final flow and the cuts of the atoms it splits; atoms that cannot be cut near their
    share are pinned to their larger share and the flow solved again."""
    m, n = d2.shape
    tol_hh = CUT_MIN * hh.sum() / n
    allowed = np.ones((m, n), dtype=bool)
    flow: np.ndarray | None = None
    cuts: dict[int, tuple[int, float, int, int]] = {}
    for _ in range(PIN_ROUNDS):
        got = _flow(hh, d2, TOL, allowed)
        if got is None:
            break
        flow, cuts = got, {}
        pinned = False
        for r in np.flatnonzero((flow > 0).sum(1) > 1):
            k = np.argsort(-flow[r], kind="stable")[:2]
            if flow[r, k[1]] < tol_hh:
                continue
            toward = sites[k[1]] - sites[k[0]]
            norm = float(np.linalg.norm(toward))
            g = _gap(at, int(ids[r]), float(flow[r, k[1]]), toward / max(norm, 1e-12), uset)
            if g is None or abs(g[2] - flow[r, k[1]]) > tol_hh or norm == 0:
                allowed[r] = False
                allowed[r, k[0]] = True
                pinned = True
            else:
                cuts[int(r)] = (g[0], g[1], int(k[0]), int(k[1]))
        if not pinned:
            break
    return flow, cuts


def lloyd(
    at: Atoms, leaves: list[np.ndarray], uset: UnitSet, iters: int = ITERS, tol: float = TOL
) -> list[np.ndarray]:
    """Reassign the atoms of ``leaves`` by capacity-constrained Lloyd steps (count kept).

    After the last step, atoms the flow splits are cut by a line (when a gap between their
    units allows) so that each site gets about its share.
    """
    n = len(leaves)
    ids = np.concatenate(leaves)
    hh = at.hh[ids]
    if n < 2 or hh.sum() <= 0:
        return leaves
    lab = np.concatenate([np.full(len(lv), i) for i, lv in enumerate(leaves)])
    full = np.flatnonzero(hh > 0)
    flow = None
    for _ in range(iters):
        sites = _centroids(at, ids, lab, n)
        d2 = ((at.cen[ids, None, :] - sites[None]) ** 2).sum(-1)
        new = np.argmin(d2, axis=1)
        got = _flow(hh[full], d2[full], tol)
        if got is None:
            break
        new[full] = np.argmax(got, axis=1)
        if np.bincount(new, minlength=n).min() == 0:
            break
        same = np.array_equal(new, lab)
        lab, flow = new, got
        if same:
            break
    if flow is None:
        return leaves
    sites = _centroids(at, ids, lab, n)
    d2 = ((at.cen[ids[full], None, :] - sites[None]) ** 2).sum(-1)
    flow, cuts = _plan_cuts(at, ids[full], hh[full], d2, sites, uset)
    if flow is None:
        return leaves
    lab[full] = np.argmax(flow, axis=1)
    extra_ids, extra_lab = [], []
    for r, (a, c, s_low, s_high) in cuts.items():
        got_cut = _cut(at, int(ids[full[r]]), a, c, uset)
        if got_cut is None:
            continue
        low, high = got_cut
        lab[full[r]] = -1
        extra_ids += [low, high]
        extra_lab += [np.full(len(low), s_low), np.full(len(high), s_high)]
    if extra_ids:
        keep = lab >= 0
        ids = np.concatenate([ids[keep], *extra_ids])
        lab = np.concatenate([lab[keep], *extra_lab])
    return [ids[lab == i] for i in range(n)]


def copy_atoms(at: Atoms) -> Atoms:
    """An independent copy of ``at`` (cuts on the copy leave ``at`` as it was)."""
    return replace(
        at,
        geoms=list(at.geoms),
        units=list(at.units),
        alive=list(at.alive),
        L=at.L.copy(),
        Lnr=at.Lnr.copy(),
    )


def grid_figures(at: Atoms, leaves: list[np.ndarray]) -> tuple[float, float, float]:
    """The polishing objective of ``leaves`` (Polsby-Popper summed, less ``polish.NU`` ×
    squared relative household errors and the preference's ``polish_mu`` per typical grid side
    off the roads), the households' coefficient of variation and the mean Polsby-Popper."""
    n = len(leaves)
    ids = np.concatenate(leaves)
    lab = np.concatenate([np.full(len(lv), i) for i, lv in enumerate(leaves)])
    same = lab[:, None] == lab[None, :]
    L = at.L[np.ix_(ids, ids)]
    area = np.bincount(lab, at.area[ids], n)
    perim = np.bincount(lab, at.perim[ids], n) - np.bincount(lab, (L * same).sum(1), n)
    hh = np.bincount(lab, at.hh[ids], n)
    w = hh if hh.sum() > 0 else area
    e = (w - w.mean()) / max(w.mean(), 1e-12)
    off = (at.Lnr[np.ix_(ids, ids)] * ~same).sum() / 2
    pp = 4 * np.pi * area / np.maximum(perim, 1e-9) ** 2
    score = pp.sum() - NU * (e**2).sum() - prices().polish_mu * off / np.sqrt(area.sum() / n)
    return float(score), float(np.sqrt((e**2).mean())), float(pp.mean())
