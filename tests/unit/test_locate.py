"""Point → grid (gridmap.locate) against a brute-force shapely oracle: covers + lowest code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridmap.crs import from_wgs84, to_wgs84, transform_geometry
from gridmap.errors import InvalidInput
from gridmap.locate import (
    STATUS_INVALID,
    STATUS_OK,
    STATUS_OUT_OF_RANGE,
    STATUS_OUTSIDE,
    STATUS_SWAPPED,
    GridIndex,
)

LON0, LAT0 = 111.30, 30.70
COMMUNITIES = Path(__file__).resolve().parents[2] / "data" / "scenario" / "communities.geojson"
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def oracle(codes: list[str], geoms: list, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Brute force: every grid that covers the point, then the lowest code."""
    pts = shapely.points(lon, lat)
    out = np.full(len(pts), -1)
    for i in sorted(range(len(codes)), key=lambda i: codes[i], reverse=True):
        out[shapely.covers(geoms[i], pts)] = i  # lower codes overwrite higher ones
    return out


def voronoi_grids(seed: int, n: int, size: float = 0.02) -> tuple[list[str], list]:
    """Voronoi cells of random seeds clipped to a non-convex polygon (some cells come out as
    MultiPolygons); codes shuffled so the tie-break is not the input order."""
    rng = np.random.default_rng(seed)
    w = size
    clip = shapely.Polygon(
        [
            (LON0, LAT0),
            (LON0 + w, LAT0),
            (LON0 + w, LAT0 + w),
            (LON0 + w / 2, LAT0 + w / 3),
            (LON0, LAT0 + w),
        ]
    )
    xy = np.column_stack([LON0 + rng.uniform(0, w, n), LAT0 + rng.uniform(0, w, n)])
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=clip))
    geoms = [g for g in shapely.intersection(cells, clip) if not g.is_empty and g.area > 0]
    codes = [f"42050200100{k:03d}" for k in rng.permutation(len(geoms))]
    return codes, geoms


def box_grids(seed: int, with_hole: bool = True) -> tuple[list[str], list]:
    """A rows × columns partition with exactly representable shared edges, one grid with a
    hole, another grid filling the hole, and an overlapping pair (a bad partition)."""
    rng = np.random.default_rng(seed)
    xs = np.r_[
        LON0, LON0 + np.sort(rng.choice(np.arange(5, 96), 3, replace=False)) * 1e-4, LON0 + 0.01
    ]
    ys = np.r_[
        LAT0, LAT0 + np.sort(rng.choice(np.arange(5, 96), 2, replace=False)) * 1e-4, LAT0 + 0.01
    ]
    geoms: list = [
        shapely.box(xs[i], ys[j], xs[i + 1], ys[j + 1]) for i in range(4) for j in range(3)
    ]
    if with_hole:
        b = geoms[0]
        inner = shapely.box(*shapely.affinity.scale(b, 0.4, 0.4).bounds)
        geoms[0] = b.difference(inner)
        geoms.append(inner)
        geoms.append(shapely.box(xs[4], ys[0], xs[4] + 0.002, ys[1]))  # overlaps the last column
    codes = [f"g{k:02d}" for k in rng.permutation(len(geoms))]
    return codes, geoms


def probe_points(geoms: list, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Random points around the grids plus every vertex, edge midpoints and points on edges."""
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    pad = 0.002
    lon = [rng.uniform(minx - pad, maxx + pad, n)]
    lat = [rng.uniform(miny - pad, maxy + pad, n)]
    xy = shapely.get_coordinates(shapely.boundary(np.asarray(geoms, dtype=object)))
    lon.append(xy[:, 0])
    lat.append(xy[:, 1])
    a, b = xy[:-1], xy[1:]
    t = rng.uniform(0, 1, (len(a), 1))
    for p in (a + 0.5 * (b - a), a + t * (b - a)):
        lon.append(p[:, 0])
        lat.append(p[:, 1])
    return np.concatenate(lon), np.concatenate(lat)


@SLOW
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 40), cell=st.sampled_from([0.7, 3, 10]))
def test_voronoi_partition_matches_oracle(seed: int, n: int, cell: float) -> None:
    codes, geoms = voronoi_grids(seed, n)
    index = GridIndex.build(codes, geoms, cell_m=cell)
    lon, lat = probe_points(geoms, np.random.default_rng(seed), 3000)
    got = index.locate(lon, lat)
    np.testing.assert_array_equal(got, oracle(codes, geoms, lon, lat))


@SLOW
@given(seed=st.integers(0, 2**32 - 1), cell=st.sampled_from([0.5, 2, 10]))
def test_boxes_with_holes_and_overlap_match_oracle(seed: int, cell: float) -> None:
    codes, geoms = box_grids(seed)
    index = GridIndex.build(codes, geoms, cell_m=cell)
    lon, lat = probe_points(geoms, np.random.default_rng(seed), 2000)
    # points exactly on the axis-parallel shared edges
    xs = np.unique(shapely.get_coordinates(np.asarray(geoms, dtype=object))[:, 0])
    ys = np.unique(shapely.get_coordinates(np.asarray(geoms, dtype=object))[:, 1])
    rng = np.random.default_rng(seed + 1)
    lon = np.r_[lon, rng.choice(xs, 500), rng.uniform(xs[0], xs[-1], 500)]
    lat = np.r_[lat, rng.uniform(ys[0], ys[-1], 500), rng.choice(ys, 500)]
    expected = oracle(codes, geoms, lon, lat)
    assert (expected >= 0).mean() > 0.5
    np.testing.assert_array_equal(index.locate(lon, lat), expected)


def test_shared_vertex_goes_to_lowest_code() -> None:
    quads = [(0, 0), (1, 0), (0, 1), (1, 1)]
    d = 0.001
    geoms = [
        shapely.box(LON0 + i * d, LAT0 + j * d, LON0 + (i + 1) * d, LAT0 + (j + 1) * d)
        for i, j in quads
    ]
    codes = ["c", "a", "d", "b"]
    index = GridIndex.build(codes, geoms)
    centre = index.locate_codes([LON0 + d], [LAT0 + d])
    edge_cd = index.locate_codes([LON0 + 0.5 * d], [LAT0 + d])  # between (0,0)=c and (0,1)=d
    assert centre.tolist() == ["a"] and edge_cd.tolist() == ["c"]


@SLOW
@given(seed=st.integers(0, 2**32 - 1), system=st.sampled_from(["gcj02", "bd09", "EPSG:4546"]))
def test_points_from_other_systems_match_oracle(seed: int, system: str) -> None:
    codes, geoms = voronoi_grids(seed, 12)
    index = GridIndex.build(codes, geoms)
    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(LON0, LON0 + 0.02, 30), rng.uniform(LAT0, LAT0 + 0.02, 30)
    x, y = from_wgs84(lon, lat, system)
    wlon, wlat = to_wgs84(x, y, system)
    expected = oracle(codes, geoms, wlon, wlat)
    for k in range(len(x)):
        got = index.locate_one(float(x[k]), float(y[k]), system, strict=False)
        assert got.index == expected[k]
        assert got.code == (codes[expected[k]] if expected[k] >= 0 else None)
    if system == "gcj02":  # read as WGS84 the same numbers land ~500 m off: often another grid
        assert (oracle(codes, geoms, x, y) != expected).any()


def test_bulk_statuses() -> None:
    codes, geoms = box_grids(3, with_hole=False)
    index = GridIndex.build(codes, geoms)
    lon = np.array([LON0 + 0.005, np.nan, np.inf, LON0 + 0.5, 200.0, LAT0 + 0.005, -181.0])
    lat = np.array([LAT0 + 0.005, LAT0, LAT0, LAT0, 30.0, LON0 + 0.005, 95.0])
    idx, status = index.locate_status(lon, lat)
    assert status.tolist() == [
        STATUS_OK,
        STATUS_INVALID,
        STATUS_INVALID,
        STATUS_OUTSIDE,
        STATUS_OUT_OF_RANGE,
        STATUS_SWAPPED,
        STATUS_OUT_OF_RANGE,
    ]
    assert idx[0] >= 0 and (idx[1:] == -1).all()
    assert index.locate(lon, lat).tolist() == idx.tolist()


@pytest.mark.parametrize(
    ("lon", "lat", "crs", "code"),
    [
        (float("nan"), LAT0, "wgs84", "non-finite-coordinate"),
        (LON0, float("inf"), "gcj02", "non-finite-coordinate"),
        (181.0, LAT0, "wgs84", "coordinate-out-of-range"),
        (LON0, -91.0, "bd09", "coordinate-out-of-range"),
        (LAT0 + 0.005, LON0 + 0.005, "wgs84", "probable-lat-lon-swap"),
        (LON0 + 0.3, LAT0 + 0.3, "wgs84", "outside-service-area"),
    ],
)
def test_single_point_errors(lon: float, lat: float, crs: str, code: str) -> None:
    codes, geoms = box_grids(5, with_hole=False)
    index = GridIndex.build(codes, geoms)
    with pytest.raises(InvalidInput) as err:
        index.locate_one(lon, lat, crs)
    assert err.value.code == code
    if code == "probable-lat-lon-swap":
        assert err.value.details[0]["lon"] == lat


def test_swap_in_a_projected_system() -> None:
    codes, geoms = box_grids(5, with_hole=False)
    index = GridIndex.build(codes, geoms)
    x, y = (float(v) for v in from_wgs84(LON0 + 0.005, LAT0 + 0.005, "EPSG:4546"))
    assert index.locate_one(x, y, "EPSG:4546").code is not None
    with pytest.raises(InvalidInput) as err:
        index.locate_one(y, x, "EPSG:4546")
    assert err.value.code == "probable-lat-lon-swap"


def test_near_boundary_lists_other_grids_within_radius() -> None:
    codes, geoms = voronoi_grids(11, 15)
    index = GridIndex.build(codes, geoms)
    metric = transform_geometry(np.asarray(geoms, dtype=object), "wgs84", index.metric_crs)
    lon, lat = probe_points(geoms, np.random.default_rng(2), 100)
    for k in range(0, len(lon), 7):
        own = int(index.locate([lon[k]], [lat[k]])[0])
        x, y = from_wgs84(lon[k], lat[k], index.metric_crs)
        d = shapely.distance(metric, shapely.Point(float(x), float(y)))
        expected = {codes[i] for i in np.flatnonzero(d <= 20.0) if i != own}
        got = index.near_boundary(float(lon[k]), float(lat[k]))
        assert {c for c, _ in got} == expected
        assert [m for _, m in got] == sorted(m for _, m in got)
    res = index.locate_one(float(lon[-1]), float(lat[-1]), strict=False)
    assert res.code is None or all(c != res.code for c, _ in res.near_boundary)


def test_build_rejects_bad_input_and_handles_empty() -> None:
    sq = shapely.box(LON0, LAT0, LON0 + 0.01, LAT0 + 0.01)
    bow = shapely.Polygon(
        [(LON0, LAT0), (LON0 + 0.01, LAT0 + 0.01), (LON0 + 0.01, LAT0), (LON0, LAT0 + 0.01)]
    )
    for codes, geoms, code in [
        (["a", "a"], [sq, sq], "duplicate-grid-code"),
        (["a"], [sq, sq], "length-mismatch"),
        (["a"], [bow], "invalid-geometry"),
        (["a"], [shapely.Point(LON0, LAT0)], "invalid-geometry"),
    ]:
        with pytest.raises(InvalidInput) as err:
            GridIndex.build(codes, geoms)
        assert err.value.code == code
    empty = GridIndex.build([], [])
    idx, status = empty.locate_status([LON0], [LAT0])
    assert idx.tolist() == [-1] and status.tolist() == [STATUS_OUTSIDE]


def test_large_grid_spanning_many_blocks_uses_uniform_tiles() -> None:
    # one 0.2° grid (≈ 20 km) beside small ones: the raster stays small, answers exact
    big = shapely.box(LON0 - 0.2, LAT0, LON0, LAT0 + 0.2)
    codes, geoms = box_grids(9, with_hole=False)
    index = GridIndex.build([*codes, "z"], [*geoms, big])
    assert index.nbytes < 4_000_000
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(LON0 - 0.21, LON0 + 0.02, 20000), rng.uniform(LAT0, LAT0 + 0.2, 20000)
    np.testing.assert_array_equal(
        index.locate(lon, lat), oracle([*codes, "z"], [*geoms, big], lon, lat)
    )


@pytest.mark.skipif(not COMMUNITIES.exists(), reason="scenario not generated yet")
def test_scenario_communities_match_oracle() -> None:
    import geopandas as gpd

    gdf = gpd.read_file(COMMUNITIES)
    codes, geoms = [str(c) for c in gdf["code"]], list(gdf.geometry)
    index = GridIndex.build(codes, geoms)
    lon, lat = probe_points(geoms, np.random.default_rng(4), 20000)
    pick = np.random.default_rng(5).choice(len(lon), min(len(lon), 40000), replace=False)
    lon, lat = lon[pick], lat[pick]
    np.testing.assert_array_equal(index.locate(lon, lat), oracle(codes, geoms, lon, lat))
