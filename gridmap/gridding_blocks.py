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
from shapely.geometry.base import BaseGeometry

from gridmap.gridding_atoms import (
    Atoms,
    UnitSet,
    insert_vertices,
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
    faces = _node_faces([_boundary_through(part, linework), *linework])
    if len(faces) <= 1:
        return [part]
    reps = shapely.point_on_surface(faces)
    return list(faces[shapely.contains(part, reps)])


def _boundary_through(part: Polygon, linework: np.ndarray) -> BaseGeometry:
    """The part's boundary with the road ends lying on it inserted as vertices.

    A road clipped to the part ends within ~1e-10 m of the boundary, just inside or outside;
    as a boundary vertex that end is noded exactly, without a vertex twin beside it.
    """
    parts = shapely.get_parts(linework)
    parts = parts[shapely.get_type_id(parts) == 1]
    if not len(parts):
        return part.boundary
    coords, idx = shapely.get_coordinates(parts, return_index=True)
    first = np.r_[True, idx[1:] != idx[:-1]]
    last = np.r_[idx[1:] != idx[:-1], True]
    ends = coords[first | last]
    on = shapely.dwithin(part.boundary, shapely.points(ends), GRID)
    if not on.any():
        return part.boundary
    return insert_vertices(part, ends[on]).boundary


def _node_faces(linework: list) -> np.ndarray:
    """Faces of the linework noded together.

    Floating-point noding is tried first (fast). When it leaves distinct vertices closer than
    :data:`TWIN`, a dangling end that close to another line, or an invalid face, the linework is
    noded again with snap rounding on a micrometre grid, which leaves no needles or twins.
    """
    noded = shapely.union_all(linework)
    segs = shapely.get_parts(noded)
    faces = shapely.get_parts(shapely.polygonize(segs))
    pts = unique_rows(shapely.get_coordinates(noded))
    if len(pts) > 1 and (_near_miss(segs, pts) or not shapely.is_valid(faces).all()):
        noded = shapely.union_all(linework, grid_size=GRID)
        faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    return faces


def _near_miss(segs: np.ndarray, pts: np.ndarray) -> bool:
    """Whether noded lines have vertex twins or a dangling end grazing another line."""
    if len(cKDTree(pts).query_pairs(TWIN)):
        return True
    coords, idx = shapely.get_coordinates(segs, return_index=True)
    first = np.r_[True, idx[1:] != idx[:-1]]
    last = np.r_[idx[1:] != idx[:-1], True]
    ends = coords[first | last]
    order = np.lexsort((ends[:, 1], ends[:, 0]))
    e = ends[order]
    new = np.r_[True, np.any(e[1:] != e[:-1], axis=1)]
    count = np.diff(np.r_[np.flatnonzero(new), len(e)])
    dangling = e[new][count == 1]
    if not len(dangling):
        return False
    hit, _ = shapely.STRtree(segs).query(
        shapely.points(dangling), predicate="dwithin", distance=TWIN
    )
    return bool((np.bincount(hit, minlength=len(dangling)) > 1).any())


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
