"""Recursive bisection of a part's atoms into household-balanced, compact, road-following grids.

Each step splits a region that must hold ``n`` grids into ``n//2`` and ``n - n//2``. For every
direction in ``uset.dirs`` the atoms are swept by centroid; the sweep stops either on a block edge
(a road, when that keeps the household error small) or inside the boundary block, which is cut by
a straight line through a gap between its units. Candidates are scored by the compactness they
predict for the final grids, minus a price for cuts off the road network and for imbalance; the
best one whose two sides are connected wins. Scoring uses additive bookkeeping (areas, moments,
shared edge lengths), so shapely is called only for the boundary blocks.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import shapely

from gridmap.gridding_atoms import BFS_PY_MAX, Atoms, SplitPlan, UnitSet
from gridmap.gridding_lines import apply_line, best_line
from gridmap.gridding_prefs import prices
from gridmap.gridding_repair import (
    between_grids,
    connected,
    connected_lists,
    neighbour_lists,
    reconnect,
)
from gridmap.gridding_score import CLEAR, NU, clip_low, half_planes, predict

__all__ = ["bisect_region", "partition", "refine"]

SNAP_TOL = 0.02  # a cut along roads may leave this relative household error per grid
REFINE_BELOW = 0.3  # only pairs scoring below this are re-cut (imbalanced or ragged)
REFINE_GAIN = 0.005  # a re-cut pair must score this much better
LINES = True  # also consider straight cuts across several blocks
LINES_MAX_N = 3  # ... in regions for at most this many grids
TOP = 40  # candidates checked for connectivity, best first
_STOPS = np.arange(-1, 3)[:, None]  # whole-atom stops tried around each sweep's balance point


def _split_candidates(
    at: Atoms,
    region: np.ndarray,
    order: np.ndarray,
    kstar: np.ndarray,
    need: np.ndarray,
    uset: UnitSet,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Angles, boundary atoms, cut positions and households sent low, one per direction.

    All directions at once: each direction's boundary-atom units form a group of a flat array,
    sorted by group, then by the units' low extent along the direction.
    """
    K = order.shape[1]
    xs = order[kstar, np.arange(K)]
    units = [at.units[region[x]] for x in xs]
    sizes = np.array([len(u) for u in units])
    keep = np.flatnonzero(sizes >= 2)
    if not len(keep):
        return np.empty(0, int), np.empty(0, int), np.empty(0), np.empty(0)
    kept = sizes[keep]
    grp = np.repeat(keep, kept)
    ux = np.concatenate([units[a] for a in keep])
    flat = ux * K + grp  # (unit, direction) in the flattened extents
    lo, hi = uset.lo.ravel().take(flat), uset.hi.ravel().take(flat)
    srt = np.lexsort((lo, grp))
    grp, lo, hi, hh = grp[srt], lo[srt], hi[srt], uset.hh[ux[srt]]
    ends = np.cumsum(kept)
    start = np.concatenate(([0], ends[:-1]))
    first = np.zeros(len(grp), dtype=bool)
    first[start] = True
    # running maximum of the high extents within each group (groups lifted apart)
    gi = np.repeat(np.arange(len(keep)), kept)  # == np.cumsum(first) - 1
    lift = gi * (2 * (np.abs(hi).max() + np.abs(lo).max()) + 1.0)
    run = np.maximum.accumulate(hi + lift) - lift
    cumh = np.cumsum(hh)
    cumh -= np.repeat(cumh[start] - hh[start], kept)
    nxt = np.concatenate((lo[1:], [np.inf]))
    last = np.zeros(len(grp), dtype=bool)
    last[ends - 1] = True
    valid = ~last & (nxt - run > 2 * CLEAR)
    dev = np.where(valid, np.abs(cumh - need[grp]), np.inf)
    # first smallest per group: the first element equal to its group's minimum
    hits = np.flatnonzero(dev == np.minimum.reduceat(dev, start)[gi])
    pick = hits[np.searchsorted(hits, start)]
    ok = np.isfinite(dev[pick])
    pick = pick[ok]
    a = grp[pick]
    return a, xs[a], (run[pick] + nxt[pick]) / 2, cumh[pick]


@dataclass
class Proposal:
    """A bisection of a region, scored, not yet applied (a split atom is only planned)."""

    score: float
    low: np.ndarray
    high: np.ndarray
    plan: SplitPlan | None = None
    verified: bool = True  # both sides known to be connected

    def apply(self, at: Atoms, uset: UnitSet) -> tuple[np.ndarray, np.ndarray]:
        low, high = self.low, self.high
        if self.plan is not None:
            lo_ids, hi_ids = at.commit(self.plan, uset)
            low, high = np.concatenate([low, lo_ids]), np.concatenate([high, hi_ids])
        return (low, high) if self.verified else reconnect(at, low, high)


_BEATEN = Proposal(-np.inf, np.empty(0, int), np.empty(0, int), verified=False)  # <= at_least


def _bisect(at: Atoms, region: np.ndarray, n: int, uset: UnitSet) -> tuple[np.ndarray, np.ndarray]:
    """Split ``region`` (atom ids) for ``n`` grids; return the low and high sides' atom ids.

    The straight cut is scored first, so sweeps that cannot beat it are never planned.
    """
    line = (
        best_line(at, region, n, uset) if LINES and len(region) > 1 and n <= LINES_MAX_N else None
    )
    beat = -np.inf if line is None else line.score
    prop = _propose(at, region, n, uset, at_least=beat)
    if prop is not _BEATEN and (prop is None or not prop.verified):
        # odd shapes: sweeps that only grow connected
        alt = _propose(at, region, n, uset, grow=True, at_least=beat)
        if alt is _BEATEN:
            prop = _BEATEN if prop is None else prop
        elif alt is not None and (alt.verified or prop is None):
            prop = alt
    # one block: its straight cuts are already among the sweeps' candidates
    if line is not None and (prop is None or prop is _BEATEN or line.score > prop.score):
        return reconnect(at, *apply_line(at, region, line, uset))
    if prop is None or prop is _BEATEN:
        return _bisect_single(at, region, n, uset)
    return prop.apply(at, uset)


def _connected_orders(at: Atoms, region: np.ndarray, proj: np.ndarray) -> np.ndarray:
    """Per direction, the atoms in sweep order, each next one touching those before it."""
    m, K = proj.shape
    adj = at.L[np.ix_(region, region)] > 0
    nbrs = [np.flatnonzero(adj[i]) for i in range(m)]
    out = np.empty((m, K), dtype=int)
    for a in range(K):
        p = proj[:, a]
        taken = np.zeros(m, dtype=bool)
        heap = [(float(p.min()), int(np.argmin(p)))]
        seen = {heap[0][1]}
        k = 0
        while k < m:
            if not heap:  # a disconnected region: restart from the lowest left
                rest = np.flatnonzero(~taken)
                i = int(rest[np.argmin(p[rest])])
                heap, seen = [(float(p[i]), i)], seen | {i}
            _, i = heapq.heappop(heap)
            taken[i] = True
            out[k, a] = i
            k += 1
            for j in nbrs[i]:
                if j not in seen:
                    seen.add(int(j))
                    heapq.heappush(heap, (float(p[j]), int(j)))
    return out


def _propose(
    at: Atoms,
    region: np.ndarray,
    n: int,
    uset: UnitSet,
    grow: bool = False,
    at_least: float = -np.inf,
) -> Proposal | None:
    """The best-scoring bisection of ``region`` for ``n`` grids (None: no sweep applies).

    Sweeps order the atoms by centroid along each direction, or with ``connected`` in the
    order a sweep would reach them growing only through shared edges.
    """
    n1, n2 = n // 2, n - n // 2
    m, K = len(region), len(uset.dirs)
    h = at.hh[region]
    W = float(h.sum())
    area_mode = W <= 0
    if area_mode:
        h = at.area[region]
        W = float(h.sum())
    T, per, mn = W * n1 / n, W / n, min(n1, n2)
    proj = at.cen[region] @ uset.dirs.T
    order = _connected_orders(at, region, proj) if grow else np.argsort(proj, axis=0, kind="stable")
    cum = np.cumsum(h[order], axis=0)
    kstar = np.minimum((cum <= T + 1e-9 * W).sum(axis=0), m - 1)
    rank = np.empty_like(order)
    rank[order, np.arange(K)[None, :]] = np.arange(m)[:, None]
    # whole-atom candidates: sweeps that stop on a block edge
    ks = kstar[None, :] + _STOPS
    aa = np.broadcast_to(np.arange(K), ks.shape)
    ok = (ks >= 1) & (ks <= m - 1)
    wA = np.where(ok, cum[np.minimum(np.maximum(ks - 1, 0), m - 1), aa], np.nan)
    ok &= np.abs(wA - T) <= SNAP_TOL * per * mn
    ca, ck, cw = aa[ok], ks[ok], wA[ok].astype(float)
    cx, cc = np.full(len(ca), -1), np.zeros(len(ca))
    if not area_mode:
        base = np.where(kstar > 0, cum[np.maximum(kstar - 1, 0), np.arange(K)], 0.0)
        sa, sx, sc, sw = _split_candidates(at, region, order, kstar, T - base, uset)
        ca, ck = np.concatenate([ca, sa]), np.concatenate([ck, kstar[sa]])
        cw = np.concatenate([cw, base[sa] + sw])
        cx, cc = np.concatenate([cx, sx]), np.concatenate([cc, sc])
    if not len(ca):  # nothing sensible: fall back to the best sweep stop whatever its error
        wA = np.where((ks >= 1) & (ks <= m - 1), cum[np.clip(ks - 1, 0, m - 1), aa], np.inf)
        flat = int(np.argmin(np.abs(wA - T)))
        if not np.isfinite(wA.flat[flat]):
            return None
        ca, ck, cw = np.array([aa.flat[flat]]), np.array([ks.flat[flat]]), np.array([wA.flat[flat]])
        cx, cc = np.array([-1]), np.array([0.0])
    nc, is_split = len(ca), cx >= 0
    r_ca = rank[:, ca].T
    MA = (r_ca < ck[:, None]).astype(float)
    MB = np.where(is_split[:, None], r_ca > ck[:, None], r_ca >= ck[:, None]).astype(float)
    f, chord, perA = np.zeros(nc), np.zeros(nc), np.zeros(nc)
    cenA = np.zeros((nc, 2))
    sp = np.flatnonzero(is_split)
    xg = np.asarray([at.geoms[region[x]] for x in cx[sp]], dtype=object)
    if len(sp):
        f[sp], perA[sp], chord[sp], cenA[sp] = clip_low(at, xg, uset.dirs[ca[sp]], cc[sp])
    rid = region
    Lr, Lnr = at.L[np.ix_(rid, rid)], at.Lnr[np.ix_(rid, rid)]
    # sums over the (sparse) shared edges instead of dense products with the adjacency
    ei, ej = np.nonzero(Lr)
    up = ei < ej
    ei, ej = ei[up], ej[up]
    w, wn = Lr[ei, ej], Lnr[ei, ej]
    ai, aj, bi, bj = MA[:, ei], MA[:, ej], MB[:, ei], MB[:, ej]
    inner_a, inner_b = 2 * ((ai * aj) @ w), 2 * ((bi * bj) @ w)  # (LA * MA).sum(1), ...
    cut_nr = (ai * bj + aj * bi) @ wn  # (NA * MB).sum(1)
    xs = np.where(is_split, cx, 0)
    Lx, Nx = Lr[xs], Lnr[xs]  # each candidate's boundary atom against the others
    lxa = np.where(is_split, (MA * Lx).sum(1), 0)
    lxb = np.where(is_split, (MB * Lx).sum(1), 0)
    nxa = np.where(is_split, (MA * Nx).sum(1), 0)
    nxb = np.where(is_split, (MB * Nx).sum(1), 0)
    cut_nr += nxa * (1 - f) + nxb * f + chord
    ax, px = at.area[rid][xs], at.perim[rid][xs]
    area_A = MA @ at.area[rid] + f * ax
    area_B = at.area[rid].sum() - area_A
    per_A = MA @ at.perim[rid] - inner_a + np.where(is_split, perA - 2 * lxa * f, 0)
    per_B = (
        MB @ at.perim[rid]
        - inner_b
        + np.where(is_split, px + 2 * chord - perA - 2 * lxb * (1 - f), 0)
    )
    cen, mom, a_r = at.cen[rid], at.mom[rid], at.area[rid]
    first = a_r[:, None] * cen
    second = mom + np.column_stack(
        [a_r * cen[:, 0] ** 2, a_r * cen[:, 1] ** 2, a_r * cen[:, 0] * cen[:, 1]]
    )
    s1 = MA @ first + (f * ax)[:, None] * cenA
    s2 = (
        MA @ second
        + (f * f)[:, None] * mom[xs]
        + (f * ax)[:, None]
        * np.column_stack([cenA[:, 0] ** 2, cenA[:, 1] ** 2, cenA[:, 0] * cenA[:, 1]])
    )
    t1, t2 = first.sum(0), second.sum(0)

    def central(s0: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
        s0 = np.maximum(s0, 1e-9)[:, None]
        c = s1 / s0
        return s2 - s0 * np.column_stack([c[:, 0] ** 2, c[:, 1] ** 2, c[:, 0] * c[:, 1]])

    if n1 == n2:  # both sides in one call: the same values, row by row
        both = np.concatenate([area_A, area_B])
        cov = central(both, np.concatenate([s1, t1 - s1]), np.concatenate([s2, t2 - s2]))
        pr = predict(both, np.concatenate([per_A, per_B]), cov, n1)
        pred = (n1 * pr[:nc] + n2 * pr[nc:]) / n
    else:
        pred = (
            n1 * predict(area_A, per_A, central(area_A, s1, s2), n1)
            + n2 * predict(area_B, per_B, central(area_B, t1 - s1, t2 - s2), n2)
        ) / n
    scale = np.sqrt(a_r.sum() / n)
    err = np.abs(cw - T) / (per * mn)
    score = pred - prices().cut_mu * cut_nr / scale - NU * err**2
    ranked = np.argsort(-score, kind="stable")
    planned: dict[int, SplitPlan] = {}  # plans depend on the candidate only: make each once
    nbrs: list[list[int]] | None = None  # made on first use, for small regions
    for c in ranked[:TOP]:
        if score[c] <= at_least:  # the caller wants nothing worse: skip planning splits
            return _BEATEN
        xm = np.zeros(m, dtype=bool)
        if is_split[c]:
            xm[cx[c]] = True
        side_a, side_b = (MA[c] > 0) | xm, (MB[c] > 0) | xm
        if nbrs is None and m <= BFS_PY_MAX:
            nbrs = neighbour_lists(Lr)
        if nbrs is not None:
            if not (connected_lists(nbrs, side_a) and connected_lists(nbrs, side_b)):
                continue
        elif not (connected(Lr, side_a) and connected(Lr, side_b)):
            continue
        low, high = rid[MA[c] > 0], rid[MB[c] > 0]
        if not is_split[c]:
            return Proposal(float(score[c]), low, high)
        plan = planned[int(c)] = _plan(at, c, ca, cx, cc, rid, xg, sp, uset)
        if plan.connected(at.L, low, high):
            return Proposal(float(score[c]), low, high, plan)
    c = ranked[0]
    best = None
    if is_split[c]:
        best = planned.get(int(c)) or _plan(at, c, ca, cx, cc, rid, xg, sp, uset)
    return Proposal(float(score[c]), rid[MA[c] > 0], rid[MB[c] > 0], best, verified=False)


def _plan(
    at: Atoms,
    c: int,
    ca: np.ndarray,
    cx: np.ndarray,
    cc: np.ndarray,
    rid: np.ndarray,
    xg: np.ndarray,
    sp: np.ndarray,
    uset: UnitSet,
) -> SplitPlan:
    a, x = int(ca[c]), int(rid[cx[c]])
    d = uset.dirs[a]
    cg = float(cc[c] + d @ at.origin)
    side = uset.hi[at.units[x], a] < cc[c]
    return at.plan_split(x, side, cg, d, uset)


def _bisect_single(
    at: Atoms, region: np.ndarray, n: int, uset: UnitSet
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a one-atom region without usable households by area, between unit extents."""
    x = int(region[0])
    geom = at.geoms[x]
    target = at.area[x] * (n // 2) / n
    best = None
    for a in range(0, len(uset.dirs), 3):
        d = uset.dirs[a]
        proj = shapely.get_coordinates(geom) @ d
        lo, hi = float(proj.min()), float(proj.max())
        for _ in range(40):
            mid = (lo + hi) / 2
            _, hp = half_planes(at, np.array([geom], dtype=object), d[None, :], np.array([mid]))
            if shapely.intersection(geom, hp[0]).area < target:
                lo = mid
            else:
                hi = mid
        c = (lo + hi) / 2 - d @ at.origin
        ux = at.units[x]
        for _ in range(len(ux) + 1):  # step out of any unit extent the cut would touch
            hit = (uset.lo[ux, a] - CLEAR <= c) & (uset.hi[ux, a] + CLEAR >= c)
            if not hit.any():
                break
            c = float(uset.hi[ux[hit], a].max()) + 2 * CLEAR
        line, _ = half_planes(
            at, np.array([geom], dtype=object), d[None, :], np.array([c + d @ at.origin])
        )
        chord = shapely.intersection(geom, line[0]).length
        if chord > 0 and (best is None or chord < best[0]):
            best = (chord, a, c, line[0])
    if best is None:
        raise ValueError("cannot split a region any further")
    _, a, c, line = best
    d = uset.dirs[a]
    side = uset.hi[at.units[x], a] < c
    return at.commit(at.plan_split(x, side, float(c + d @ at.origin), d, uset), uset)


def partition(at: Atoms, n: int, uset: UnitSet) -> list[np.ndarray]:
    """Recursively bisect all atoms into ``n`` regions (lists of atom ids)."""
    return bisect_region(at, np.flatnonzero(at.alive), n, uset)


def bisect_region(at: Atoms, region: np.ndarray, n: int, uset: UnitSet) -> list[np.ndarray]:
    """Recursively bisect the atoms ``region`` into ``n`` regions (lists of atom ids)."""
    todo = [(region, n)]
    leaves = []
    while todo:
        region, k = todo.pop()
        if k == 1:
            leaves.append(region)
            continue
        low, high = _bisect(at, region, k, uset)
        todo.append((high, k - k // 2))
        todo.append((low, k // 2))
    return leaves


def _pair_scores(at: Atoms, leaves: list[np.ndarray], lab: np.ndarray, pairs: list) -> list:
    """The bisection score (as in :func:`_propose` for two grids) of existing pairs."""
    pers, covs, hh, areas = [], [], [], []
    for ids in leaves:
        area = at.area[ids]
        per = at.perim[ids].sum() - at.L[np.ix_(ids, ids)].sum()
        cen, mom = at.cen[ids], at.mom[ids]
        s0 = area.sum()
        c = (area[:, None] * cen).sum(0) / s0
        d = cen - c
        cov = (
            mom + area[:, None] * np.column_stack([d[:, 0] ** 2, d[:, 1] ** 2, d[:, 0] * d[:, 1]])
        ).sum(0)
        pers.append(per)
        covs.append(cov)
        hh.append(at.hh[ids].sum())
        areas.append(s0)
    # one call for all grids: predict works row by row, so the values are the same
    preds = predict(np.array(areas), np.array(pers), np.array(covs), 1)
    cut = between_grids(at.Lnr, lab, len(leaves))
    mu = prices().cut_mu
    out = []
    for i, j in pairs:
        scale = np.sqrt((areas[i] + areas[j]) / 2)
        err = abs(hh[i] - hh[j]) / max(hh[i] + hh[j], 1e-9)
        out.append(float((preds[i] + preds[j]) / 2 - mu * cut[i, j] / scale - NU * err**2))
    return out


def refine(at: Atoms, leaves: list[np.ndarray], uset: UnitSet, passes: int = 2) -> list[np.ndarray]:
    """Re-cut pairs of neighbouring grids where a fresh bisection of the two scores better.

    Recursive bisection fixes each early cut for good; re-cutting pairs afterwards repairs
    strips and notches and evens out households between neighbours.
    """
    for _ in range(passes):
        lab = np.full(len(at.geoms), -1)
        for i, lv in enumerate(leaves):
            lab[lv] = i
        shared = between_grids(at.L, lab, len(leaves))
        pairs = [
            (i, j)
            for i in range(len(leaves))
            for j in range(i + 1, len(leaves))
            if shared[i, j] > 0
        ]
        current = _pair_scores(at, leaves, lab, pairs)
        touched: set[int] = set()
        improved = False
        for p in np.argsort(current, kind="stable"):
            i, j = pairs[p]
            if i in touched or j in touched or current[p] > REFINE_BELOW:
                continue
            prop = _propose(
                at,
                np.concatenate([leaves[i], leaves[j]]),
                2,
                uset,
                at_least=current[p] + REFINE_GAIN,
            )
            if prop is None or not prop.verified:
                continue
            leaves[i], leaves[j] = prop.apply(at, uset)
            touched.update((i, j))
            improved = True
        if not improved:
            break
    return leaves
