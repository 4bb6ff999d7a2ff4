"""Blocks: a community part cut by the roads that cross it, the first atoms of the gridder.

The part's boundary and the roads are noded together on a micrometre grid (snap rounding, so no
needles or near-twin vertices) and polygonized; dangles drop out. Roads are erased around unit
points and footprints first, so no unit lies on a block edge and no building is split. Slivers
(a road running along the community edge, dual carriageways) join a neighbour.
"""

from __future__ import annotations

import numpy as np
import shapely
from scipy.spatial import cKDTree
from shapely.geometry import Polygon

from gridmap.gridding_atoms import (
    Atoms,
    UnitSet,
    polygon_props,
    shared_lengths,
    union_atoms,
    unique_rows,
)

__all__ = ["build_atoms"]

THIN_WIDTH = 6.0  # m: faces narrower than this (2·area/perimeter) are merged into a neighbour
SMALL_AREA = 50.0  # m²: faces smaller than this are merged too
ROAD_CLEAR = 0.5  # m: roads are erased this close to a unit so no unit sits on a block edge
GRID = 1e-6  # m: precision grid of the noded blocks
EDGE_SNAP = 0.5  # m: roads this close to the community edge are snapped onto it
TWIN = 1e-3  # m: noded vertices this close but distinct send the linework to snap rounding


def _faces(part: Polygon, roads: np.ndarray | None, uset: UnitSet, idx: np.ndarray) -> list:
    """Faces of the part's boundary noded with the roads that cross it (dangles drop out)."""
    if roads is None or len(roads) == 0:
        return [part]
    minx, miny, maxx, maxy = part.bounds
    rb = shapely.bounds(roads)
    near = roads[(rb[:, 0] <= maxx) & (rb[:, 2] >= minx) & (rb[:, 1] <= maxy) & (rb[:, 3] >= miny)]
    if len(near) == 0:
        return [part]
    shapely.prepare(part)
    near = near[shapely.intersects(part, near)]
    clipped = near.copy()  # roads well inside the part need no overlay
    cross = ~shapely.contains_properly(part, near)
    clipped[cross] = shapely.intersection(near[cross], part)
    lines = shapely.get_parts(clipped)
    lines = lines[shapely.get_type_id(lines) == 1] if len(lines) else lines
    if len(lines) == 0:
        return [part]
    lines = shapely.snap(lines, part.boundary, EDGE_SNAP)
    tree = shapely.STRtree(lines)
    obstacles = []
    if len(idx):
        pts = shapely.points(uset.xy[idx])
        close = np.unique(tree.query(pts, predicate="dwithin", distance=ROAD_CLEAR)[0])
        obstacles.extend(shapely.buffer(pts[close], ROAD_CLEAR, quad_segs=2))
    if uset.footprints is not None:
        fps = np.asarray([f for f in uset.footprints[idx] if f is not None], dtype=object)
        if len(fps):
            close = np.unique(tree.query(fps, predicate="dwithin", distance=ROAD_CLEAR)[0])
            obstacles.extend(shapely.buffer(fps[close], ROAD_CLEAR, quad_segs=2))
    linework = lines
    if obstacles:
        linework = shapely.difference(lines, shapely.union_all(obstacles))
    faces = _node_faces([part.boundary, *linework])
    if len(faces) <= 1:
        return [part]
    reps = shapely.point_on_surface(faces)
    return list(faces[shapely.contains(part, reps)])


def _node_faces(linework: list) -> np.ndarray:
    """Faces of the linework noded together.

    Floating-point noding is tried first (fast); when it leaves distinct vertices closer than
    :data:`TWIN` or an invalid face, the linework is noded again with snap rounding on a
    micrometre grid, which leaves no needles or vertex twins 1e-11 m apart.
    """
    noded = shapely.union_all(linework)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    pts = unique_rows(shapely.get_coordinates(noded))
    if len(pts) > 1 and (cKDTree(pts).query_pairs(TWIN) or not shapely.is_valid(faces).all()):
        noded = shapely.union_all(linework, grid_size=GRID)
        faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    return faces


def _root(parent: np.ndarray, a: int) -> int:
    while parent[a] != a:
        a = parent[a]
    return int(a)


def _merge_thin(faces: list) -> list:
    """Merge slivers (road along the community edge, dual carriageways) into a neighbour."""
    for _ in range(3):
        if len(faces) <= 1:
            return faces
        arr = np.asarray(faces, dtype=object)
        area, perim = shapely.area(arr), shapely.length(arr)
        thin = (2 * area / np.maximum(perim, 1e-9) < THIN_WIDTH) | (area < SMALL_AREA)
        if not thin.any():
            return faces
        i, j, ln = shared_lengths(faces)
        best = np.full(len(faces), -1)
        best_len = np.zeros(len(faces))
        for a, b, w in zip(
            np.concatenate([i, j]), np.concatenate([j, i]), np.concatenate([ln, ln]), strict=True
        ):
            if thin[a] and (w > best_len[a] or (w == best_len[a] and b < best[a])):
                best[a], best_len[a] = b, w
        parent = np.arange(len(faces))
        for a in np.argsort(area, kind="stable"):
            if thin[a] and best[a] >= 0:
                ra, rb = _root(parent, a), _root(parent, best[a])
                if ra != rb:
                    parent[ra] = rb
        groups: dict[int, list[int]] = {}
        for a in range(len(faces)):
            groups.setdefault(_root(parent, a), []).append(a)
        merged = []
        for members in groups.values():
            if len(members) == 1:
                merged.append(faces[members[0]])
            else:
                merged.append(union_atoms(list(arr[members])))
        if len(merged) == len(faces):
            return faces
        faces = [
            shapely.get_parts(f)[0]
            if f.geom_type == "MultiPolygon" and len(shapely.get_parts(f)) == 1
            else f
            for f in merged
        ]
    return faces


def build_atoms(
    part: Polygon, roads: np.ndarray | None, uset: UnitSet, idx: np.ndarray, origin: np.ndarray
) -> Atoms:
    """Blocks of one connected part with the units ``idx`` placed in them."""
    faces = _merge_thin(_faces(part, roads, uset, idx))
    faces = [f for f in faces if f.geom_type == "Polygon"] + [
        g for f in faces if f.geom_type != "Polygon" for g in shapely.get_parts(f)
    ]
    area, perim, cen, mom = polygon_props(faces, origin)
    m = len(faces)
    owner = np.zeros(len(idx), dtype=int)
    if m > 1 and len(idx):
        tree = shapely.STRtree(np.asarray(faces, dtype=object))
        pts = shapely.points(uset.xy[idx])
        pi, fi = tree.query(pts, predicate="intersects")
        owner[:] = -1
        first = np.unique(pi, return_index=True)
        owner[first[0]] = fi[first[1]]
        lost = np.flatnonzero(owner < 0)
        if len(lost):
            owner[lost] = tree.query_nearest(pts[lost], all_matches=False)[1]
    elif len(idx):
        owner[:] = np.where(shapely.intersects_xy(faces[0], *uset.xy[idx].T), 0, -1)
        lost = np.flatnonzero(owner < 0)
        owner[lost] = 0
    if len(idx) and len(lost):
        # units outside the part count for the nearest block, placed at a point inside it
        reps = shapely.get_coordinates(
            shapely.point_on_surface(np.asarray(faces, dtype=object)[owner[lost]])
        )
        u = idx[lost]
        uset.xy[u] = reps
        uset.lo[u] = uset.hi[u] = (reps - origin) @ uset.dirs.T
    units = [idx[owner == a] for a in range(m)]
    hh = np.array([uset.hh[u].sum() for u in units], dtype=float)
    L = np.zeros((m, m))
    if m > 1:
        i, j, ln = shared_lengths(faces)
        np.add.at(L, (i, j), ln)
        np.add.at(L, (j, i), ln)
    return Atoms(
        geoms=list(faces),
        area=area,
        perim=perim,
        cen=cen,
        mom=mom,
        hh=hh,
        units=units,
        L=L,
        Lnr=np.zeros((m, m)),
        origin=origin,
        alive=[True] * m,
    )
