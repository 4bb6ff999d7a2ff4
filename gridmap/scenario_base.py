"""Data tables, settings and small geometry helpers of the synthetic scenario (pure).

Shared by :mod:`gridmap.scenario` (the orchestrator, which re-exports the public names) and its
parts :mod:`gridmap.scenario_roads`, :mod:`gridmap.scenario_households`,
:mod:`gridmap.scenario_power` and :mod:`gridmap.scenario_partition`. Everything here is
SYNTHETIC except the real district codes and the real street/town names in ``STREETS``.

Examples
--------
>>> sorted(ScenarioConfig().communities)
['420502', '420503', '420504', '420505']
>>> _densify(np.array([0.0, 0.0]), np.array([10.0, 0.0]), 2.5)[:, 0].tolist()
[0.0, 2.5, 5.0, 7.5, 10.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import shapely

from gridmap.crs import from_wgs84, transform_geometry

__all__ = [
    "BRIDGES",
    "CENTRES",
    "EDGE_CLEARANCE_M",
    "GRID",
    "GRID_SYSTEMS",
    "MAXSPEED",
    "METRIC",
    "RIVER_HALF_WIDTH_M",
    "RURAL_HH",
    "STREETS",
    "Centre",
    "ScenarioConfig",
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


def _centres_m(code: str) -> tuple[list[Centre], np.ndarray]:
    cs = [c for c in CENTRES if c.district == code]
    return cs, _xy_m([c.lon for c in cs], [c.lat for c in cs])
