"""Synthetic Yichang scenario: streets, communities, household units and roads.

Everything generated here is SYNTHETIC; only the four district outlines it starts from are real.
The generator is pure (numpy, shapely, geopandas, scipy) and deterministic for a given
:class:`ScenarioConfig` (one seeded ``numpy.random.Generator``; no clocks, no set ordering).

Method, in order:

1. **Land.** Each district minus a strip along the Yangtze (the 点军 | 西陵/伍家岗 boundary and
   猇亭's west bank) where nothing is built.
2. **Roads.** A warped street grid (main roads every ~500 m, minor roads every ~170–250 m) over
   the urban masks, trunk roads between centres and village roads on Delaunay spanning trees,
   clipped to each district's land; two bridges; noded and split into edges whose end nodes are
   shared by coordinate.
3. **Household units.** Towers (40–200 households) around Gaussian core centres, low-rise (5–30)
   around them, rural houses (1–3) in village clusters; rejection sampling on land, off the roads,
   with a minimum spacing (15 m; 20 m for low-rise; 35 m for towers).
4. **Streets and communities.** Population-balanced power diagrams (weighted Voronoi): streets
   balance households and area inside each district, communities balance households (and a little
   area) inside each street. Cut lines are made once. Where they meet the real district outline
   they end at one of its vertices, so the outline gains no vertex and the coverage stays exact in
   any CRS (a vertex added on a 3 km edge that is straight in lon/lat lies ~10 cm off that edge in
   EPSG:4546); elsewhere they end on 1e-7° grid points micrometres from the parent's edge. All
   lines are noded and snap-rounded together and polygonized: an exact coverage at 7 decimals.
   Fragments of a cell join the sibling sharing the longest edge, so every area is one polygon.

Examples
--------
>>> ScenarioConfig().communities["420502"]
50
>>> x, y = _lattice_point((111.0, 30.0), (111.0300001, 30.0100003), (111.015, 30.005))
>>> bool(abs(y - 30.0 - (x - 111.0) * 0.0100003 / 0.0300001) < 1e-10)  # on the edge
True
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import geopandas as gpd
import numpy as np
import shapely
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree
from scipy.spatial import ConvexHull, Delaunay, cKDTree

from gridmap.crs import from_wgs84, to_wgs84, transform_geometry

__all__ = [
    "CENTRES",
    "STREETS",
    "Scenario",
    "ScenarioConfig",
    "generate_scenario",
    "load_districts",
    "write_scenario",
]

METRIC = "EPSG:4546"  # CGCS2000 3° Gauss-Krüger, CM 111°E: Yichang's local metric CRS
GRID = 1e-7  # grid of the area coverage in degrees (7 decimals, ~1 cm)
RIVER_HALF_WIDTH_M = 250.0
EDGE_CLEARANCE_M = 3.0  # household points keep this far from their community's boundary


class Centre(NamedTuple):
    """A settlement centre: households in towers and in low-rise buildings around it."""

    district: str
    lon: float
    lat: float
    sigma_m: float
    tower_hh: int
    low_hh: int


# Core and town centres placed on the real outlines (old city on 西陵's river front, 伍家岗 along
# the Yangtze to the south-east, 点军's town across the river, 猇亭's riverside towns).
CENTRES: tuple[Centre, ...] = (
    Centre("420502", 111.290, 30.701, 900, 30000, 7000),
    Centre("420502", 111.306, 30.710, 900, 25000, 7000),
    Centre("420502", 111.320, 30.722, 800, 15000, 7000),
    Centre("420502", 111.284, 30.724, 700, 12000, 6000),
    Centre("420502", 111.340, 30.712, 1000, 5000, 8000),
    Centre("420503", 111.305, 30.683, 800, 15000, 4000),
    Centre("420503", 111.327, 30.676, 900, 18000, 6000),
    Centre("420503", 111.343, 30.660, 900, 12000, 6000),
    Centre("420503", 111.365, 30.650, 1000, 8000, 8000),
    Centre("420503", 111.405, 30.640, 1500, 0, 9000),
    Centre("420504", 111.268, 30.683, 900, 2000, 9000),
    Centre("420504", 111.312, 30.628, 600, 0, 3000),
    Centre("420504", 111.060, 30.690, 400, 0, 1000),
    Centre("420504", 111.195, 30.613, 400, 0, 1000),
    Centre("420504", 111.190, 30.728, 400, 0, 1000),
    Centre("420505", 111.405, 30.570, 900, 3000, 6000),
    Centre("420505", 111.418, 30.612, 700, 2000, 4000),
    Centre("420505", 111.450, 30.520, 800, 1000, 4000),
)
RURAL_HH = {"420502": 3000, "420503": 5000, "420504": 14000, "420505": 12000}

# (code suffix, name, approximate real location). Suffixes follow the statistical division codes
# (街道 001–099, 镇 100–199, 乡 200–399); locations only decide which synthetic cell gets a name.
STREETS: dict[str, tuple[tuple[str, str, float, float], ...]] = {
    "420502": (
        ("001", "西陵街道", 111.292, 30.700),
        ("002", "学院街道", 111.305, 30.712),
        ("003", "云集街道", 111.318, 30.700),
        ("004", "西坝街道", 111.272, 30.722),
        ("005", "葛洲坝街道", 111.285, 30.732),
        ("006", "夜明珠街道", 111.320, 30.724),
        ("007", "窑湾街道", 111.342, 30.738),
    ),
    "420503": (
        ("001", "大公桥街道", 111.306, 30.684),
        ("002", "万寿桥街道", 111.325, 30.680),
        ("003", "宝塔河街道", 111.340, 30.663),
        ("004", "伍家岗街道", 111.362, 30.652),
        ("200", "伍家乡", 111.420, 30.645),
    ),
    "420504": (
        ("001", "点军街道", 111.270, 30.683),
        ("100", "桥边镇", 111.050, 30.690),
        ("101", "艾家镇", 111.310, 30.625),
        ("200", "土城乡", 111.190, 30.616),
        ("201", "联棚乡", 111.190, 30.730),
    ),
    "420505": (
        ("001", "古老背街道", 111.405, 30.565),
        ("002", "虎牙街道", 111.420, 30.612),
        ("003", "云池街道", 111.455, 30.515),
    ),
}
# Districts sharing one street grid and its orientation (degrees from east, ~along the Yangtze).
GRID_SYSTEMS = ((("420502", "420503"), -49.0), (("420504",), -40.0), (("420505",), -69.0))
BRIDGES = ((111.282, 30.691), (111.318, 30.662))  # near 夷陵长江大桥 and 至喜长江大桥
MAXSPEED = {"primary": 60, "secondary": 40, "residential": 30}
_RANK = {"residential": 0, "secondary": 1, "primary": 2}
# kind: (min spacing m, residents per household low, high)
_KINDS = {"tower": (35.0, 2.25, 2.85), "low": (20.0, 2.4, 3.1), "rural": (15.2, 2.6, 3.6)}

# community name stems (社区) and village name parts (X家Y村), split where used
_URBAN_STEMS = (
    "解放路 珍珠路 南湖 铁路坝 胜利四路 桃花岭 东山 隆中路 绿萝路 庙嘴 福绥路 滨江 长江 果园 "
    "北山坡 环城北路 石板溪 中南路 西湖 夷陵路 沿江 镇川门 杨岔路 黄河路 樵湖 东湖 北门 紫阳 "
    "望洲岗 桔城路 白沙路 花艳 伍临路 城东 东艳路 共联 岳家湾 南苑 东苑 港窑路 汉宜 白龙 合益 "
    "求索 临江溪 桃园 乐天溪 三江 江南 红星路 柏临河 枫林 翠屏 金东山 尚书 东站 沙河 桃子冲 "
    "朱市街 五龙 福星 海宁 中心路 长虹 光明 幸福 和平 新华 建设 文化 大桥 前坪 金桥 兴发 清江 "
    "龙泉 高湖 运河 联合 丁家坝 常刘路 平湖 西山 水陆 得胜街 学堂坡 云台 天然塔 四方堰 北苑 "
    "青岛路 怡康 万福 荆州路 安宁 新港 紫云 锦绣 春晖 盛世 天宝 南津关 峡州 红光 康庄 陶珠 "
    "江城 晓溪 绿洲 东风 秀水"
)
_SURNAMES = (
    "王李张刘陈杨黄赵周吴徐孙朱马胡郭何高林罗郑梁谢宋唐许邓冯韩曹曾彭萧蔡潘田董袁于余叶蒋杜苏"
    "魏程吕丁沈任姚卢傅钟姜崔谭廖范汪陆金石戴贾韦夏邱方侯邹熊孟秦白江薛尹段雷黎史龙陶贺顾毛郝"
    "龚邵万"
)
_TERRAIN = "湾坪冲岭河坡垭畈岗溪台沟嘴桥铺店"


@dataclass(frozen=True)
class ScenarioConfig:
    """Knobs of the generator. ``scale`` multiplies every household quota (tests use < 1)."""

    seed: int = 20240611
    scale: float = 1.0
    communities: Mapping[str, int] = field(
        default_factory=lambda: {"420502": 50, "420503": 38, "420504": 18, "420505": 15}
    )
    residential_drop: float = 0.12  # share of minor road edges removed so the grid looks organic


class Scenario(NamedTuple):
    """The generated layers, all in EPSG:4326."""

    streets: gpd.GeoDataFrame
    communities: gpd.GeoDataFrame
    households: gpd.GeoDataFrame
    roads: gpd.GeoDataFrame


def load_districts(path: str | Path) -> gpd.GeoDataFrame:
    """Read the district outlines (EPSG:4326), sorted by code."""
    gdf = gpd.read_file(path)
    if gdf.crs is None or gdf.crs.to_epsg() != 4326:
        raise ValueError(f"{path}: expected EPSG:4326, got {gdf.crs}")
    return gdf.sort_values("code").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# helpers


def _m(geom: Any) -> Any:
    return transform_geometry(geom, "wgs84", METRIC)


def _w(geom: Any) -> Any:
    return transform_geometry(geom, METRIC, "wgs84")


def _xy_m(lon: Any, lat: Any) -> np.ndarray:
    return np.column_stack(from_wgs84(lon, lat, METRIC))


def _line_parts(geoms: Any) -> list[Any]:
    """All non-empty LineStrings inside ``geoms`` (any geometry or array of them)."""
    parts = shapely.get_parts(np.atleast_1d(np.asarray(geoms, dtype=object)))
    while True:
        nested = shapely.get_num_geometries(parts) > 1
        nested |= np.isin(shapely.get_type_id(parts), (5, 7))  # multi-line, collection
        if not nested.any():
            break
        parts = np.concatenate([parts[~nested], shapely.get_parts(parts[nested])])
    keep = (shapely.get_type_id(parts) == 1) & (shapely.length(parts) > 0)
    return list(parts[keep])


def _warp_fn(
    rng: np.random.Generator, amp: float, wavelength: tuple[float, float]
) -> Callable[[np.ndarray], np.ndarray]:
    """A smooth random displacement field (a few plane waves) that makes straight lines organic."""
    waves = [
        (
            axis,
            rng.uniform(0, 2 * math.pi),
            2 * math.pi / rng.uniform(*wavelength),
            rng.uniform(0, 2 * math.pi),
        )
        for axis in (0, 0, 0, 1, 1, 1)
    ]

    def apply(xy: np.ndarray) -> np.ndarray:
        out = xy.copy()
        for axis, ang, k, ph in waves:
            s = xy[:, 0] * math.cos(ang) + xy[:, 1] * math.sin(ang)
            out[:, axis] += amp / 3 * np.sin(k * s + ph)
        return out

    return apply


def _densify(a: np.ndarray, b: np.ndarray, step: float) -> np.ndarray:
    n = max(2, math.ceil(float(np.hypot(*(b - a))) / step) + 1)
    t = np.linspace(0.0, 1.0, n)[:, None]
    return a + t * (b - a)


# --------------------------------------------------------------------------------------------
# land, villages, roads


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


def _centres_m(code: str) -> tuple[list[Centre], np.ndarray]:
    cs = [c for c in CENTRES if c.district == code]
    return cs, _xy_m([c.lon for c in cs], [c.lat for c in cs])


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


# --------------------------------------------------------------------------------------------
# household units


def _building(kind: str, rng: np.random.Generator) -> int:
    if kind == "tower":
        return 40 + int(rng.beta(1.3, 2.2) * 160.999)
    if kind == "low":
        return 5 + int(25.999 * rng.random() ** 1.6)
    return int(rng.choice((1, 2, 3), p=(0.3, 0.5, 0.2)))


def _households(
    land: dict[str, Any],
    villages: Mapping[str, list[tuple[float, float, int]]],
    roads_m: np.ndarray,
    cfg: ScenarioConfig,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Building points (metric) with households, residents, kind and district."""
    tree = shapely.STRtree(roads_m)
    cell = 35.0
    taken: dict[tuple[int, int], list[tuple[float, float, float]]] = {}

    def free(x: float, y: float, sp: float) -> bool:
        ix, iy = int(x // cell), int(y // cell)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for ox, oy, osp in taken.get((ix + dx, iy + dy), ()):
                    if (ox - x) ** 2 + (oy - y) ** 2 < max(sp, osp) ** 2:
                        return False
        return True

    rows: list[tuple[float, float, int, str, str]] = []
    for code in sorted(land):
        poly = land[code]
        shapely.prepare(poly)
        cs, cxy = _centres_m(code)
        sources = []
        for c, xy in zip(cs, cxy, strict=True):
            sources += [
                ("tower", xy, 0.8 * c.sigma_m, c.tower_hh),
                ("low", xy, 1.6 * c.sigma_m, c.low_hh),
            ]
        sources += [
            ("rural", np.array([vx, vy]), 60 + 7 * math.sqrt(hh), hh)
            for vx, vy, hh in villages[code]
        ]
        for kind, xy, sigma, quota in sources:
            left, sig, idle, sp = round(quota * cfg.scale), sigma, 0, _KINDS[kind][0]
            while left > 0:
                cand = xy + rng.normal(0.0, sig, (128, 2))
                ok = shapely.contains_xy(poly, cand[:, 0], cand[:, 1])
                if ok.any():
                    idx = np.flatnonzero(ok)
                    near = tree.query(
                        shapely.points(cand[idx]), predicate="dwithin", distance=12.0
                    )[0]
                    ok[idx[np.unique(near)]] = False
                placed = 0
                for x, y in cand[ok].tolist():
                    if not free(x, y, sp):
                        continue
                    size = _building(kind, rng)
                    taken.setdefault((int(x // cell), int(y // cell)), []).append((x, y, sp))
                    rows.append((x, y, size, kind, code))
                    left, placed = left - size, placed + 1
                    if left <= 0:
                        break
                idle = 0 if placed else idle + 1
                if idle >= 20:  # saturated: widen the kernel
                    sig, idle = sig * 1.25, 0
                    if sig > 50_000:
                        raise RuntimeError(f"{code}: no room left for {kind} buildings")
    out = {
        k: np.array([r[n] for r in rows])
        for n, k in enumerate(("x", "y", "hh", "kind", "district"))
    }
    lo = np.array([_KINDS[k][1] for k in out["kind"]])
    hi = np.array([_KINDS[k][2] for k in out["kind"]])
    out["res"] = np.maximum(out["hh"], np.rint(out["hh"] * rng.uniform(lo, hi))).astype(int)
    return out


# --------------------------------------------------------------------------------------------
# balanced power diagrams and the exact coverage


def _power_assign(p: np.ndarray, c: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Index of the power cell of each point: argmin |p - c|² - w (|p|² dropped)."""
    return np.argmin((c**2).sum(1) - w - 2.0 * (p @ c.T), axis=1)


def _kmeans(p: np.ndarray, mass: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Weighted k-means++ seeding and a few Lloyd steps."""
    c = [p[rng.choice(len(p), p=mass)]]
    for _ in range(1, k):
        d2 = np.min(((p[:, None, :] - np.array(c)[None]) ** 2).sum(-1), axis=1) * mass
        c.append(p[rng.choice(len(p), p=d2 / d2.sum())])
    cc = np.array(c)
    for _ in range(10):
        a = _power_assign(p, cc, np.zeros(k))
        for j in range(k):
            m = mass[a == j]
            if m.sum() > 0:
                cc[j] = (p[a == j] * m[:, None]).sum(0) / m.sum()
    return cc


def _solve_weights(
    p: np.ndarray,
    mass: np.ndarray,
    c: np.ndarray,
    w: np.ndarray,
    scale: float,
    iters: int = 120,
    tol: float = 0.03,
) -> np.ndarray:
    """Power weights giving every cell ~``1/k`` of ``mass`` (dual ascent with Rprop steps)."""
    k = len(c)
    target = mass.sum() / k
    w = w.copy()
    step = np.full(k, 0.02 * scale)
    last = np.zeros(k)
    for _ in range(iters):
        err = (target - np.bincount(_power_assign(p, c, w), mass, k)) / target
        if np.abs(err).max() < tol:
            break
        sign = np.sign(err)
        step = np.clip(np.where(sign == last, step * 1.3, step * 0.5), 1e-6 * scale, scale)
        w += step * sign
        last = sign
    return w


def _balance(p: np.ndarray, mass: np.ndarray, c0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres and weights of a compact power diagram whose cells carry equal ``mass`` (km).

    Alternates solving the weights for fixed centres and moving centres half-way to their cells'
    centroids; an empty cell is re-seeded inside the heaviest one.
    """
    k = len(c0)
    c, w = c0.astype(float).copy(), np.zeros(k)
    scale = float(np.prod(np.ptp(p, axis=0) + 1e-3)) / k
    for rnd in range(6):
        w = _solve_weights(p, mass, c, w, scale)
        a = _power_assign(p, c, w)
        load = np.bincount(a, mass, k)
        for empty in np.flatnonzero(load <= 0):
            big = int(np.argmax(load))
            far = np.flatnonzero(a == big)
            far = far[np.argmax(((p[far] - c[big]) ** 2).sum(1))]
            c[empty], w[empty] = (p[far] + c[big]) / 2, w[big]
            load[big] = 0
        if rnd == 5:
            break
        for j in range(k):
            m = mass[a == j]
            if m.sum() > 0:
                c[j] = 0.5 * c[j] + 0.5 * (p[a == j] * m[:, None]).sum(0) / m.sum()
    return c, _solve_weights(p, mass, c, w, scale)


def _power_edges(c: np.ndarray, w: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Edges of the power diagram (metres, EPSG:4546) of centres ``c`` (km, minus ``origin``)."""
    if len(c) < 2:
        return np.array([], dtype=object)
    far = 20.0 * (float(np.ptp(c, axis=0).max()) + 10.0)
    mid = c.mean(0)
    sites = np.vstack([c, mid + far * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])])
    ww = np.r_[w, np.zeros(4)]
    hull = ConvexHull(np.column_stack([sites, (sites**2).sum(1) - ww]))
    eq = hull.equations
    lower = eq[:, 2] < -1e-12
    vert = (-eq[:, :2] / (2.0 * eq[:, 2:3]) + origin) * 1000.0
    segs = []
    for f in np.flatnonzero(lower):
        for g in hull.neighbors[f]:
            if g > f and lower[g] and np.hypot(*(vert[f] - vert[g])) > 1e-6:
                segs.append([vert[f], vert[g]])
    return shapely.linestrings(np.array(segs)) if segs else np.array([], dtype=object)


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


# --------------------------------------------------------------------------------------------
# assembly and output


def _assign(
    polys: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    hh: dict[str, np.ndarray],
    land: dict[str, Any],
    roads: gpd.GeoDataFrame,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Community index of every point; points within ``EDGE_CLEARANCE_M`` of a community edge
    are moved to a nearby free spot (same rules as sampling), else dropped (index -1)."""
    bound_m = _m(shapely.boundary(polys))
    tree = shapely.STRtree(polys)
    road_tree = shapely.STRtree(_m(roads.geometry.to_numpy()))
    spacing = np.array([_KINDS[k][0] for k in hh["kind"]])

    def locate(x: np.ndarray, y: np.ndarray, xy_m: np.ndarray) -> np.ndarray:
        pi, ci = tree.query(shapely.points(np.column_stack([x, y])), predicate="intersects")
        out = np.full(len(x), -1)
        out[pi] = ci
        out[np.bincount(pi, minlength=len(x)) != 1] = -1
        ok = out >= 0
        far = shapely.distance(shapely.points(xy_m[ok]), bound_m[out[ok]]) >= EDGE_CLEARANCE_M
        out[np.flatnonzero(ok)[~far]] = -1
        return out

    lon, lat = lon.copy(), lat.copy()
    xy = _xy_m(lon, lat)
    comm = locate(lon, lat, xy)
    good = comm >= 0
    xy_good, kd_sp = xy[good], spacing[good]
    kd = cKDTree(xy_good)
    moved: list[tuple[float, float, float]] = []
    for i in np.flatnonzero(~good):
        for attempt in range(200):
            q = xy[i] + rng.normal(0.0, 20.0 + attempt, 2)
            qlon, qlat = (round(float(v), 6) for v in to_wgs84(q[0], q[1], METRIC))
            qm = _xy_m([qlon], [qlat])
            near = kd.query_ball_point(qm[0], 35.0)
            if any(np.hypot(*(xy_good[n] - qm[0])) < max(kd_sp[n], spacing[i]) for n in near):
                continue
            if any(
                math.hypot(mx - qm[0, 0], my - qm[0, 1]) < max(ms, spacing[i])
                for mx, my, ms in moved
            ):
                continue
            if not shapely.contains_xy(land[hh["district"][i]], qm[0, 0], qm[0, 1]):
                continue
            if len(road_tree.query(shapely.points(qm[0]), predicate="dwithin", distance=12.0)):
                continue
            c = locate(np.array([qlon]), np.array([qlat]), qm)[0]
            if c >= 0:
                lon[i], lat[i], comm[i] = qlon, qlat, c
                moved.append((float(qm[0, 0]), float(qm[0, 1]), float(spacing[i])))
                break
    return comm, lon, lat


def _check_places(land: dict[str, Any]) -> None:
    """Every centre and street location must lie on its district's land."""
    places = [(c.district, c.lon, c.lat) for c in CENTRES]
    places += [(d, lon, lat) for d, rows in STREETS.items() for _, _, lon, lat in rows]
    for d, lon, lat in places:
        x, y = _xy_m([lon], [lat])[0]
        if not shapely.contains_xy(land[d], x, y):
            raise ValueError(f"({lon}, {lat}) is not on the land of district {d}")


def generate_scenario(districts: gpd.GeoDataFrame, cfg: ScenarioConfig | None = None) -> Scenario:
    """Generate the whole synthetic scenario from the real district outlines.

    Parameters
    ----------
    districts : GeoDataFrame in EPSG:4326 with ``code`` (420502–420505) and one-part polygons.
    cfg : generator settings; the default is the committed scenario.
    """
    cfg = cfg or ScenarioConfig()
    if districts.crs is None or districts.crs.to_epsg() != 4326:
        raise ValueError("districts must be in EPSG:4326")
    districts = districts.sort_values("code").reset_index(drop=True)
    r_vill, r_roads, r_hh, r_areas, r_names, r_fix = (
        np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(6)
    )
    land, river = _land(districts)
    _check_places(land)
    villages = _villages(land, r_vill)
    roads = _roads(land, river, villages, cfg, r_roads)
    hh = _households(land, villages, _m(roads.geometry.to_numpy()), cfg, r_hh)
    lon, lat = (np.round(v, 6) for v in to_wgs84(hh["x"], hh["y"], METRIC))
    pts_m = _xy_m(lon, lat)

    st_rows: list[dict[str, Any]] = []
    polys: list[Any] = []
    comm_street: list[int] = []
    for code, geom in zip(districts["code"], districts.geometry, strict=True):
        sel = hh["district"] == code
        streets, comms, parent = _district_areas(
            code,
            shapely.get_geometry(geom, 0),
            pts_m[sel],
            hh["hh"][sel].astype(float),
            cfg.communities[code],
            r_areas,
        )
        base = len(st_rows)
        for (suffix, name, _, _), s in zip(STREETS[code], streets, strict=True):
            st_rows.append(
                {
                    "code": code + suffix,
                    "name": name,
                    "parent": code,
                    "level": "street",
                    "geometry": s,
                }
            )
        polys += comms
        comm_street += [base + k for k in parent]

    poly_arr = np.array(polys, dtype=object)
    comm_of, lon, lat = _assign(poly_arr, lon, lat, hh, land, roads, r_fix)
    ok = comm_of >= 0
    pt_w = shapely.points(np.column_stack([lon, lat]))
    n_comm = len(polys)
    c_hh = np.bincount(comm_of[ok], hh["hh"][ok], n_comm).astype(int)
    c_res = np.bincount(comm_of[ok], hh["res"][ok], n_comm).astype(int)
    c_rural = np.bincount(comm_of[ok], hh["hh"][ok] * (hh["kind"][ok] == "rural"), n_comm)
    if (c_hh == 0).any():
        raise RuntimeError(f"{int((c_hh == 0).sum())} communities without households")

    # names and codes: 社区 take 001–, 村 take 201– (as in the statistical division codes)
    comm_code = [""] * n_comm
    comm_name = [""] * n_comm
    rep = shapely.get_coordinates(shapely.point_on_surface(poly_arr))
    pools: dict[str, tuple[list[str], list[str]]] = {}
    for s_idx, srow in enumerate(st_rows):
        dcode = srow["parent"]
        if dcode not in pools:
            villages_n = [f"{s}家{t}" for s in _SURNAMES for t in _TERRAIN]
            pools[dcode] = (
                [str(x) for x in r_names.permutation(_URBAN_STEMS.split())],
                [str(x) for x in r_names.permutation(villages_n)],
            )
        urban, rural = pools[dcode]
        mine = [k for k in range(n_comm) if comm_street[k] == s_idx]
        mine.sort(key=lambda k: (-round(rep[k, 1], 3), round(rep[k, 0], 3)))
        n_urban, n_rural = 0, 0
        for k in mine:
            if c_rural[k] > 0.5 * c_hh[k]:
                n_rural += 1
                comm_code[k] = f"{srow['code']}{200 + n_rural:03d}"
                comm_name[k] = rural.pop(0) + "村"
            else:
                n_urban += 1
                comm_code[k] = f"{srow['code']}{n_urban:03d}"
                comm_name[k] = urban.pop(0) + "社区"
    communities = gpd.GeoDataFrame(
        {
            "code": comm_code,
            "name": comm_name,
            "parent": [st_rows[s]["code"] for s in comm_street],
            "level": "community",
            "households": c_hh,
            "population": c_res,
            "geometry": [shapely.MultiPolygon([p]) for p in polys],
        },
        crs="EPSG:4326",
    )
    communities = communities.sort_values("code").reset_index(drop=True)
    streets_gdf = gpd.GeoDataFrame(st_rows, crs="EPSG:4326")
    by_street = communities.groupby("parent")[["households", "population"]].sum()
    streets_gdf["households"] = by_street.loc[streets_gdf["code"], "households"].to_numpy()
    streets_gdf["population"] = by_street.loc[streets_gdf["code"], "population"].to_numpy()
    streets_gdf["geometry"] = [
        shapely.MultiPolygon(
            [
                shapely.coverage_union_all(
                    communities.geometry[communities["parent"] == c].to_numpy()
                )
            ]
        )
        for c in streets_gdf.code
    ]
    streets_gdf = streets_gdf[
        ["code", "name", "parent", "level", "households", "population", "geometry"]
    ]

    code_arr = np.array(comm_code, dtype=object)
    households = gpd.GeoDataFrame(
        {
            "community": code_arr[comm_of[ok]],
            "lon": lon[ok],
            "lat": lat[ok],
            "households": hh["hh"][ok].astype(int),
            "residents": hh["res"][ok].astype(int),
        },
        geometry=pt_w[ok],
        crs="EPSG:4326",
    )
    households = households.sort_values(["community", "lon", "lat"]).reset_index(drop=True)
    households.insert(0, "id", np.arange(1, len(households) + 1))
    return Scenario(streets_gdf, communities, households, roads)


def _coords(geom: Any, nd: int) -> Any:
    if geom.geom_type == "MultiPolygon":
        return [_coords(g, nd) for g in geom.geoms]
    if geom.geom_type == "Polygon":
        geom = shapely.orient_polygons(geom)  # RFC 7946: exterior counter-clockwise
        return [_coords(r, nd) for r in (geom.exterior, *geom.interiors)]
    return [[round(x, nd), round(y, nd)] for x, y in geom.coords]


def _write_geojson(gdf: gpd.GeoDataFrame, path: Path, nd: int) -> None:
    buf = io.StringIO()
    buf.write(
        '{"type":"FeatureCollection","name":'
        + json.dumps(path.stem)
        + ',"synthetic":true,"features":[\n'
    )
    props = [c for c in gdf.columns if c != "geometry"]
    values = [gdf[c].tolist() for c in props]
    geoms = gdf.geometry.tolist()
    for n, geom in enumerate(geoms):
        feat = {
            "type": "Feature",
            "properties": {c: v[n] for c, v in zip(props, values, strict=True)},
            "geometry": {"type": geom.geom_type, "coordinates": _coords(geom, nd)},
        }
        buf.write(json.dumps(feat, ensure_ascii=False, separators=(",", ":")))
        buf.write(",\n" if n < len(geoms) - 1 else "\n")
    buf.write("]}\n")
    path.write_text(buf.getvalue(), encoding="utf-8")


def write_scenario(scenario: Scenario, outdir: str | Path) -> list[Path]:
    """Write the layers (GeoJSON at 7 decimals, roads and points at 6) and return the paths."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "streets.geojson", out / "communities.geojson", out / "roads.geojson"]
    for gdf, path, nd in zip(
        (scenario.streets, scenario.communities, scenario.roads), paths, (7, 7, 6), strict=True
    ):
        _write_geojson(gdf, path, nd)
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(["id", "community", "lon", "lat", "households", "residents"])
    h = scenario.households
    for row in zip(
        h["id"], h["community"], h["lon"], h["lat"], h["households"], h["residents"], strict=True
    ):
        wr.writerow(
            [int(row[0]), row[1], f"{row[2]:.6f}", f"{row[3]:.6f}", int(row[4]), int(row[5])]
        )
    paths.append(out / "households.csv")
    paths[-1].write_text(buf.getvalue(), encoding="utf-8")
    return paths
