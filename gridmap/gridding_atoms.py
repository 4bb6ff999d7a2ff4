"""Atoms for gridding: a community part cut into blocks by roads, kept as an exact coverage.

Grids are unions of atoms, so the grids partition the part by construction. Atoms start as the
faces of the part's boundary noded with the roads (every edge between two blocks lies on a road);
a bisection may split one atom by a straight line, and the neighbours get the new vertices so the
coverage stays exactly noded (``shapely.coverage_union_all`` needs that, and it is fast).
Shared-edge lengths between atoms come from hashing identical segments, so no overlay is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from scipy.spatial import cKDTree
from shapely.geometry import Polygon

__all__ = [
    "ANGLE_STEP",
    "DIRS",
    "Atoms",
    "SplitPlan",
    "UnitSet",
    "insert_vertices",
    "neighbour_lists",
    "polygon_props",
    "reach",
    "shared_lengths",
    "union_atoms",
    "unique_rows",
]

ANGLE_STEP = 15.0  # degrees between candidate cut directions
DIRS = np.column_stack(
    [
        np.cos(np.deg2rad(np.arange(0.0, 360.0, ANGLE_STEP))),
        np.sin(np.deg2rad(np.arange(0.0, 360.0, ANGLE_STEP))),
    ]
)

SNAP_TOL = 1e-6  # m: vertices this close are one vertex when atoms are cut
_BIG = 1e7  # m: half-plane rectangles of the cuts reach this far
_LEFT, _RIGHT = np.array([-_BIG, 0.0]), np.array([0.0, _BIG])
_NO_HOLES = np.empty(0, dtype=object)


@dataclass
class UnitSet:
    """Household units of one community: points, counts, extents along the candidate angles."""

    xy: np.ndarray  # (u, 2) point of each unit
    hh: np.ndarray  # households
    res: np.ndarray  # residents
    lo: np.ndarray  # (u, k) min projection of the unit (point or footprint) on each direction
    hi: np.ndarray  # (u, k) max projection
    footprints: np.ndarray | None = None  # object array of Polygon | None
    dirs: np.ndarray = field(default_factory=lambda: DIRS)  # (k, 2) unit normals of the cuts


@dataclass
class SplitPlan:
    """One atom cut in pieces, with the adjacency the pieces would have (not yet applied)."""

    x: int
    pieces: list
    low: np.ndarray  # piece on the low side of the cut
    units: list  # unit indices per piece
    nbrs: np.ndarray  # atoms that touched x
    snapped: list  # their geometries with the cut's end points inserted
    i: np.ndarray  # adjacency among pieces + nbrs (local indices, pieces first)
    j: np.ndarray
    length: np.ndarray

    def connected(self, L: np.ndarray, low: np.ndarray, high: np.ndarray) -> bool:
        """Whether ``low`` + low pieces and ``high`` + high pieces are each connected."""
        k = len(self.pieces)
        for side, mask in ((low, self.low), (high, ~self.low)):
            ids = np.concatenate([side, -1 - np.flatnonzero(mask)])
            pos = {int(a): t for t, a in enumerate(ids)}
            m = len(ids)
            adj = np.zeros((m, m), dtype=bool)
            if len(side):
                adj[: len(side), : len(side)] = L[np.ix_(side, side)] > 0
            glob = np.concatenate([-1 - np.arange(k), self.nbrs])
            for a, b in zip(glob[self.i], glob[self.j], strict=True):
                if int(a) in pos and int(b) in pos:
                    adj[pos[int(a)], pos[int(b)]] = adj[pos[int(b)], pos[int(a)]] = True
            if m > 1 and not _all_reached(adj):
                return False
        return True


def _grow(mat: np.ndarray, k: int) -> np.ndarray:
    """``mat`` with ``k`` more zero rows and columns (``np.pad``, without its overhead)."""
    m = len(mat)
    out = np.zeros((m + k, m + k))
    out[:m, :m] = mat
    return out


BFS_PY_MAX = 100  # graphs up to this many nodes are searched in plain Python (faster)


def neighbour_lists(Lr: np.ndarray) -> list[list[int]]:
    """For each atom of the adjacency ``Lr``, the atoms it shares an edge with (``Lr > 0``)."""
    out: list[list[int]] = [[] for _ in range(len(Lr))]
    for a, b in zip(*(ix.tolist() for ix in np.nonzero(Lr > 0)), strict=True):
        out[a].append(b)
    return out


def reach(adj: np.ndarray, start: int = 0) -> np.ndarray:
    """Nodes reachable from ``start`` along a dense boolean adjacency (``adj[i, j]``: i to j)."""
    k = len(adj)
    if k > BFS_PY_MAX:  # frontier sweeps, one numpy step per level
        out = np.zeros(k, dtype=bool)
        out[start] = True
        frontier = out.copy()
        while frontier.any():
            new = adj[frontier].any(axis=0) & ~out
            out |= new
            frontier = new
        return out
    nbrs = neighbour_lists(adj)
    seen = [False] * k
    seen[start] = True
    stack = [start]
    while stack:
        for b in nbrs[stack.pop()]:
            if not seen[b]:
                seen[b] = True
                stack.append(b)
    return np.array(seen, dtype=bool)


def _all_reached(adj: np.ndarray) -> bool:
    """Whether a small dense boolean adjacency matrix is one connected graph."""
    return bool(reach(adj).all())


@dataclass
class Atoms:
    """Polygons of an exact coverage with their areas, moments, units and shared-edge lengths."""

    geoms: list
    area: np.ndarray
    perim: np.ndarray
    cen: np.ndarray  # (m, 2) centroid, relative to ``origin``
    mom: np.ndarray  # (m, 3) central second moments Jxx, Jyy, Jxy
    hh: np.ndarray
    units: list
    L: np.ndarray  # shared edge length between atoms
    Lnr: np.ndarray  # the part of it that is not on a road (earlier straight cuts)
    origin: np.ndarray
    alive: list = field(default_factory=list)

    def add(self, geoms: list, units: list, hh: np.ndarray) -> np.ndarray:
        """Append atoms; return their ids. Adjacency rows start at zero."""
        area, perim, cen, mom = polygon_props(geoms, self.origin)
        start, k = len(self.geoms), len(geoms)
        self.geoms.extend(geoms)
        self.units.extend(units)
        self.alive.extend([True] * k)
        self.area = np.concatenate([self.area, area])
        self.perim = np.concatenate([self.perim, perim])
        self.cen = np.concatenate([self.cen, cen])
        self.mom = np.concatenate([self.mom, mom])
        self.hh = np.concatenate([self.hh, hh])
        self.L = _grow(self.L, k)
        self.Lnr = _grow(self.Lnr, k)
        return np.arange(start, start + k)

    def plan_split(
        self,
        x: int,
        side_of: np.ndarray,
        c: float,
        d: np.ndarray,
        uset: UnitSet,
    ) -> SplitPlan:
        """Pieces of atom ``x`` cut by the line perpendicular to ``d`` at ``c``, not applied.

        ``side_of`` tells for each unit of ``x`` whether it goes low (True). Units never lie on
        the line: the caller chose ``c`` in a gap between unit extents.
        """
        xg = self.geoms[x]
        # a cut within a micrometre of a vertex goes through it: no needle pieces, no near-twins
        nbrs = np.flatnonzero(self.L[x] > 0)
        near = np.empty(len(nbrs) + 1, dtype=object)
        near[0] = xg
        for slot, y in enumerate(nbrs, start=1):
            near[slot] = self.geoms[y]
        ref, ref_idx = shapely.get_coordinates(near, return_index=True)
        xv = ref[ref_idx == 0]
        lo, hi = xv.min(axis=0), xv.max(axis=0)
        # only reference vertices near x can be within SNAP_TOL of a piece's (order kept)
        box = 1e-3
        ref = ref[
            (ref[:, 0] >= lo[0] - box)
            & (ref[:, 0] <= hi[0] + box)
            & (ref[:, 1] >= lo[1] - box)
            & (ref[:, 1] <= hi[1] + box)
        ]
        pieces, cut_pts = _snap_vertices(_split(xg, d, c, xv, lo, hi), ref)
        parr = np.empty(len(pieces), dtype=object)
        parr[:] = pieces
        low = shapely.get_coordinates(shapely.lib.point_on_surface(parr)) @ d < c
        ux = self.units[x]
        piece_units = []
        n_low = int(np.count_nonzero(low))
        for i, p in enumerate(pieces):
            mine = ux[side_of == low[i]]
            if (n_low if low[i] else len(low) - n_low) > 1 and len(mine):
                inside = shapely.contains_xy(p, uset.xy[mine, 0], uset.xy[mine, 1])
                mine = mine[inside]
            piece_units.append(mine)
        self._orphans(pieces, low, piece_units, ux, side_of, uset)
        if cut_pts is None:  # the snapping could not tell: vertices not in x or its neighbours
            pc = shapely.get_coordinates(parr)
            cut_pts = unique_rows(pc[_nearest(pc, ref)[0] > 0])
        # neighbours get the new vertices that fall on the edges they share with x
        snapped = list(near[1:])
        if len(cut_pts) and len(nbrs):
            b = shapely.lib.bounds(near[1:])
            t = SNAP_TOL
            inside = (  # (neighbour, point): the point within the neighbour's bounds
                (cut_pts[None, :, 0] >= b[:, 0:1] - t)
                & (cut_pts[None, :, 0] <= b[:, 2:3] + t)
                & (cut_pts[None, :, 1] >= b[:, 1:2] - t)
                & (cut_pts[None, :, 1] <= b[:, 3:4] + t)
            )
            for q in np.flatnonzero(inside.any(axis=1)):
                snapped[q] = _insert_on_edges(snapped[q], cut_pts[inside[q]])
        si, sj, ln = shared_lengths(pieces + snapped)
        k = len(pieces)
        keep = (si < k) | (sj < k)
        return SplitPlan(x, pieces, low, piece_units, nbrs, snapped, si[keep], sj[keep], ln[keep])

    def commit(self, plan: SplitPlan, uset: UnitSet) -> tuple[np.ndarray, np.ndarray]:
        """Apply a :meth:`plan_split`; return the ids of the low and the high pieces."""
        x, k = plan.x, len(plan.pieces)
        for y, g in zip(plan.nbrs, plan.snapped, strict=True):
            self.geoms[y] = g
        hh = np.array([uset.hh[u].sum() for u in plan.units], dtype=float)
        ids = self.add(plan.pieces, plan.units, hh)
        allids = np.concatenate([ids, plan.nbrs])
        gi, gj, ln = allids[plan.i], allids[plan.j], plan.length
        np.add.at(self.L, (gi, gj), ln)
        np.add.at(self.L, (gj, gi), ln)
        # cut edges between pieces are not on a road; edges to neighbours keep x's share
        ratio = np.where(self.L[x] > 0, self.Lnr[x] / np.maximum(self.L[x], 1e-12), 0.0)
        both = (plan.i < k) & (plan.j < k)
        nr = np.where(both, 1.0, np.where(plan.i < k, ratio[gj], ratio[gi])) * ln
        np.add.at(self.Lnr, (gi, gj), nr)
        np.add.at(self.Lnr, (gj, gi), nr)
        self.L[x, :] = self.L[:, x] = 0.0
        self.Lnr[x, :] = self.Lnr[:, x] = 0.0
        self.alive[x] = False
        return ids[plan.low], ids[~plan.low]

    @staticmethod
    def _orphans(
        pieces: list,
        low: np.ndarray,
        piece_units: list,
        ux: np.ndarray,
        side_of: np.ndarray,
        uset: UnitSet,
    ) -> None:
        """Units of a side found in none of its pieces (numeric edge cases) go to the nearest."""
        if sum(len(u) for u in piece_units) == len(ux):
            return  # units are never on the cut, so no unit is in two pieces
        placed = np.concatenate(piece_units) if piece_units else np.empty(0, int)
        lost = np.setdiff1d(ux, placed)
        for u in lost:
            side = side_of[np.flatnonzero(ux == u)[0]]
            cands = [i for i in range(len(pieces)) if low[i] == side] or list(range(len(pieces)))
            pt = shapely.Point(uset.xy[u])
            best = min(cands, key=lambda i: (pieces[i].distance(pt), i))
            piece_units[best] = np.sort(np.append(piece_units[best], u))


def _split(
    poly: Polygon,
    d: np.ndarray,
    c: float,
    coords: np.ndarray | None = None,
    lo: np.ndarray | None = None,
    hi: np.ndarray | None = None,
) -> np.ndarray:
    """Parts of ``poly`` on either side of the line ``p @ d == c`` (``d`` a unit vector).

    The polygon is turned so that the line is the y axis and clipped by two half-plane
    rectangles (GEOS's rectangle clipping is much faster than a polygon split), then turned
    back; the caller snaps the vertices onto the originals (the round trip moves them ~1e-10 m).
    ``coords`` are the polygon's coordinates, ``lo`` and ``hi`` their minima and maxima, when the
    caller has them.
    """
    if coords is None:
        coords = shapely.get_coordinates(poly)
    if lo is None or hi is None:
        lo, hi = coords.min(axis=0), coords.max(axis=0)
    mid = (lo + hi) / 2
    e = np.array([-d[1], d[0]])
    off = c - float(mid @ d)
    local = coords - mid
    rot = np.column_stack([local @ d - off, local @ e])
    rg = np.empty(1, dtype=object)
    rg[0] = poly
    shapely.lib.set_coordinates(rg, rot)
    both = np.empty(2, dtype=object)
    both[:] = rg[0]
    halves = shapely.lib.clip_by_rect(both, _LEFT, -_BIG, _RIGHT, _BIG)  # low, high half-planes
    parts = shapely.get_parts(halves)
    parts = parts[(shapely.lib.get_type_id(parts) == 3) & (shapely.lib.area(parts) > 0)]
    uv = shapely.get_coordinates(parts)
    back = mid + np.outer(uv[:, 0] + off, d) + np.outer(uv[:, 1], e)
    shapely.lib.set_coordinates(parts, back)
    return parts


def insert_vertices(poly: Polygon, pts: np.ndarray) -> Polygon:
    """``poly`` with each point of ``pts`` lying on one of its edges inserted as a vertex."""
    if not len(pts):
        return poly
    minx, miny, maxx, maxy = poly.bounds
    inside = (
        (pts[:, 0] >= minx - SNAP_TOL)
        & (pts[:, 0] <= maxx + SNAP_TOL)
        & (pts[:, 1] >= miny - SNAP_TOL)
        & (pts[:, 1] <= maxy + SNAP_TOL)
    )
    if not inside.any():
        return poly
    return _insert_on_edges(poly, pts[inside])


def _insert_on_edges(poly: Polygon, pts: np.ndarray) -> Polygon:
    """:func:`insert_vertices` for points already known to lie within the polygon's bounds."""
    rings = []
    changed = False
    holes = shapely.lib.get_num_interior_rings(poly) > 0
    for c in (
        [np.asarray(r.coords) for r in [poly.exterior, *poly.interiors]]
        if holes
        else [shapely.get_coordinates(poly)]
    ):
        # x and y apart: (points, edges) arrays, the same arithmetic as ``.sum()`` over a
        # trailing axis of two, which adds ``x1 + 0.0`` (a -0.0 term becomes 0.0) to ``x0``
        ax, ay = c[:-1, 0], c[:-1, 1]
        abx, aby = c[1:, 0] - ax, c[1:, 1] - ay
        px, py = pts[:, 0, None], pts[:, 1, None]
        den = np.maximum(abx * abx + aby * aby, 1e-300)
        t = ((px - ax) * abx + ((py - ay) * aby + 0.0)) / den
        dist = np.maximum(np.abs(px - (ax + t * abx)), np.abs(py - (ay + t * aby)))
        on = (dist <= SNAP_TOL) & (t > 0) & (t < 1)
        # a point near two edges (the two sides of a needle) goes on the nearest one only:
        # inserting it on both would fold the needle into a self-intersecting spike
        on &= dist <= np.where(on, dist, np.inf).min(axis=1, keepdims=True)
        if not on.any():
            rings.append(c)
            continue
        changed = True
        pi, si = np.nonzero(on)
        order = np.lexsort((t[pi, si], si))  # along the ring, then along each edge
        rings.append(_insert_rows(c, si[order] + 1, pts[pi[order]]))
    if not changed:
        return poly
    return (
        Polygon(rings[0], rings[1:])
        if holes
        else shapely.lib.polygons(shapely.linearrings(rings[0]), _NO_HOLES)
    )


def _insert_rows(c: np.ndarray, at: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``np.insert(c, at, rows, axis=0)`` for sorted ``at`` (without its overhead)."""
    out = np.empty((len(c) + len(at), 2))
    new = at + np.arange(len(at))
    mask = np.ones(len(out), dtype=bool)
    mask[new] = False
    out[new] = rows
    out[mask] = c
    return out


def _nearest(pts: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chebyshev distance from each point to the nearest row of ``ref``, and that row.

    Small inputs by brute force (a k-d tree costs more to build and query than it saves).
    """
    if len(pts) * len(ref) > 40_000 or not len(ref):
        dist, near = cKDTree(ref).query(pts, k=1, p=np.inf)
        return dist, near
    dist = np.maximum(
        np.abs(pts[:, 0, None] - ref[None, :, 0]), np.abs(pts[:, 1, None] - ref[None, :, 1])
    )
    near = dist.argmin(axis=1)
    return dist[np.arange(len(pts)), near], near


def _any_close(pts: np.ndarray) -> bool:
    """Whether two distinct rows of ``pts`` lie within :data:`SNAP_TOL` (Chebyshev) of each
    other."""
    close = (
        np.maximum(
            np.abs(pts[:, None, 0] - pts[None, :, 0]), np.abs(pts[:, None, 1] - pts[None, :, 1])
        )
        <= SNAP_TOL
    )
    return int(np.count_nonzero(close)) > len(pts)  # the diagonal is always close


def _snap_vertices(pieces: np.ndarray, ref: np.ndarray) -> tuple[list, np.ndarray | None]:
    """Make the pieces' vertices agree with each other and with the neighbours.

    Vertices within :data:`SNAP_TOL` of a reference vertex move onto it, and new vertices
    within it of each other become one, alike in every piece (GEOS's snap is not symmetric
    between two pieces). A cut grazing a needle of the atom would otherwise leave twins
    1e-10 m apart that break the coverage. Needle pieces left over are dropped.

    Also returns the pieces' distinct vertices that are no reference vertex (sorted), when
    every piece came through valid and kept (their vertices are then exactly the snapped
    ones, repeats removed), else None.
    """
    coords = shapely.get_coordinates(pieces)
    dist, near = _nearest(coords, ref)
    hit = dist <= SNAP_TOL
    coords[hit] = ref[near[hit]]
    new = unique_rows(coords[~hit])
    merged = False
    if len(new) > 1 and _any_close(new):
        merged = True
        rep = np.arange(len(new))
        for i in range(1, len(new)):
            close = np.flatnonzero(np.abs(new[:i] - new[i]).max(axis=1) <= SNAP_TOL)
            if len(close):
                rep[i] = rep[close[0]]
        pos = {tuple(v): new[rep[i]] for i, v in enumerate(new)}
        for k in np.flatnonzero(~hit):
            coords[k] = pos[tuple(coords[k])]
    out = np.asarray(pieces, dtype=object).copy()
    shapely.lib.set_coordinates(out, coords)
    out = shapely.lib.remove_repeated_points(out, 0.0)
    bad = ~shapely.lib.is_valid(out)
    clean = not bad.any()
    if not clean:
        out[bad] = shapely.make_valid(out[bad])
        out = shapely.get_parts(out)
    keep = (shapely.lib.get_type_id(out) == 3) & (shapely.lib.area(out) > 1e-6)
    far = None
    if clean and keep.all():
        far = unique_rows(coords[~hit]) if merged else new
    return list(out[keep]), far


def unique_rows(a: np.ndarray) -> np.ndarray:
    """The distinct rows of an (n, 2) array, sorted (``np.unique(a, axis=0)``, faster)."""
    if len(a) <= 1:
        return a.reshape(-1, 2)
    s = a[np.lexsort((a[:, 1], a[:, 0]))]
    keep = np.ones(len(s), dtype=bool)
    keep[1:] = np.any(s[1:] != s[:-1], axis=1)
    return s[keep]


def union_atoms(geoms: list):
    """Union of atoms: the fast coverage union, or a full overlay if the coverage is off."""
    arr = np.asarray(geoms, dtype=object)
    try:
        out = shapely.coverage_union_all(arr)
    except shapely.errors.GEOSException:
        out = shapely.union_all(arr)
    parts = shapely.get_parts(out)
    return parts[0] if len(parts) == 1 and parts[0].geom_type == "Polygon" else out


def _ring_coords(g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates of the polygons' rings, each coordinate's ring and each ring's polygon.

    Without holes a polygon's coordinates are its one ring's, so ``shapely.get_rings`` (which
    builds a geometry per ring) is skipped.
    """
    if (
        len(g)
        and ((shapely.lib.get_type_id(g) == 3) & (shapely.lib.get_num_interior_rings(g) == 0)).all()
    ):
        coords, cidx = shapely.get_coordinates(g, return_index=True)
        return coords, cidx, np.arange(len(g))
    rings, ridx = shapely.get_rings(g, return_index=True)
    coords, cidx = shapely.get_coordinates(rings, return_index=True)
    return coords, cidx, ridx


def polygon_props(
    geoms: list | np.ndarray, origin: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Area, perimeter, centroid and central second moments of polygons (exact, vectorised)."""
    m = len(geoms)
    g = shapely.orient_polygons(np.asarray(geoms, dtype=object))
    coords, cidx, ridx = _ring_coords(g)
    coords = coords - origin
    same = cidx[1:] == cidx[:-1]
    x0, y0 = coords[:-1][same].T
    x1, y1 = coords[1:][same].T
    owner = ridx[cidx[:-1][same]]
    cr = x0 * y1 - x1 * y0
    area = np.bincount(owner, cr, m) / 2.0
    sx = np.bincount(owner, cr * (x0 + x1), m) / 6.0
    sy = np.bincount(owner, cr * (y0 + y1), m) / 6.0
    ixx = np.bincount(owner, cr * (x0 * x0 + x0 * x1 + x1 * x1), m) / 12.0
    iyy = np.bincount(owner, cr * (y0 * y0 + y0 * y1 + y1 * y1), m) / 12.0
    ixy = np.bincount(owner, cr * (x0 * y1 + 2 * x0 * y0 + 2 * x1 * y1 + x1 * y0), m) / 24.0
    safe = np.where(area > 0, area, 1.0)
    cx, cy = sx / safe, sy / safe
    mom = np.column_stack([ixx - area * cx * cx, iyy - area * cy * cy, ixy - area * cx * cy])
    return area, shapely.length(g), np.column_stack([cx, cy]), mom


def shared_lengths(geoms: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i, j, length) of polygons sharing edges, found by hashing identical segments."""
    coords, cidx, ridx = _ring_coords(np.asarray(geoms, dtype=object))
    same = cidx[1:] == cidx[:-1]
    owner = ridx[cidx[:-1][same]]
    ax, ay = coords[:-1, 0][same], coords[:-1, 1][same]
    bx, by = coords[1:, 0][same], coords[1:, 1][same]
    swap = (ax > bx) | ((ax == bx) & (ay > by))
    px, py = np.where(swap, bx, ax), np.where(swap, by, ay)
    qx, qy = np.where(swap, ax, bx), np.where(swap, ay, by)
    order = np.lexsort((qy, qx, py, px))
    px, py, qx, qy, o = px[order], py[order], qx[order], qy[order], owner[order]
    eq = (
        (px[1:] == px[:-1])
        & (py[1:] == py[:-1])
        & (qx[1:] == qx[:-1])
        & (qy[1:] == qy[:-1])
        & (o[1:] != o[:-1])
    )
    return o[:-1][eq], o[1:][eq], np.hypot(qx[:-1][eq] - px[:-1][eq], qy[:-1][eq] - py[:-1][eq])
