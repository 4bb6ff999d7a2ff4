"""Coordinate systems: known offsets, exact inverses, EPSG handling, the metric CRS chooser."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from gridmap import crs
from gridmap.errors import InvalidInput

GEOD = Geod(ellps="WGS84")
china_lon = st.floats(min_value=74.0, max_value=134.0)
china_lat = st.floats(min_value=18.0, max_value=53.0)


def metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    return float(GEOD.inv(lon1, lat1, lon2, lat2)[2])


def test_known_gcj02_offset_in_yichang() -> None:
    # The GCJ-02 shift around Yichang is a few hundred metres, mostly east-west.
    glon, glat = crs.wgs84_to_gcj02(111.29, 30.70)
    shift = metres(111.29, 30.70, float(glon), float(glat))
    assert 300 < shift < 700
    assert float(glon) > 111.29


def test_published_reference_point() -> None:
    # Tiananmen, WGS84 (116.391349, 39.907375) → GCJ-02 ≈ (116.397590, 39.908776) as published
    # by coordinate-converter libraries (eviltransform, coordtransform).
    glon, glat = crs.wgs84_to_gcj02(116.391349, 39.907375)
    assert metres(float(glon), float(glat), 116.397590, 39.908776) < 1.0


def test_outside_china_is_unshifted() -> None:
    lon, lat = crs.wgs84_to_gcj02(24.94, 60.17)  # Helsinki
    assert (float(lon), float(lat)) == (24.94, 60.17)


@settings(max_examples=300, deadline=None)
@given(china_lon, china_lat)
def test_gcj02_inverse_is_exact(lon: float, lat: float) -> None:
    back = crs.gcj02_to_wgs84(*crs.wgs84_to_gcj02(lon, lat))
    assert metres(lon, lat, float(back[0]), float(back[1])) < 0.01


def test_iterative_inverse_beats_one_step_approximation() -> None:
    lon, lat = 111.35, 30.65
    glon, glat = crs.wgs84_to_gcj02(lon, lat)
    d = np.array(crs.wgs84_to_gcj02(glon, glat)) - np.array([glon, glat])
    one_step = (float(glon - d[0]), float(glat - d[1]))
    exact = crs.gcj02_to_wgs84(glon, glat)
    assert metres(lon, lat, *one_step) > 0.1
    assert metres(lon, lat, float(exact[0]), float(exact[1])) < 0.001


@settings(max_examples=200, deadline=None)
@given(china_lon, china_lat)
def test_bd09_round_trip(lon: float, lat: float) -> None:
    blon, blat = crs.from_wgs84(lon, lat, "bd09")
    back = crs.to_wgs84(blon, blat, "bd09")
    assert metres(lon, lat, float(back[0]), float(back[1])) < 0.01


def test_bd09_is_further_shifted_than_gcj02() -> None:
    g = crs.from_wgs84(111.3, 30.7, "gcj02")
    b = crs.from_wgs84(111.3, 30.7, "bd09")
    assert metres(float(g[0]), float(g[1]), float(b[0]), float(b[1])) > 500


def test_epsg_round_trip_and_arrays() -> None:
    lon = np.array([111.28, 111.30, 111.35])
    lat = np.array([30.68, 30.70, 30.66])
    x, y = crs.from_wgs84(lon, lat, "EPSG:4546")
    assert np.all(np.abs(x - 500000) < 50000)  # near the central meridian 111°E
    lon2, lat2 = crs.to_wgs84(x, y, "EPSG:4546")
    assert np.allclose(lon, lon2, atol=1e-9) and np.allclose(lat, lat2, atol=1e-9)


def test_cgcs2000_is_wgs84_within_centimetres() -> None:
    lon, lat = crs.to_wgs84(111.3, 30.7, "cgcs2000")
    assert metres(111.3, 30.7, float(lon), float(lat)) < 0.05


@pytest.mark.parametrize(
    "name,expected",
    [
        ("WGS84", "wgs84"),
        ("epsg:4326", "wgs84"),
        ("GCJ-02", "gcj02"),
        ("amap", "gcj02"),
        ("BD09", "bd09"),
        ("baidu", "bd09"),
        ("EPSG:4546", "EPSG:4546"),
        (4490, "cgcs2000"),
        (None, "wgs84"),
    ],
)
def test_normalize(name: object, expected: str) -> None:
    assert crs.normalize_crs(name) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["mars", "EPSG:999999", "EPSG:abc", ""])
def test_unknown_crs_is_a_clear_error(bad: str) -> None:
    with pytest.raises(InvalidInput) as err:
        crs.normalize_crs(bad)
    assert err.value.code == "unknown-crs"


@pytest.mark.parametrize(
    "lon,lat,expected",
    [
        (111.3, 30.7, "EPSG:4546"),  # Yichang: CM 111°E
        (116.4, 39.9, "EPSG:4548"),  # Beijing: CM 117°E
        (121.5, 31.2, "EPSG:4549"),  # Shanghai: CM 120°E
        (87.6, 43.8, "EPSG:4538"),  # Ürümqi: CM 87°E
        (24.9, 60.2, "EPSG:32635"),  # Helsinki: UTM 35N
        (-58.4, -34.6, "EPSG:32721"),  # Buenos Aires: UTM 21S
    ],
)
def test_metric_crs_chooser(lon: float, lat: float, expected: str) -> None:
    assert crs.metric_crs_for(lon, lat) == expected


def test_metric_crs_is_really_metric() -> None:
    # 0.01° of latitude is ~1109 m; the chosen CRS must measure it so (scale error < 0.1%).
    line = shapely.LineString([(111.3, 30.70), (111.3, 30.71)])
    length = crs.to_metric(line).length
    assert math.isclose(length, metres(111.3, 30.70, 111.3, 30.71), rel_tol=1e-3)


def test_transform_geometry_gcj_polygon() -> None:
    poly = shapely.box(111.30, 30.70, 111.31, 30.71)
    moved = crs.transform_geometry(poly, "gcj02", "wgs84")
    assert moved.is_valid
    assert math.isclose(moved.area, poly.area, rel_tol=1e-2)  # GCJ-02 warps ~0.3 %
    back = crs.transform_geometry(moved, "wgs84", "gcj02")
    assert shapely.equals_exact(back, poly, tolerance=1e-9)


def test_bad_coordinates_for_metric_crs() -> None:
    with pytest.raises(InvalidInput):
        crs.metric_crs_for(float("nan"), 30.0)
