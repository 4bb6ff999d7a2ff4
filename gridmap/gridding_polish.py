"""Boundary polishing: move single atoms between neighbouring grids while the score improves.

After bisection and repair, each grid is a set of atoms. A move hands one atom on a grid's edge
to a neighbouring grid. Its effect is known exactly from additive bookkeeping: a union of atoms
has the sum of their areas, and the sum of their perimeters less twice their shared edges. The
score of a community's grids is the sum of their Polsby-Popper values, minus :data:`NU` times
the sum of their squared relative household errors, minus the preference's ``polish_mu``
(:mod:`gridmap.gridding_prefs`) per typical grid side of grid edge off the roads. Moves are
applied greedily, best first, at most one per grid a round; a move must leave its grid
connected, non-empty and above the sliver limit.
"""

from __future__ import annotations

import numpy as np

from gridmap.gridding_atoms import Atoms
from gridmap.gridding_prefs import prices
from gridmap.gridding_repair import connected

__all__ = ["polish"]

NU = 50.0  # price of the squared relative household error of a grid
ROUNDS = 40  # rounds of moves at most
MIN_GAIN = 1e-4


def _pp(area: np.ndarray, perim: np.ndarray) -> np.ndarray:
    return 4 * np.pi * area / np.maximum(perim, 1e-9) ** 2


def polish(
    at: Atoms, leaves: list[np.ndarray], min_households: float = 0.0, rounds: int = ROUNDS
) -> list[np.ndarray]:
    """Improve ``leaves`` (atom ids per grid) by single-atom moves; the grid count is kept."""
    n = len(leaves)
    if n < 2:
        return leaves
    ids = np.concatenate(leaves)
    m = len(ids)
    lab = np.concatenate([np.full(len(lv), i) for i, lv in enumerate(leaves)])
    L = at.L[np.ix_(ids, ids)]
    Lnr = at.Lnr[np.ix_(ids, ids)]
    area, perim, hh = at.area[ids], at.perim[ids], at.hh[ids]
    weight = hh if hh.sum() > 0 else area
    ei, ej = np.nonzero(L)  # the adjacency is sparse: sums over its entries, not products
    ew, enr = L[ei, ej], Lnr[ei, ej]
    mean = weight.sum() / n
    scale = np.sqrt(area.sum() / n)
    mu = prices().polish_mu
    for _ in range(rounds):
        onehot = np.zeros((m, n))
        onehot[np.arange(m), lab] = 1.0
        # shared edge of each atom with each grid (bincount adds in order, as np.add.at does)
        cell = ei * n + lab[ej]
        M = np.bincount(cell, ew, m * n).reshape(m, n)
        Mnr = np.bincount(cell, enr, m * n).reshape(m, n)
        A = onehot.T @ area
        P = onehot.T @ perim - (M * onehot).sum(0)
        W = onehot.T @ weight
        pp = _pp(A, P)
        e = (W - mean) / mean
        own = M[np.arange(m), lab]
        own_nr = Mnr[np.arange(m), lab]
        a_i, h_i = np.nonzero((M > 0) & (onehot == 0))
        if not len(a_i):
            break
        g_i = lab[a_i]
        pg = _pp(A[g_i] - area[a_i], P[g_i] - perim[a_i] + 2 * own[a_i])
        ph = _pp(A[h_i] + area[a_i], P[h_i] + perim[a_i] - 2 * M[a_i, h_i])
        eg = e[g_i] - weight[a_i] / mean
        eh = e[h_i] + weight[a_i] / mean
        gain = (
            pg
            - pp[g_i]
            + ph
            - pp[h_i]
            - NU * (eg**2 + eh**2 - e[g_i] ** 2 - e[h_i] ** 2)
            - mu * (own_nr[a_i] - Mnr[a_i, h_i]) / scale
        )
        H = onehot.T @ hh
        ok = (gain > MIN_GAIN) & (H[g_i] - hh[a_i] >= min_households)
        ok &= np.bincount(lab, minlength=n)[g_i] > 1
        moved = False
        touched = np.zeros(n, dtype=bool)
        for c in np.flatnonzero(ok)[np.argsort(-gain[ok], kind="stable")]:
            a, g, h = int(a_i[c]), int(g_i[c]), int(h_i[c])
            if touched[g] or touched[h]:
                continue
            rest = (lab == g) & (np.arange(m) != a)
            if not connected(L, rest):
                continue
            lab[a] = h
            touched[g] = touched[h] = True
            moved = True
        if not moved:
            break
    return [ids[lab == i] for i in range(n)]
