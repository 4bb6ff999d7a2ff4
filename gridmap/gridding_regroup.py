"""Re-partition an unbalanced grid together with its neighbours.

Recursive bisection fixes each cut for good, so a grid holding two towers too many for any
neighbour (tower communities: a few units per grid, 40–200 households each) stays overfull:
polishing and the balancing cuts move households between two grids at a time. Here the worst
grid and all its neighbours are merged and bisected afresh into as many grids (the same
road-aware bisection, :func:`gridmap.gridding_bisect.bisect_region`), repaired and polished on a
copy of the atoms; the copy replaces the grids when the polishing objective
(compactness, household balance and edge off the roads together) is better. Only the
group's grids change, so only their share of the objective is compared.
"""

from __future__ import annotations

import numpy as np
import shapely

from gridmap.gridding_atoms import Atoms, UnitSet
from gridmap.gridding_bisect import bisect_region
from gridmap.gridding_lloyd import copy_atoms
from gridmap.gridding_polish import NU, _pp, polish
from gridmap.gridding_prefs import prices
from gridmap.gridding_repair import between_grids, components, fix_contiguity

__all__ = ["regroup"]

REGROUP_E = 0.10  # a grid this far off the mean households is re-partitioned with neighbours
ROUNDS = 3  # re-partitions per community at most
SMALL_GROUPS = 0  # if > 0, after the grid's whole neighbourhood the grid with this many
# neighbours furthest off the mean the other way is tried too
# The wider search, only where the households' CV is still above WIDE_CV after the first:
# on the Yichang scenario CV p90 0.059 → 0.051, max 0.102 → 0.092, PP +0.003, alignment
# −0.001, ≈ +3–12 % CPU (everywhere it would cost ≈ +25 % for the same figures).
WIDE_CV = 0.05
WIDE_E, WIDE_ROUNDS, WIDE_SMALL_GROUPS = 0.06, 5, 2


def _group_score(at: Atoms, parts: list[np.ndarray], mean: float, scale: float) -> float:
    """The polishing objective's share of the grids ``parts`` (the group's outer edge is fixed)."""
    ids = np.concatenate(parts)
    lab = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
    r = len(parts)
    L = at.L[np.ix_(ids, ids)]
    i, j = np.nonzero(L)
    same = lab[i] == lab[j]
    area = np.bincount(lab, at.area[ids], r)
    perim = np.bincount(lab, at.perim[ids], r) - np.bincount(lab[i[same]], L[i, j][same], r)
    e = np.bincount(lab, at.hh[ids], r) / mean - 1
    off = at.Lnr[np.ix_(ids, ids)][i, j][~same].sum() / 2
    return float(_pp(area, perim).sum() - NU * (e**2).sum() - prices().polish_mu * off / scale)


def regroup(
    at: Atoms, leaves: list[np.ndarray], uset: UnitSet, min_households: float = 0.0
) -> tuple[Atoms, list[np.ndarray]]:
    """``at`` and ``leaves``, or a copy with badly unbalanced grids' neighbourhoods bisected
    afresh; a wider search follows where the households' CV is still above :data:`WIDE_CV`
    (tower communities), so the rest pay nothing for it; not with a preference that lets
    households give way (``streets``)."""
    at, leaves = _regroup(at, leaves, uset, min_households, REGROUP_E, ROUNDS, SMALL_GROUPS)
    w = np.array([at.hh[lv].sum() for lv in leaves])
    wide = prices().wide_regroup and len(w) >= 3 and w.mean() > 0
    if wide and w.std() / w.mean() > WIDE_CV:
        at, leaves = _regroup(
            at, leaves, uset, min_households, WIDE_E, WIDE_ROUNDS, WIDE_SMALL_GROUPS
        )
    return at, leaves


def _regroup(
    at: Atoms,
    leaves: list[np.ndarray],
    uset: UnitSet,
    min_households: float,
    threshold: float,
    rounds: int,
    small_groups: int,
) -> tuple[Atoms, list[np.ndarray]]:
    """One search: up to ``rounds`` re-partitions of grids ``threshold`` or more off the mean."""
    n = len(leaves)
    if n < 3:
        return at, leaves
    total = float(sum(at.hh[lv].sum() for lv in leaves))
    if total <= 0:
        return at, leaves
    mean = total / n
    scale = float(np.sqrt(sum(at.area[lv].sum() for lv in leaves) / n))
    tried: set[tuple[int, ...]] = set()
    for _ in range(rounds):
        e = np.array([at.hh[lv].sum() for lv in leaves]) / mean - 1
        lab = np.full(len(at.geoms), -1)
        for i, lv in enumerate(leaves):
            lab[lv] = i
        adj = between_grids(at.L, lab, n) > 0
        np.fill_diagonal(adj, False)
        group = None
        for g in np.argsort(-np.abs(e), kind="stable"):
            if abs(e[g]) < threshold:
                break
            nb = np.flatnonzero(adj[g])
            cands = [tuple(sorted([int(g), *nb.tolist()]))]
            if small_groups:
                opp = nb[np.argsort(e[nb] * np.sign(e[g]), kind="stable")][:small_groups]
                cands.append(tuple(sorted([int(g), *opp.tolist()])))
            for cand in cands:
                if 2 <= len(cand) < n and cand not in tried:
                    group = cand
                    break
            if group is not None:
                break
        if group is None:
            break
        tried.add(group)
        work = copy_atoms(at)
        region = np.concatenate([leaves[g] for g in group])
        try:
            parts = bisect_region(work, region, len(group), uset)
        except (ValueError, shapely.errors.GEOSException):  # an attempt on a copy: skip it
            continue
        parts = fix_contiguity(work, parts)
        if any(len(p) == 0 or len(components(work, p)) > 1 for p in parts) or (
            min_households > 0 and min(work.hh[p].sum() for p in parts) < min_households
        ):
            continue
        parts = polish(work, parts, min_households)
        old = _group_score(at, [leaves[g] for g in group], mean, scale)
        if _group_score(work, parts, mean, scale) > old + 1e-6:
            rest = [lv for i, lv in enumerate(leaves) if i not in group]
            at, leaves = work, rest + parts
            tried.clear()
    return at, leaves
