"""Streets and communities of the synthetic scenario (pure): the exact area coverage.

Population-balanced power diagrams (:mod:`gridmap.scenario_power`) are cut into each district,
then into each street. Cut lines are made once: where they meet the real district outline they
end at one of its vertices (the outline gains no vertex, so the coverage stays exact in any
CRS); elsewhere they end on 1e-7° grid points micrometres from the parent's edge. All lines are
noded and snap-rounded together and polygonized; fragments of a cell join the sibling sharing
the longest edge, so every area is one polygon. Part of :mod:`gridmap.scenario`.

Examples
--------
>>> x, y = _lattice_point((111.0, 30.0), (111.0300001, 30.0100003), (111.015, 30.005))
>>> bool(abs(y - 30.0 - (x - 111.0) * 0.0100003 / 0.0300001) < 1e-10)  # on the edge
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import shapely
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gridmap.scenario_base import GRID, STREETS, _line_parts, _m, _w, _xy_m
from gridmap.scenario_power import _balance, _kmeans, _power_assign, _power_edges


def _lattice_point(a: Any, b: Any, p: Any, window: int = 3000) -> tuple[float, float]:
    """A point of the 1e-7° grid strictly inside segment ``ab`` (grid ends), near ``p``.

    Of the grid columns (or rows) within ``window`` steps of ``p`` it takes the one whose nearest
    grid point lies closest to the segment's line: typically a few micrometres off it, so
    inserting it into the parent's edge changes no area measurably.
    """
    ai, bi = np.rint(np.asarray(a) / GRID).astype(np.int64), np.rint(np.asarray(b) / GRID)
    bi = bi.astype(np.int64)
    pi = np.asarray(p) / GRID
    d = bi - ai
    major = 0 if abs(d[0]) >= abs(d[1]) else 1
    minor = 1 - major
    lo = max(int(min(ai[major], bi[major])) + 1, math.floor(pi[major]) - window)
    hi = min(int(max(ai[major], bi[major])) - 1, math.floor(pi[major]) + window)
    if lo > hi or d[major] == 0:
        near = a if np.hypot(*(np.asarray(a) - p)) <= np.hypot(*(np.asarray(b) - p)) else b
        return float(near[0]), float(near[1])
    xs = np.arange(lo, hi + 1, dtype=np.int64)
    exact = (ai[minor] * d[major] + (xs - ai[major]) * d[minor]) / d[major]
    ys = np.rint(exact)
    k = int(np.argmin(np.abs(ys - exact) + 1e-6 * np.abs(xs - pi[major]) / window))
    out = [0.0, 0.0]
    out[major], out[minor] = xs[k] / 1e7, ys[k] / 1e7
    return out[0], out[1]


def _toward_vertex(
    c: np.ndarray, a: np.ndarray, b: np.ndarray, v: np.ndarray, h_m: float
) -> np.ndarray:
    """Re-end polyline ``c`` (starting on edge ``ab``) at vertex ``v``: leave ``c`` where it is
    ``h_m`` from the edge (at most 45 % along it) and go straight to ``v``."""
    if h_m <= 0:
        return np.vstack([v, c[1:]])
    kx = math.cos(math.radians(float(c[0, 1])))
    sc = c * [kx, 1.0]
    e = (b - a) * [kx, 1.0]
    nrm = np.array([-e[1], e[0]]) / np.hypot(*e)
    height = np.abs((sc - a * [kx, 1.0]) @ nrm) * 111_000.0
    cum = np.r_[0.0, np.cumsum(np.hypot(*np.diff(sc, axis=0).T))] * 111_000.0
    limit = 0.45 * cum[-1]
    j = max(1, int(np.argmax((height >= h_m) | (cum >= limit))))
    t = 1.0
    if height[j] > height[j - 1]:
        t = min(t, (h_m - height[j - 1]) / (height[j] - height[j - 1]))
    t = min(t, (limit - cum[j - 1]) / max(cum[j] - cum[j - 1], 1e-12))
    p = c[j - 1] + max(t, 0.0) * (c[j] - c[j - 1])
    return np.vstack([v, p, c[j:]] if t < 1.0 else [v, c[j:]])


def _fix_cuts(cuts: np.ndarray, region: Any, outline: Any) -> list[Any]:
    """Clip cut lines (EPSG:4326) to ``region`` and end them on grid points of its edges.

    An end on the real district ``outline`` goes to a vertex of that edge (leaving the cut up to
    200 m before the edge, so long edges get tapered strips rather than fans): the outline must
    not gain vertices, which would sit micrometres off it in degrees but centimetres off it after
    reprojection (its long edges are straight in lon/lat, not in EPSG:4546). An end on a
    synthetic edge gets a grid point micrometres from that edge. A piece that cannot stay inside
    the region is dropped (the cells on both sides then merge).
    """
    if len(cuts) == 0:
        return []
    pieces = _line_parts(shapely.intersection(cuts, region))
    rings = _line_parts(shapely.boundary(region))
    seg_a = np.vstack([np.asarray(r.coords)[:-1] for r in rings])
    seg_b = np.vstack([np.asarray(r.coords)[1:] for r in rings])
    on_outline = shapely.distance(shapely.points((seg_a + seg_b) / 2), outline) < 1e-9
    ab = seg_b - seg_a
    ab2 = (ab**2).sum(1)
    safe = shapely.buffer(region, 1e-9)
    shapely.prepare(safe)
    out = []
    for piece in pieces:
        c: np.ndarray | None = np.asarray(piece.coords)
        for _ in (0, 1):
            assert c is not None
            c = c[::-1].copy()
            t = np.clip(((c[0] - seg_a) * ab).sum(1) / ab2, 0.0, 1.0)
            dist = np.hypot(*(seg_a + t[:, None] * ab - c[0]).T)
            k = int(np.argmin(dist))
            if dist[k] >= 1e-9:
                continue
            if not on_outline[k]:
                c[0] = _lattice_point(seg_a[k], seg_b[k], c[0])
                continue
            near_a = np.hypot(*(seg_a[k] - c[0])) <= np.hypot(*(seg_b[k] - c[0]))
            verts = (seg_a[k], seg_b[k]) if near_a else (seg_b[k], seg_a[k])
            tries = (
                _toward_vertex(c, seg_a[k], seg_b[k], v, h)
                for h in (200.0, 100.0, 40.0, 0.0)
                for v in verts
            )
            c = next((x for x in tries if safe.covers(shapely.LineString(x))), None)
            if c is None:
                break
        if c is not None and (len(c) > 2 or np.any(c[0] != c[-1])):
            out.append(shapely.LineString(c))
    return out


def _faces(lines: list[Any]) -> np.ndarray:
    """Node and snap-round ``lines`` on the output grid once, then polygonize."""
    noded = shapely.union_all(np.array(lines, dtype=object), grid_size=GRID)
    return shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))


def _to_km(geoms: np.ndarray, origin: np.ndarray) -> np.ndarray:
    xy = shapely.get_coordinates(shapely.point_on_surface(geoms))
    return _xy_m(xy[:, 0], xy[:, 1]) / 1000.0 - origin


def _merge_fragments(faces: np.ndarray, owner: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Give every owner one edge-connected set of faces: fragments join the same-group
    neighbour sharing the longest edge."""
    i, j = shapely.STRtree(faces).query(faces, predicate="intersects")
    i, j = i[i < j], j[i < j]
    shared = shapely.length(
        shapely.intersection(shapely.boundary(faces[i]), shapely.boundary(faces[j]))
    )
    i, j, shared = i[shared > 0], j[shared > 0], shared[shared > 0]
    area = shapely.area(faces)
    owner = owner.copy()
    for _ in range(20):
        changed = False
        for o in np.unique(owner):
            same = (owner[i] == o) & (owner[j] == o)
            members = np.flatnonzero(owner == o)
            if len(members) < 2:
                continue
            local = {int(m): n for n, m in enumerate(members)}
            g = coo_matrix(
                (
                    np.ones(same.sum()),
                    ([local[int(x)] for x in i[same]], [local[int(x)] for x in j[same]]),
                ),
                shape=(len(members),) * 2,
            )
            n_comp, lab = connected_components(g, directed=False)
            if n_comp == 1:
                continue
            main = int(np.argmax(np.bincount(lab, area[members])))
            for comp in range(n_comp):
                if comp == main:
                    continue
                frag = set(members[lab == comp].tolist())
                votes: dict[int, float] = {}
                for a, b, s in zip(i, j, shared, strict=True):
                    for x, y in ((a, b), (b, a)):
                        if x in frag and owner[y] != o and group[y] == group[x]:
                            votes[int(owner[y])] = votes.get(int(owner[y]), 0.0) + float(s)
                if votes:
                    new = max(sorted(votes), key=lambda k: votes[k])
                    owner[list(sorted(frag))] = new
                    changed = True
        if not changed:
            return owner
    return owner


def _dissolve(faces: np.ndarray, owner: np.ndarray, n: int, what: str) -> list[Any]:
    out = []
    for o in range(n):
        poly = shapely.coverage_union_all(faces[owner == o])
        if poly.geom_type != "Polygon":
            raise RuntimeError(f"{what} {o} is {poly.geom_type}, expected one polygon")
        out.append(poly)
    return out


def _apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Largest-remainder apportionment of ``total`` seats, at least one each."""
    share = weights / weights.sum() * total
    seats = np.maximum(1, np.floor(share)).astype(int)
    while seats.sum() < total:
        seats[int(np.argmax(share - seats))] += 1
    while seats.sum() > total:
        seats[int(np.argmax(np.where(seats > 1, seats - share, -np.inf)))] -= 1
    return seats


def _cells(
    p: np.ndarray,
    mass: np.ndarray,
    init: Callable[[int], np.ndarray],
    region: Any,
    outline: Any,
    origin: np.ndarray,
    what: str,
) -> tuple[np.ndarray, np.ndarray, list[Any], np.ndarray, np.ndarray]:
    """A balanced power diagram cut into ``region`` in which every cell keeps a face.

    Returns centres, weights, the fixed cut lines, and the region's faces with their cells.
    A diagram that loses a cell (a sliver squeezed out by the outline rules) is redrawn from
    ``init(attempt)``.
    """
    for attempt in range(12):
        c, w = _balance(p, mass, init(attempt))
        cuts = _fix_cuts(_w(_power_edges(c, w, origin)), region, outline)
        faces = _faces([shapely.boundary(region), *cuts])
        owner = _power_assign(_to_km(faces, origin), c, w)
        if len(np.unique(owner)) == len(c):
            return c, w, cuts, faces, owner
    raise RuntimeError(f"{what}: no diagram keeps all {len(c)} cells")


def _district_areas(
    code: str,
    district: Any,
    hh_xy: np.ndarray,
    hh: np.ndarray,
    n_comm: int,
    rng: np.random.Generator,
) -> tuple[list[Any], list[Any], list[int]]:
    """Streets (in ``STREETS`` order) and communities (with street index) of a district."""
    d_m = _m(district)
    x0, y0, x1, y1 = d_m.bounds
    gx, gy = np.meshgrid(np.arange(x0, x1, 250.0), np.arange(y0, y1, 250.0))
    lattice = np.column_stack([gx.ravel(), gy.ravel()])
    lattice = lattice[shapely.contains_xy(d_m, lattice[:, 0], lattice[:, 1])]
    pts_m = np.vstack([hh_xy, lattice])
    hh_mass = np.r_[hh, np.zeros(len(lattice))] / hh.sum()
    area_mass = np.r_[np.zeros(len(hh_xy)), np.ones(len(lattice))] / len(lattice)
    origin = pts_m.mean(0) / 1000.0
    p = pts_m / 1000.0 - origin
    names = STREETS[code]
    c0 = _xy_m([s[2] for s in names], [s[3] for s in names]) / 1000.0 - origin
    outline = shapely.boundary(district)
    _, _, _, faces, owner = _cells(
        p,
        0.5 * hh_mass + 0.5 * area_mass,
        lambda a: c0 if a == 0 else c0 + rng.normal(0.0, 0.3, c0.shape),
        district,
        outline,
        origin,
        f"{code} streets",
    )
    owner = _merge_fragments(faces, owner, np.zeros(len(faces), int))
    streets = _dissolve(faces, owner, len(names), f"{code} street")
    # name the cells after the nearest real street locations (one-to-one)
    rep = _to_km(np.array(streets, dtype=object), origin)
    cells, name_idx = linear_sum_assignment(np.hypot(*(rep[:, None] - c0[None]).transpose(2, 0, 1)))
    streets = [streets[k] for k in cells[np.argsort(name_idx)]]
    # communities: a balanced power diagram inside each street
    mass = 0.85 * hh_mass + 0.15 * area_mass
    inside = [shapely.contains_xy(_m(s), pts_m[:, 0], pts_m[:, 1]) for s in streets]
    seats = _apportion(n_comm, np.array([mass[m].sum() for m in inside]))
    lines = [outline, *(shapely.boundary(s) for s in streets)]
    diagrams: list[tuple[np.ndarray, np.ndarray] | None] = []
    for n, (s, m, k) in enumerate(zip(streets, inside, seats, strict=True)):
        if k == 1:
            diagrams.append(None)
            continue
        pm = mass[m] / mass[m].sum()

        def init(
            _: int, pp: np.ndarray = p[m], mm: np.ndarray = pm, kk: int = int(k)
        ) -> np.ndarray:
            return _kmeans(pp, mm, kk, rng)

        cc, ww, cuts, _, _ = _cells(p[m], pm, init, s, outline, origin, f"{code} street {n}")
        diagrams.append((cc, ww))
        lines += cuts
    faces = _faces(lines)
    rep_w = shapely.point_on_surface(faces)
    rep_km = _to_km(faces, origin)
    street_of = np.full(len(faces), -1)
    for n, s in enumerate(streets):
        street_of[shapely.contains(s, rep_w)] = n
    if (street_of < 0).any():
        raise RuntimeError(f"{code}: faces outside every street")
    offset = np.r_[0, np.cumsum(seats)]
    owner = offset[street_of].copy()
    for n, dg in enumerate(diagrams):
        sel = street_of == n
        if dg is not None and sel.any():
            owner[sel] += _power_assign(rep_km[sel], dg[0], dg[1])
    owner = _merge_fragments(faces, owner, street_of)
    comms = _dissolve(faces, owner, int(seats.sum()), f"{code} community")
    parent = [int(np.searchsorted(offset, o, side="right") - 1) for o in range(int(seats.sum()))]
    return streets, comms, parent
