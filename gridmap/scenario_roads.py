"""Land and roads of the synthetic scenario (pure): river strip, villages, road network.

The land of each district is the district minus a strip along the Yangtze. Roads are a warped
street grid over the urban masks, trunk roads between centres and village roads on Delaunay
spanning trees, clipped to each district's land, plus two bridges; all noded and split into
edges whose end nodes are shared by coordinate (:func:`_road_table`). Part of
:mod:`gridmap.scenario`; the order of random draws is part of the committed output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree
from scipy.spatial import Delaunay, cKDTree

from gridmap.scenario_base import (
    _RANK,
    BRIDGES,
    CENTRES,
    GRID_SYSTEMS,
    MAXSPEED,
    RIVER_HALF_WIDTH_M,
    RURAL_HH,
    ScenarioConfig,
    _centres_m,
    _densify,
    _line_parts,
    _m,
    _w,
    _warp_fn,
    _xy_m,
)


def _land(districts: gpd.GeoDataFrame) -> tuple[dict[str, Any], Any]:
    """Metric land polygon per district (district minus the river strip), and the river line."""
    geoms = dict(zip(districts["code"], districts.geometry, strict=True))
    city = shapely.union(geoms["420502"], geoms["420503"])
    city_river = shapely.line_merge(shapely.intersection(geoms["420504"].boundary, city.boundary))
    ring = np.asarray(shapely.get_exterior_ring(shapely.get_geometry(geoms["420505"], 0)).coords)
    ring = ring[:-1]
    i0 = int(np.argmin(np.hypot(ring[:, 0] - 111.3788, ring[:, 1] - 30.5986)))
    i1 = int(np.argmin(ring[:, 1]))  # southern tip
    a, b = sorted((i0, i1))
    paths = [ring[a : b + 1], np.vstack([ring[b:], ring[: a + 1]])]
    west_bank = shapely.LineString(min(paths, key=lambda p: float(p[:, 0].mean())))
    rivers = _m(np.array([city_river, west_bank], dtype=object))
    strip = shapely.union_all(shapely.buffer(rivers, RIVER_HALF_WIDTH_M))
    land = {c: shapely.difference(_m(g), strip) for c, g in geoms.items()}
    return land, rivers[0]


def _villages(
    land: dict[str, Any], rng: np.random.Generator
) -> dict[str, list[tuple[float, float, int]]]:
    """Village centres (x, y, households at scale 1) on rural land of each district."""
    out: dict[str, list[tuple[float, float, int]]] = {}
    cxy = _xy_m([c.lon for c in CENTRES], [c.lat for c in CENTRES])
    sig = np.array([c.sigma_m for c in CENTRES])
    for code in sorted(land):
        inner = shapely.buffer(land[code], -150.0)
        shapely.prepare(inner)
        x0, y0, x1, y1 = inner.bounds
        found: list[tuple[float, float, int]] = []
        left, excl, fails = RURAL_HH[code], 2.5, 0
        while left > 0:
            x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
            d_c = np.hypot(cxy[:, 0] - x, cxy[:, 1] - y)
            ok = bool(shapely.contains_xy(inner, x, y)) and bool(np.all(d_c > excl * sig + 300))
            ok = ok and all(math.hypot(x - vx, y - vy) > 900 for vx, vy, _ in found)
            if not ok:
                fails += 1
                if fails % 3000 == 0:
                    excl *= 0.9
                if fails > 300_000:
                    raise RuntimeError(f"{code}: no room left for villages")
                continue
            hh = min(left, int(rng.integers(60, 360)))
            found.append((float(x), float(y), hh))
            left -= hh
        out[code] = found
    return out


def _grid_roads(
    minor: Any, main: Any, theta: float, rng: np.random.Generator
) -> list[tuple[Any, str]]:
    """A jittered, warped grid over ``main`` (minor roads only inside ``minor``)."""
    if main.is_empty:
        return []
    t = math.radians(theta)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    u0, v0, u1, v1 = shapely.transform(main, lambda c: c @ rot).bounds  # c @ rot == rotate by -t
    warp = _warp_fn(rng, 90.0, (1200.0, 3500.0))
    out: list[tuple[Any, str]] = []
    for axis, lo, hi, olo, ohi in ((0, u0, u1, v0, v1), (1, v0, v1, u0, u1)):
        p, k = lo - rng.uniform(0, 500), 0
        along = np.arange(olo - 200, ohi + 240, 40.0)
        while p < hi + 500:
            pos = [(p + rng.uniform(-50, 50), "primary" if k % 3 == 0 else "secondary")]
            n_minor = int(rng.integers(1, 3))
            pos += [
                (pos[0][0] + j * 500 / (n_minor + 1) + rng.uniform(-20, 20), "residential")
                for j in range(1, n_minor + 1)
            ]
            for q, cls in pos:
                uv = np.column_stack([np.full_like(along, q), along][:: 1 if axis == 0 else -1])
                line = shapely.LineString(warp(uv @ rot.T))
                out.append(
                    (shapely.intersection(line, minor if cls == "residential" else main), cls)
                )
            p, k = p + 500, k + 1
    return out


def _link_roads(
    xy: np.ndarray,
    area: Any,
    cls: str,
    rng: np.random.Generator,
    skip: Callable[[int, int], bool] = lambda i, j: False,
    extra: float = 0.15,
    min_len: float = 0.0,
) -> list[tuple[Any, str]]:
    """Curvy roads between points: a spanning tree of feasible Delaunay links plus a few more."""
    if len(xy) < 2:
        return []
    pairs = {(0, 1)} if len(xy) == 2 else set()
    if len(xy) > 2:
        for s in Delaunay(xy).simplices:
            for a, b in ((s[0], s[1]), (s[1], s[2]), (s[0], s[2])):
                pairs.add((int(min(a, b)), int(max(a, b))))
    warp = _warp_fn(rng, 120.0, (2500.0, 7000.0))
    shapely.prepare(area)
    cand = []
    for i, j in sorted(pairs):
        if skip(i, j):
            continue
        line = shapely.LineString(warp(_densify(xy[i], xy[j], 60.0)))
        if line.length >= min_len and area.contains(line):
            cand.append((i, j, line))
    if not cand:
        return []
    w = np.array([c[2].length for c in cand])
    g = coo_matrix((w, ([c[0] for c in cand], [c[1] for c in cand])), shape=(len(xy),) * 2)
    tree = minimum_spanning_tree(g.tocsr()).tocoo()
    in_tree = set(zip(tree.row.tolist(), tree.col.tolist(), strict=True))
    rest = sorted(
        (k for k, c in enumerate(cand) if (c[0], c[1]) not in in_tree), key=lambda k: w[k]
    )
    keep = [k for k, c in enumerate(cand) if (c[0], c[1]) in in_tree]
    keep += rest[: int(extra * len(rest))]
    return [(cand[k][2], cls) for k in sorted(keep)]


def _bridges(river: Any) -> list[tuple[Any, str]]:
    out = []
    for lon, lat in BRIDGES:
        s = river.project(shapely.points(_xy_m([lon], [lat])[0]))
        p0, p1 = (np.asarray(river.interpolate(s + d).coords[0]) for d in (-50.0, 50.0))
        n = np.array([p0[1] - p1[1], p1[0] - p0[0]]) / np.hypot(*(p1 - p0))
        c = (p0 + p1) / 2
        half = RIVER_HALF_WIDTH_M + 350
        out.append((shapely.LineString(_densify(c - half * n, c + half * n, 50.0)), "primary"))
    return out


def _roads(
    land: dict[str, Any],
    river: Any,
    villages: Mapping[str, list[tuple[float, float, int]]],
    cfg: ScenarioConfig,
    rng: np.random.Generator,
) -> gpd.GeoDataFrame:
    """Road edges (EPSG:4326) with consistent node ids."""
    sources: list[tuple[Any, str]] = []
    for codes, theta in GRID_SYSTEMS:
        masks = []
        for code in codes:
            cs, cxy = _centres_m(code)
            sig = np.array([c.sigma_m for c in cs])
            pts = shapely.points(cxy)
            masks.append(
                (
                    shapely.union_all(shapely.buffer(pts, 2.2 * sig)),
                    shapely.union_all(shapely.buffer(pts, 3.0 * sig + 300)),
                )
            )
        sources += _grid_roads(
            shapely.union_all([m[0] for m in masks]),
            shapely.union_all([m[1] for m in masks]),
            theta,
            rng,
        )
    city = GRID_SYSTEMS[0][0]
    for group in (("420502", "420503", "420505"), ("420504",)):  # trunks between towns
        in_city = np.array([c.district in city for c in CENTRES if c.district in group])
        cxy = np.vstack([_centres_m(c)[1] for c in group])
        area = shapely.buffer(shapely.union_all([land[c] for c in group]), 1.0)

        def both_city(i: int, j: int, flag: np.ndarray = in_city) -> bool:
            return bool(flag[i] and flag[j])  # the street grid links these already

        sources += _link_roads(cxy, area, "primary", rng, skip=both_city, extra=0.3, min_len=3000.0)
    for code in sorted(villages):
        cxy = _centres_m(code)[1]
        n_c = len(cxy)
        xy = np.vstack([cxy, np.array([v[:2] for v in villages[code]]).reshape(-1, 2)])

        def both_towns(i: int, j: int, n: int = n_c) -> bool:
            return i < n and j < n  # towns are linked by the trunk roads

        sources += _link_roads(xy, land[code], "secondary", rng, skip=both_towns)
    pieces: list[tuple[Any, str]] = []
    for code in sorted(land):
        clipped = shapely.intersection(np.array([g for g, _ in sources], dtype=object), land[code])
        for g, (_, cls) in zip(clipped, sources, strict=True):
            pieces += [(p, cls) for p in _line_parts(g)]
    pieces += _bridges(river)
    geoms = np.array([g for g, _ in pieces], dtype=object)
    rank = np.array([_RANK[c] for _, c in pieces])
    edges = np.array(_line_parts(shapely.union_all(geoms)), dtype=object)
    mid = shapely.line_interpolate_point(edges, 0.5, normalized=True)
    e_idx, s_idx = shapely.STRtree(geoms).query(mid, predicate="dwithin", distance=0.05)
    best = np.full(len(edges), -1)
    np.maximum.at(best, e_idx, rank[s_idx])
    best[best < 0] = 0
    drop = (best == 0) & (rng.random(len(edges)) < cfg.residential_drop)
    edges, best = edges[~drop], best[~drop]
    edges = _w(shapely.simplify(edges, 0.5))
    return _road_table(edges, best)


def _road_table(edges: np.ndarray, rank: np.ndarray) -> gpd.GeoDataFrame:
    """Round to 6 decimals, merge end nodes closer than 1 m, drop tiny components, number all."""
    coords = [np.round(shapely.get_coordinates(e), 6) for e in edges]
    ends = np.array([[c[0], c[-1]] for c in coords]).reshape(-1, 2)
    keys, inv = np.unique(ends, axis=0, return_inverse=True)
    inv = inv.ravel()
    keys_m = _xy_m(keys[:, 0], keys[:, 1])
    pairs = cKDTree(keys_m).query_pairs(1.0, output_type="ndarray")
    n = len(keys)
    g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, lab = connected_components(g, directed=False)
    first = np.full(lab.max() + 1, n)
    np.minimum.at(first, lab, np.arange(n))
    canon = first[lab][inv].reshape(-1, 2)  # canonical key index per edge end
    rows: dict[tuple[Any, ...], tuple[int, int, np.ndarray, int]] = {}
    for k, c in enumerate(coords):
        a, b = int(canon[k, 0]), int(canon[k, 1])
        if a == b:
            continue
        c = c.copy()
        c[0], c[-1] = keys[a], keys[b]
        c = c[np.r_[True, np.any(np.diff(c, axis=0) != 0, axis=1)]]
        if a > b:
            a, b, c = b, a, c[::-1]
        key = (a, b, c.tobytes())
        if key not in rows or rows[key][3] < int(rank[k]):  # exact twins: keep one
            rows[key] = (a, b, c, int(rank[k]))
    items = [rows[k] for k in sorted(rows)]
    lines = np.array([shapely.LineString(it[2]) for it in items], dtype=object)
    length = shapely.length(_m(lines))
    src = np.array([it[0] for it in items])
    dst = np.array([it[1] for it in items])
    used = np.unique(np.r_[src, dst])
    remap = {int(u): i for i, u in enumerate(used)}
    s2 = np.array([remap[int(s)] for s in src])
    d2 = np.array([remap[int(d)] for d in dst])
    g = coo_matrix((np.ones(len(s2)), (s2, d2)), shape=(len(used),) * 2)
    _, comp = connected_components(g, directed=False)
    comp_len = np.bincount(comp[s2], weights=length)
    keep = comp_len[comp[s2]] >= 1500.0
    # node ids: 1.. in (lon, lat) order of the canonical coordinates kept
    kept_nodes = np.unique(np.r_[src[keep], dst[keep]])
    node_id = {int(u): i + 1 for i, u in enumerate(kept_nodes)}  # keys are sorted already
    classes = ["residential", "secondary", "primary"]
    recs = []
    for e in np.flatnonzero(keep):
        n_a, n_b, _, r = items[e]
        cls = classes[r]
        recs.append(
            {
                "source": node_id[n_a],
                "target": node_id[n_b],
                "length_m": round(float(length[e]), 1),
                "class": cls,
                "maxspeed_kmh": MAXSPEED[cls],
                "geometry": lines[e],
            }
        )
    recs.sort(key=lambda r: (r["source"], r["target"]))
    gdf = gpd.GeoDataFrame(recs, geometry="geometry", crs="EPSG:4326")
    gdf.insert(0, "id", np.arange(1, len(gdf) + 1))
    return gdf
