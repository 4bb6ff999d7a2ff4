"""Coordinate systems used in China: WGS84, GCJ-02 (Amap, Tencent), BD-09 (Baidu), any EPSG.

Inside gridmap everything is WGS84 lon/lat (EPSG:4326). Input is converted at the edge with
:func:`to_wgs84`; output for a consumer that wants another system goes through :func:`from_wgs84`.
GCJ-02 shifts points by up to ~500 m, so mistaking it for WGS84 puts an incident in the wrong grid.

The GCJ-02 → WGS84 direction has no closed form. The common one-step inverse is ~1–2 m off; we
iterate the forward transform to a fixed point instead (error well under 1 cm).

Examples
--------
>>> lon, lat = wgs84_to_gcj02(111.29, 30.70)
>>> back = gcj02_to_wgs84(lon, lat)
>>> abs(float(back[0]) - 111.29) < 1e-9 and abs(float(back[1]) - 30.70) < 1e-9
True
>>> metric_crs_for(111.3, 30.7)
'EPSG:4546'
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from gridmap.errors import InvalidInput

__all__ = [
    "NAMED_SYSTEMS",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "from_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "metric_crs_for",
    "metric_crs_for_geometry",
    "normalize_crs",
    "out_of_china",
    "to_metric",
    "to_wgs84",
    "transform_geometry",
    "wgs84_to_gcj02",
]

NAMED_SYSTEMS = ("wgs84", "gcj02", "bd09", "cgcs2000")

_A = 6378245.0  # Krasovsky 1940 semi-major axis used by the GCJ-02 algorithm
_EE = 0.00669342162296594323  # its first eccentricity squared
_X_PI = math.pi * 3000.0 / 180.0
_ITER_TOL_DEG = 1e-11  # ~1 µm; the loop converges in 2–4 steps
_ITER_MAX = 30

ArrayLike = Any  # float or numpy array of floats


def _f(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype="float64")


def out_of_china(lon: ArrayLike, lat: ArrayLike) -> np.ndarray:
    """True where GCJ-02 leaves points unshifted (the algorithm's own bounding box)."""
    lon, lat = _f(lon), _f(lat)
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 offset (degrees) for WGS84 points; zero outside China."""
    x, y = lon - 105.0, lat - 35.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    dlat = (
        -100.0
        + 2.0 * x
        + 3.0 * y
        + 0.2 * y * y
        + 0.1 * x * y
        + 0.2 * sqrt_abs_x
        + (20.0 * np.sin(6.0 * x * math.pi) + 20.0 * np.sin(2.0 * x * math.pi)) * 2.0 / 3.0
        + (20.0 * np.sin(y * math.pi) + 40.0 * np.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
        + (160.0 * np.sin(y / 12.0 * math.pi) + 320 * np.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    )
    dlon = (
        300.0
        + x
        + 2.0 * y
        + 0.1 * x * x
        + 0.1 * x * y
        + 0.1 * sqrt_abs_x
        + (20.0 * np.sin(6.0 * x * math.pi) + 20.0 * np.sin(2.0 * x * math.pi)) * 2.0 / 3.0
        + (20.0 * np.sin(x * math.pi) + 40.0 * np.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
        + (150.0 * np.sin(x / 12.0 * math.pi) + 300.0 * np.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    )
    radlat = lat / 180.0 * math.pi
    magic = 1 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * math.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * math.pi)
    outside = out_of_china(lon, lat)
    return np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 → GCJ-02 (the published forward algorithm)."""
    lon, lat = _f(lon), _f(lat)
    dlon, dlat = _delta(lon, lat)
    return lon + dlon, lat + dlat


def _invert(
    forward: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    lon: np.ndarray,
    lat: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``forward(w) == (lon, lat)`` by fixed-point iteration (the offset field is smooth)."""
    wlon, wlat = lon.copy(), lat.copy()
    for _ in range(_ITER_MAX):
        flon, flat = forward(wlon, wlat)
        elon, elat = flon - lon, flat - lat
        wlon, wlat = wlon - elon, wlat - elat
        if np.all(np.abs(elon) < _ITER_TOL_DEG) and np.all(np.abs(elat) < _ITER_TOL_DEG):
            break
    return wlon, wlat


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 → WGS84, exact iterative inverse (not the ~2 m one-step approximation)."""
    return _invert(wgs84_to_gcj02, _f(lon), _f(lat))


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 → BD-09 (Baidu's published forward transform)."""
    x, y = _f(lon), _f(lat)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """BD-09 → GCJ-02, iterated to the exact inverse of :func:`gcj02_to_bd09`."""
    return _invert(gcj02_to_bd09, _f(lon), _f(lat))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """BD-09 → WGS84."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def normalize_crs(name: str | int | None) -> str:
    """Canonical name of an input coordinate system.

    Accepts ``wgs84``/``gcj02``/``bd09``/``cgcs2000`` (and common spellings), ``EPSG:n`` or an int.
    EPSG:4326 is returned as ``wgs84``. Raises :class:`InvalidInput` naming the value otherwise.
    """
    if name is None:
        return "wgs84"
    if isinstance(name, int):
        name = f"EPSG:{name}"
    key = str(name).strip().lower().replace("-", "").replace("_", "")
    aliases = {
        "wgs84": "wgs84",
        "gps": "wgs84",
        "epsg:4326": "wgs84",
        "4326": "wgs84",
        "gcj02": "gcj02",
        "gcj": "gcj02",
        "amap": "gcj02",
        "gaode": "gcj02",
        "tencent": "gcj02",
        "bd09": "bd09",
        "bd09ll": "bd09",
        "baidu": "bd09",
        "cgcs2000": "cgcs2000",
        "epsg:4490": "cgcs2000",
        "4490": "cgcs2000",
    }
    if key in aliases:
        return aliases[key]
    if key.startswith("epsg:") or key.isdigit():
        code = key.split(":", 1)[-1]
        if not code.isdigit():
            raise InvalidInput(f"unknown coordinate system {name!r}", code="unknown-crs")
        try:
            _transformer(f"EPSG:{int(code)}", "EPSG:4326")
        except CRSError as exc:
            raise InvalidInput(
                f"unknown coordinate system {name!r}: {exc}", code="unknown-crs"
            ) from exc
        return f"EPSG:{int(code)}"
    raise InvalidInput(
        f"unknown coordinate system {name!r}; use wgs84, gcj02, bd09, cgcs2000 or EPSG:n",
        code="unknown-crs",
    )


@lru_cache(maxsize=64)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True)


def _epsg(name: str) -> str:
    return "EPSG:4490" if name == "cgcs2000" else name


def to_wgs84(
    x: ArrayLike, y: ArrayLike, crs: str | int | None = "wgs84"
) -> tuple[np.ndarray, np.ndarray]:
    """Convert coordinates in ``crs`` (x = lon/easting, y = lat/northing) to WGS84 lon/lat."""
    name = normalize_crs(crs)
    if name == "wgs84":
        return _f(x), _f(y)
    if name == "gcj02":
        return gcj02_to_wgs84(x, y)
    if name == "bd09":
        return bd09_to_wgs84(x, y)
    lon, lat = _transformer(_epsg(name), "EPSG:4326").transform(_f(x), _f(y))
    return _f(lon), _f(lat)


def from_wgs84(
    lon: ArrayLike, lat: ArrayLike, crs: str | int | None = "wgs84"
) -> tuple[np.ndarray, np.ndarray]:
    """Convert WGS84 lon/lat to ``crs``."""
    name = normalize_crs(crs)
    if name == "wgs84":
        return _f(lon), _f(lat)
    if name == "gcj02":
        return wgs84_to_gcj02(lon, lat)
    if name == "bd09":
        return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))
    x, y = _transformer("EPSG:4326", _epsg(name)).transform(_f(lon), _f(lat))
    return _f(x), _f(y)


def transform_geometry(geom: Any, src: str | int | None, dst: str | int | None = "wgs84") -> Any:
    """Transform a shapely geometry (or array of them) between any two supported systems."""
    s, d = normalize_crs(src), normalize_crs(dst)
    if s == d:
        return geom

    def _apply(coords: np.ndarray) -> np.ndarray:
        lon, lat = to_wgs84(coords[:, 0], coords[:, 1], s)
        x, y = from_wgs84(lon, lat, d)
        return np.column_stack([x, y])

    return shapely.transform(geom, _apply)


def metric_crs_for(lon: float, lat: float) -> str:
    """The local metric CRS for work near (lon, lat).

    In China: the CGCS2000 3-degree Gauss-Krüger zone without zone prefix (EPSG:4534–4554, central
    meridians 75°E–135°E); Yichang (CM 111°E) gives EPSG:4546. Elsewhere: the WGS84 UTM zone.
    """
    if not (math.isfinite(lon) and math.isfinite(lat)) or abs(lat) > 90 or abs(lon) > 180:
        raise InvalidInput(f"no metric CRS for lon={lon}, lat={lat}", code="out-of-range")
    if not bool(out_of_china(lon, lat)) and 73.5 <= lon <= 136.5:
        cm = min(135, max(75, round(lon / 3.0) * 3))
        return f"EPSG:{4534 + (cm - 75) // 3}"
    zone = min(60, int((lon + 180) // 6) + 1)
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def metric_crs_for_geometry(geom: Any) -> str:
    """:func:`metric_crs_for` at the centre of a WGS84 geometry's bounding box."""
    minx, miny, maxx, maxy = shapely.bounds(geom)
    return metric_crs_for((minx + maxx) / 2.0, (miny + maxy) / 2.0)


def to_metric(geom: Any, crs: str | None = None) -> Any:
    """Project a WGS84 geometry (or array) into its local metric CRS (or ``crs``)."""
    target = crs or metric_crs_for_geometry(
        shapely.union_all(geom) if isinstance(geom, np.ndarray) else geom
    )
    return transform_geometry(geom, "wgs84", target)
