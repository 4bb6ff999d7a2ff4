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

This module assembles and writes the layers; the parts live in :mod:`gridmap.scenario_base`
(data tables, settings, helpers), :mod:`gridmap.scenario_roads` (1, 2),
:mod:`gridmap.scenario_households` (3 and the final assignment to communities),
:mod:`gridmap.scenario_power` and :mod:`gridmap.scenario_partition` (4).

Examples
--------
>>> ScenarioConfig().communities["420502"]
50
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, NamedTuple

import geopandas as gpd
import numpy as np
import shapely

from gridmap.crs import to_wgs84
from gridmap.scenario_base import (
    _SURNAMES,
    _TERRAIN,
    _URBAN_STEMS,
    CENTRES,
    METRIC,
    STREETS,
    ScenarioConfig,
    _m,
    _xy_m,
)
from gridmap.scenario_households import _assign, _households
from gridmap.scenario_partition import _district_areas
from gridmap.scenario_roads import _land, _roads, _villages

__all__ = [
    "CENTRES",
    "STREETS",
    "Scenario",
    "ScenarioConfig",
    "generate_scenario",
    "load_districts",
    "write_scenario",
]


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
