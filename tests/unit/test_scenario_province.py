"""Synthetic province: cities tiled side by side keep unique codes, a hierarchy and no overlap."""

from __future__ import annotations

import shapely

from gridmap.scenario import ScenarioConfig, load_districts
from gridmap.scenario_province import city_tile, incident_points, merge_tiles, tile_offsets
from gridmap.settings import PROJECT_ROOT

DISTRICTS = PROJECT_ROOT / "data" / "boundaries" / "yichang_districts.geojson"


def test_two_cities_form_one_consistent_province() -> None:
    d0 = load_districts(DISTRICTS)
    tiles = [
        city_tile(d0, k + 1, c, r, seed=ScenarioConfig().seed + k, scale=0.1)
        for k, (c, r) in enumerate(tile_offsets(2))
    ]
    districts, sc = merge_tiles(tiles)
    assert sorted(districts["code"]) == sorted(
        f"42{k:02d}{d[4:]}" for k in (1, 2) for d in d0["code"]
    )
    for layer, parents in ((sc.streets, districts), (sc.communities, sc.streets)):
        assert layer["code"].is_unique
        assert set(layer["parent"]) <= set(parents["code"])
        assert all(
            str(c).startswith(str(p)) for c, p in zip(layer["code"], layer["parent"], strict=True)
        )
    assert set(sc.households["community"]) <= set(sc.communities["code"])
    assert sc.households["id"].is_unique and sc.roads["id"].is_unique
    nodes = [set(t[1].roads["source"]) | set(t[1].roads["target"]) for t in tiles]
    assert not nodes[0] & nodes[1]  # road networks of different cities share no node id
    city = [shapely.union_all(t[0].geometry.values) for t in tiles]
    assert shapely.area(shapely.intersection(city[0], city[1])) == 0
    # each city's units lie in its own communities, and differ between seeds
    for _, s in tiles:
        comm = dict(zip(s.communities["code"], s.communities.geometry.values, strict=True))
        first = s.households.iloc[:50]
        assert all(
            shapely.covers(comm[c], shapely.Point(x, y))
            for c, x, y in zip(first["community"], first["lon"], first["lat"], strict=True)
        )
    hh = [t[1].communities["households"].tolist() for t in tiles]
    assert hh[0] != hh[1]  # another seed, another city
    inc = incident_points(sc.households, 500, seed=3)
    assert len(inc) == 500 and inc["id"].is_unique
    minx, miny, maxx, maxy = sc.communities.total_bounds
    assert inc["lon"].between(minx - 0.01, maxx + 0.01).all()
    assert inc["lat"].between(miny - 0.01, maxy + 0.01).all()
    assert inc["reported_at"].is_monotonic_increasing
