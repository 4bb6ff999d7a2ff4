"""Balancing cuts: shift the edge between two neighbouring grids through a boundary block.

Polishing (:mod:`gridmap.gridding_polish`) moves whole atoms, and a road block often holds more
households than the imbalance between two grids. Here, for a pair of neighbouring grids whose
households differ, an atom of the fuller grid touching the other one is cut by a straight line
through a gap between its units, roughly parallel to the pair's common edge, so that the part
facing the emptier grid holds about half the difference; that part changes grid. Each candidate
cut is planned (not applied) and scored exactly with the polishing objective (Polsby-Popper
summed, less ``NU`` × squared relative household errors and the preference's ``polish_mu``
per typical grid side of edge off the roads); the best improving cut of a pair is applied. Both
grids stay connected.
"""

from __future__ import annotations

import numpy as np

from gridmap.gridding_atoms import Atoms, SplitPlan, UnitSet, polygon_props
from gridmap.gridding_polish import NU
from gridmap.gridding_prefs import prices
from gridmap.gridding_repair import between_grids
from gridmap.gridding_score import CLEAR

__all__ = ["balance"]

ROUNDS = 6  # rounds of cuts at most
MIN_DIFF = 0.03  # pairs whose households differ by less than this × the mean are left alone
ATOMS_PER_PAIR = 2  # boundary atoms tried per pair (longest common edge first)
SPREAD = 1  # directions tried on each side of the one pointing at the emptier grid
MIN_GAIN = 1e-4
HH_GAIN = 0.05  # cuts gaining less than this on balance alone rarely pay for their edge
PLANS_PER_PAIR = 1  # cuts planned and scored exactly per pair, best balance first


def _pp(area: float, perim: float) -> float:
    return 4 * np.pi * area / max(perim, 1e-9) ** 2


def _grid_stats(at: Atoms, ids: np.ndarray) -> tuple[float, float, float]:
    """Area, perimeter and households of the union of atoms ``ids``."""
    area = float(at.area[ids].sum())
    perim = float(at.perim[ids].sum() - at.L[np.ix_(ids, ids)].sum())
    return area, perim, float(at.hh[ids].sum())


def _gap(at: Atoms, x: int, a: int, share: float, uset: UnitSet) -> tuple[float, float] | None:
    """Position of a cut of ``x`` along direction ``a`` through a gap between its units leaving
    about ``share`` households on the high side, and the households it leaves there."""
    ux = at.units[x]
    if len(ux) < 2:
        return None
    lo, hi, hh = uset.lo[ux, a], uset.hi[ux, a], uset.hh[ux]
    o = np.argsort(lo, kind="stable")
    run = np.maximum.accumulate(hi[o])
    gap = lo[o][1:] - run[:-1] > 2 * CLEAR
    if not gap.any():
        return None
    high = hh.sum() - np.cumsum(hh[o])[:-1]
    i = int(np.argmin(np.where(gap, np.abs(high - share), np.inf)))
    return float(run[i] + lo[o][i + 1]) / 2, float(high[i])


def _plan(at: Atoms, x: int, a: int, c: float, uset: UnitSet) -> SplitPlan | None:
    d = uset.dirs[a]
    cg = float(c + d @ at.origin)
    plan = at.plan_split(x, uset.hi[at.units[x], a] < c, cg, d, uset)
    if len(plan.pieces) < 2 or plan.low.all() or not plan.low.any():
        return None
    return plan


def _gain(
    at: Atoms,
    plan: SplitPlan,
    g_ids: np.ndarray,
    h_ids: np.ndarray,
    stats: tuple,
    mean: float,
    scale: float,
    uset: UnitSet,
) -> float:
    """Objective gain of moving the high pieces of ``plan`` from grid ``g`` to grid ``h``."""
    (ag, pg, wg), (ah, ph, wh) = stats
    x, k = plan.x, len(plan.pieces)
    area, perim, _, _ = polygon_props(plan.pieces, at.origin)
    hh = np.array([uset.hh[u].sum() for u in plan.units])
    lo, hi = plan.low, ~plan.low
    glob = np.concatenate([-1 - np.arange(k), plan.nbrs])
    gi, gj = glob[plan.i], glob[plan.j]
    rest = g_ids[g_ids != x]
    in_rest, in_h = np.isin(plan.nbrs, rest), np.isin(plan.nbrs, h_ids)
    side = np.concatenate([np.where(lo, 0, 1), np.where(in_rest, 0, np.where(in_h, 1, 2))])
    si, sj = side[plan.i], side[plan.j]
    # perimeter: x leaves g; low pieces join g's rest, high pieces join h
    own_x = float(at.L[x, rest].sum())
    sh_lo = float(plan.length[((si == 0) & (sj == 0))].sum())  # low-low and low-rest edges
    sh_hi = float(plan.length[((si == 1) & (sj == 1))].sum())
    pg2 = pg - at.perim[x] + 2 * own_x + perim[lo].sum() - 2 * sh_lo
    ph2 = ph + perim[hi].sum() - 2 * sh_hi
    ag2, ah2 = ag - area[hi].sum(), ah + area[hi].sum()
    moved = float(hh[hi].sum())
    wg2, wh2 = wg - moved, wh + moved
    # edge off the roads between the two grids: the cut, plus x's off-road share of its edges
    ratio = np.where(at.L[x] > 0, at.Lnr[x] / np.maximum(at.L[x], 1e-12), 0.0)
    is_piece_i, is_piece_j = plan.i < k, plan.j < k
    cut = float(plan.length[is_piece_i & is_piece_j & (si != sj)].sum())
    nb = np.where(is_piece_i, gj, gi)
    pc = np.where(is_piece_i, plan.i, plan.j)
    to_nb = ~(is_piece_i & is_piece_j)
    nb_side = np.where(is_piece_i, sj, si)
    pc_side = np.where(lo[np.minimum(pc, k - 1)], 0, 1)
    r = np.where(to_nb, ratio[np.maximum(nb, 0)], 0.0) * plan.length
    before = r[to_nb & (nb_side == 1)].sum()  # x (in g) against h
    after = r[to_nb & (pc_side == 1) & (nb_side == 0)].sum() + cut  # high pieces against g
    after += r[to_nb & (pc_side == 0) & (nb_side == 1)].sum()  # low pieces against h
    d_off = float(after - before)
    eg, eh = (wg - mean) / mean, (wh - mean) / mean
    eg2, eh2 = (wg2 - mean) / mean, (wh2 - mean) / mean
    return (
        _pp(ag2, pg2)
        + _pp(ah2, ph2)
        - _pp(ag, pg)
        - _pp(ah, ph)
        - NU * (eg2**2 + eh2**2 - eg**2 - eh**2)
        - prices().polish_mu * d_off / scale
    )


def balance(
    at: Atoms, leaves: list[np.ndarray], uset: UnitSet, min_households: float = 0.0
) -> list[np.ndarray]:
    """Even out households between neighbouring grids by cutting boundary atoms (count kept)."""
    n = len(leaves)
    if n < 2 or at.hh[np.concatenate(leaves)].sum() <= 0:
        return leaves
    leaves = [np.asarray(lv) for lv in leaves]
    total = float(sum(at.hh[lv].sum() for lv in leaves))
    mean = total / n
    scale = np.sqrt(sum(float(at.area[lv].sum()) for lv in leaves) / n)
    K = len(uset.dirs)
    for _ in range(ROUNDS):
        lab = np.full(len(at.geoms), -1)
        for i, lv in enumerate(leaves):
            lab[lv] = i
        w = np.array([at.hh[lv].sum() for lv in leaves])
        shared = between_grids(at.L, lab, n)
        gi, hi_ = np.nonzero((shared > 0) & (w[:, None] - w[None, :] > MIN_DIFF * mean))
        if not len(gi):
            break
        order = np.argsort(-(w[gi] - w[hi_]), kind="stable")
        touched = np.zeros(n, dtype=bool)
        moved = False
        for p in order:
            g, h = int(gi[p]), int(hi_[p])
            if touched[g] or touched[h]:
                continue
            g_ids, h_ids = leaves[g], leaves[h]
            want = (w[g] - w[h]) / 2
            edge = at.L[np.ix_(g_ids, h_ids)].sum(1)
            near = g_ids[np.argsort(-edge, kind="stable")[: int((edge > 0).sum())]]
            cand = [int(x) for x in near if len(at.units[x]) >= 2][:ATOMS_PER_PAIR]
            if not cand:
                continue
            ah = at.area[h_ids]
            ch = (ah[:, None] * at.cen[h_ids]).sum(0) / max(ah.sum(), 1e-12)
            stats = (_grid_stats(at, g_ids), _grid_stats(at, h_ids))
            e_g, e_h = (w[g] - mean) / mean, (w[h] - mean) / mean
            found = []
            for x in cand:
                toward = ch - at.cen[x]
                a0 = int(np.argmax(uset.dirs @ toward))
                for da in range(-SPREAD, SPREAD + 1):
                    a = (a0 + da) % K
                    got = _gap(at, x, a, want, uset)
                    if got is None or got[1] <= 0 or got[1] >= 2 * want:
                        continue
                    t = got[1] / mean
                    hh_gain = NU * (e_g**2 + e_h**2 - (e_g - t) ** 2 - (e_h + t) ** 2)
                    if hh_gain > HH_GAIN:
                        found.append((-hh_gain, x, a, got[0]))
            best: tuple[float, SplitPlan] | None = None
            for _, x, a, c in sorted(found)[:PLANS_PER_PAIR]:
                plan = _plan(at, x, a, c, uset)
                if plan is None or not plan.connected(at.L, g_ids[g_ids != x], h_ids):
                    continue
                gain = _gain(at, plan, g_ids, h_ids, stats, mean, scale, uset)
                if gain > MIN_GAIN and (best is None or gain > best[0]):
                    best = (gain, plan)
            if best is None:
                continue
            lo_ids, hi_ids = at.commit(best[1], uset)
            x = best[1].x
            leaves[g] = np.concatenate([g_ids[g_ids != x], lo_ids])
            leaves[h] = np.concatenate([h_ids, hi_ids])
            touched[g] = touched[h] = True
            moved = True
        if not moved:
            break
    return leaves
