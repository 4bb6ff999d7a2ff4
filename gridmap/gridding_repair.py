"""Graph repairs on atom regions: connectivity, detached pieces, slivers.

Regions are sets of atom ids; two atoms touch when they share an edge of positive length
(``Atoms.L``). The repairs keep every grid one contiguous polygon and never drop an atom, so
the partition stays exact.
"""

from __future__ import annotations

import numpy as np

from gridmap.gridding_atoms import Atoms, neighbour_lists, reach

__all__ = [
    "between_grids",
    "components",
    "connected",
    "connected_lists",
    "fix_contiguity",
    "merge_slivers",
    "neighbour_lists",
    "reconnect",
]


def between_grids(mat: np.ndarray, lab: np.ndarray, n: int) -> np.ndarray:
    """(n, n) sums of the atom matrix ``mat`` (shared lengths) between grids; ``lab`` gives
    each atom's grid, -1 for none. Sums over the non-zero entries only (the matrix is sparse)."""
    i, j = np.nonzero(mat)
    keep = (lab[i] >= 0) & (lab[j] >= 0)
    i, j = i[keep], j[keep]
    # bincount adds in order from zero, exactly as np.add.at on zeros (and faster)
    return np.bincount(lab[i] * n + lab[j], mat[i, j], n * n).reshape(n, n)


def _labels(adj: np.ndarray) -> np.ndarray:
    """Connected-component label of each node of a small dense boolean adjacency matrix."""
    k = len(adj)
    lab = np.full(k, -1)
    comp = 0
    for start in range(k):
        if lab[start] >= 0:
            continue
        lab[reach(adj, start)] = comp
        comp += 1
    return lab


def connected(Lr: np.ndarray, mask: np.ndarray) -> bool:
    """Whether the atoms ``mask`` selects form one connected region of the adjacency ``Lr``."""
    idx = np.flatnonzero(mask)
    if len(idx) <= 1:
        return True
    return bool(reach(Lr[np.ix_(idx, idx)] > 0).all())


def connected_lists(nbrs: list[list[int]], mask: np.ndarray) -> bool:
    """:func:`connected` on :func:`neighbour_lists` made once for many masks (small graphs)."""
    idx = np.flatnonzero(mask)
    if len(idx) <= 1:
        return True
    inside = mask.tolist()
    start = int(idx[0])
    seen = {start}
    stack = [start]
    while stack:
        for b in nbrs[stack.pop()]:
            if inside[b] and b not in seen:
                seen.add(b)
                stack.append(b)
    return len(seen) == len(idx)


def reconnect(at: Atoms, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hand detached pieces of either side to the other side, which they must touch."""
    for _ in range(4):
        moved = False
        for side in (0, 1):
            own, other = (low, high) if side == 0 else (high, low)
            comps = components(at, own)
            if len(comps) <= 1:
                continue
            main = max(
                range(len(comps)), key=lambda i: (at.hh[comps[i]].sum(), at.area[comps[i]].sum())
            )
            keep = comps[main]
            rest = np.concatenate([c for i, c in enumerate(comps) if i != main])
            own, other = keep, np.concatenate([other, rest])
            low, high = (own, other) if side == 0 else (other, own)
            moved = True
        if not moved:
            break
    return low, high


def components(at: Atoms, ids: np.ndarray) -> list[np.ndarray]:
    if len(ids) <= 1:
        return [ids]
    lab = _labels(at.L[np.ix_(ids, ids)] > 0)
    return [ids[lab == c] for c in range(lab.max() + 1)]


def _best_neighbour(at: Atoms, leaves: list[np.ndarray], ids: np.ndarray, own: int) -> int:
    s = at.L[ids].sum(axis=0)
    shares = [(float(s[lv].sum()), -j) for j, lv in enumerate(leaves) if j != own]
    best = max(shares, default=(0.0, 0))
    return -best[1] if best[0] > 0 else -1


def fix_contiguity(at: Atoms, leaves: list[np.ndarray]) -> list[np.ndarray]:
    """Give every detached piece of a region to the neighbour sharing the longest edge."""
    for _ in range(10):
        changed = False
        for li in range(len(leaves)):
            comps = components(at, leaves[li])
            if len(comps) <= 1:
                continue
            key = [(at.hh[c].sum(), at.area[c].sum()) for c in comps]
            main = max(range(len(comps)), key=lambda i: key[i])
            for ci, comp in enumerate(comps):
                if ci == main:
                    continue
                j = _best_neighbour(at, leaves, comp, li)
                if j < 0:
                    continue
                leaves[li] = np.setdiff1d(leaves[li], comp)
                leaves[j] = np.union1d(leaves[j], comp)
                changed = True
        if not changed:
            break
    return leaves


def merge_slivers(at: Atoms, leaves: list[np.ndarray], min_households: float) -> list[np.ndarray]:
    """Merge regions holding fewer than ``min_households`` into their longest-edge neighbour."""
    while len(leaves) > 1:
        hh = np.array([at.hh[lv].sum() for lv in leaves])
        small = np.flatnonzero(hh < min_households)
        if not len(small):
            break
        li = int(small[np.argmin(hh[small])])
        j = _best_neighbour(at, leaves, leaves[li], li)
        if j < 0:
            break
        leaves[j] = np.union1d(leaves[j], leaves[li])
        del leaves[li]
    return leaves
