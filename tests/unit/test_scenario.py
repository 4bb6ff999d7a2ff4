"""The synthetic Yichang scenario: committed files in data/scenario/ and the generator.

Geometry is checked in the local metric CRS (EPSG:4546). Targets come from the scenario spec:
121 communities, ~280,000 households and ~750,000 residents (±2 %), 25,000–45,000 building
points, 3,000–15,000 road edges, exact coverages (overlaps ≤ 0.01 m², gaps ≤ 1 m²).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from gridmap.crs import to_metric
from gridmap.scenario import ScenarioConfig, generate_scenario, load_districts, write_scenario

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "scenario"
DISTRICTS = ROOT / "data" / "boundaries" / "yichang_districts.geojson"
METRIC = "EPSG:4546"
XILING, WUJIAGANG, DIANJUN, XIAOTING = "420502", "420503", "420504", "420505"


@pytest.fixture(scope="module")
def districts() -> gpd.GeoDataFrame:
    return load_districts(DISTRICTS)


@pytest.fixture(scope="module")
def streets() -> gpd.GeoDataFrame:
    return gpd.read_file(DATA / "streets.geojson")


@pytest.fixture(scope="module")
def communities() -> gpd.GeoDataFrame:
    return gpd.read_file(DATA / "communities.geojson")


@pytest.fixture(scope="module")
def households() -> pd.DataFrame:
    return pd.read_csv(DATA / "households.csv", dtype={"community": str})


@pytest.fixture(scope="module")
def roads() -> gpd.GeoDataFrame:
    return gpd.read_file(DATA / "roads.geojson")


def _m(geoms: gpd.GeoSeries) -> np.ndarray:
    return to_metric(np.asarray(geoms.to_numpy(), dtype=object), METRIC)


def _assert_partition(parent: Any, children: np.ndarray, label: str) -> None:
    """``children`` (metric) tile ``parent`` (metric): no overlaps, no gaps, nothing outside."""
    union = shapely.union_all(children)
    assert abs(union.area - parent.area) <= 1.0 * len(children), label
    assert shapely.difference(parent, union).area <= 1.0, f"{label}: gap"
    assert shapely.difference(union, parent).area <= 1.0, f"{label}: outside"
    i, j = shapely.STRtree(children).query(children, predicate="intersects")
    pairs = i < j
    overlap = shapely.area(shapely.intersection(children[i[pairs]], children[j[pairs]]))
    assert overlap.sum() <= 0.01, f"{label}: overlap {overlap.sum():.4f} m²"
    buffered = shapely.buffer(parent, 1.0)
    assert shapely.within(children, buffered).all(), f"{label}: child outside parent"


def test_codes_and_hierarchy(districts, streets, communities) -> None:
    assert len(communities) == 121
    codes = communities["code"]
    assert codes.is_unique and codes.str.fullmatch(r"\d{12}").all()
    assert (codes.str[:9] == communities["parent"]).all()
    assert set(communities["parent"]) == set(streets["code"])  # every street has communities
    assert streets["code"].is_unique and streets["code"].str.fullmatch(r"\d{9}").all()
    assert (streets["code"].str[:6] == streets["parent"]).all()
    assert set(streets["parent"]) == set(districts["code"])
    assert set(communities["level"]) == {"community"} and set(streets["level"]) == {"street"}
    per_district = communities["parent"].str[:6].value_counts()
    for code, target in {XILING: 50, WUJIAGANG: 38, DIANJUN: 18, XIAOTING: 15}.items():
        assert abs(int(per_district[code]) - target) <= 5, (code, per_district[code])
    names = communities.assign(d=communities["parent"].str[:6])
    assert not names.duplicated(["d", "name"]).any()
    assert names["name"].str.contains(r"(?:社区|村)$").all()


def test_areas_are_valid_single_polygons(streets, communities) -> None:
    for gdf in (streets, communities):
        geoms = gdf.geometry.to_numpy()
        assert shapely.is_valid(geoms).all()
        assert set(shapely.get_type_id(geoms)) <= {3, 6}  # Polygon, MultiPolygon
        assert (shapely.get_num_geometries(geoms) == 1).all()
        coords = shapely.get_coordinates(geoms)
        assert np.array_equal(coords, np.round(coords, 7))  # written at 7 decimals


def test_streets_partition_each_district(districts, streets) -> None:
    st_m = _m(streets.geometry)
    for code, geom in zip(districts["code"], _m(districts.geometry), strict=True):
        children = st_m[(streets["parent"] == code).to_numpy()]
        assert len(children) >= 3
        _assert_partition(geom, children, code)


def test_communities_partition_each_street(streets, communities) -> None:
    cm_m = _m(communities.geometry)
    for code, geom in zip(streets["code"], _m(streets.geometry), strict=True):
        _assert_partition(geom, cm_m[(communities["parent"] == code).to_numpy()], code)


def test_households_lie_strictly_inside_their_community(communities, households) -> None:
    assert households["id"].is_unique
    polys = communities.set_index("code").loc[households["community"]].geometry.to_numpy()
    pts = shapely.points(households[["lon", "lat"]].to_numpy())
    assert shapely.contains_properly(polys, pts).all()
    clearance = shapely.distance(to_metric(pts, METRIC), to_metric(shapely.boundary(polys), METRIC))
    assert clearance.min() >= 1.0  # not on (or next to) an edge


def test_community_counts_are_sums_of_their_units(communities, households, streets) -> None:
    sums = households.groupby("community")[["households", "residents"]].sum()
    cm = communities.set_index("code")
    assert (sums.index.sort_values() == cm.index.sort_values()).all()
    assert (cm.loc[sums.index, "households"] == sums["households"]).all()
    assert (cm.loc[sums.index, "population"] == sums["residents"]).all()
    by_street = communities.groupby("parent")["households"].sum()
    assert (streets.set_index("code").loc[by_street.index, "households"] == by_street).all()


def test_totals_and_building_points(households) -> None:
    assert abs(households["households"].sum() / 280_000 - 1) <= 0.02
    assert abs(households["residents"].sum() / 750_000 - 1) <= 0.02
    assert 25_000 <= len(households) <= 45_000
    assert households["households"].between(1, 200).all()
    assert (households["residents"] >= households["households"]).all()
    assert (households["households"] >= 40).any() and (households["households"] <= 3).any()
    xy = shapely.get_coordinates(
        to_metric(shapely.points(households[["lon", "lat"]].to_numpy()), METRIC)
    )
    dist, _ = cKDTree(xy).query(xy, k=2)
    assert dist[:, 1].min() >= 14.5  # buildings ~15 m apart at least


def test_urban_core_is_denser_than_rural_districts(communities) -> None:
    area_km2 = shapely.area(_m(communities.geometry)) / 1e6
    density = communities["households"] / area_km2
    district = communities["parent"].str[:6]
    assert density[district == XILING].median() >= 10 * density[district == DIANJUN].median()


def test_roads_stay_inside_the_districts(districts, roads) -> None:
    assert 3_000 <= len(roads) <= 15_000
    land = shapely.buffer(shapely.union_all(_m(districts.geometry)), 1.0)
    assert shapely.covered_by(_m(roads.geometry), land).all()
    geoms = dict(zip(districts["code"], districts.geometry, strict=True))
    east_bank = shapely.union_all([geoms[XILING], geoms[WUJIAGANG], geoms[XIAOTING]])
    river = shapely.intersection(geoms[DIANJUN].boundary, east_bank.boundary)  # the Yangtze
    assert shapely.intersects(roads.geometry.to_numpy(), river).sum() <= 2  # the bridges


def test_road_nodes_are_consistent(roads) -> None:
    assert roads["id"].is_unique
    assert set(roads["class"]) <= {"primary", "secondary", "residential"}
    assert (roads["maxspeed_kmh"] > 0).all() and (roads["source"] != roads["target"]).all()
    node_of: dict[tuple[float, float], int] = {}
    coord_of: dict[int, tuple[float, float]] = {}
    for src, dst, geom in zip(roads["source"], roads["target"], roads.geometry, strict=True):
        for node, xy in ((src, geom.coords[0]), (dst, geom.coords[-1])):
            assert node_of.setdefault(xy, node) == node, f"{xy} has two node ids"
            assert coord_of.setdefault(node, xy) == xy, f"node {node} has two coordinates"
    length = shapely.length(_m(roads.geometry))
    assert np.allclose(length, roads["length_m"], atol=0.1, rtol=0.001)
    n = int(max(roads["source"].max(), roads["target"].max())) + 1
    graph = coo_matrix((np.ones(len(roads)), (roads["source"], roads["target"])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    share = np.bincount(label[roads["source"]]).max() / len(roads)
    assert share >= 0.95  # connected enough to route on


def test_generator_is_deterministic(tmp_path, districts) -> None:
    cfg = ScenarioConfig(scale=0.1)  # a tenth of the households: same pipeline, faster
    first = write_scenario(generate_scenario(districts, cfg), tmp_path / "a")
    again = generate_scenario(districts, cfg)
    second = write_scenario(again, tmp_path / "b")
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert len(again.communities) == 121
    assert abs(again.households["households"].sum() / 28_000 - 1) <= 0.05
