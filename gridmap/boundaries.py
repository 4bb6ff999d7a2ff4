"""Validate and repair administrative boundary sets (district ▸ street ▸ community).

:func:`validate_boundaries` lists every problem (it never repairs); :func:`repair_boundaries` is
a separate, explicit step. Reading files (:func:`read_boundary_file`, :class:`FieldMap`) lives in
:mod:`gridmap.boundary_io` and is re-exported here; a feature that cannot be read becomes a
:class:`Problem` naming it.

Examples
--------
>>> from pathlib import Path
>>> path = Path(__file__).parents[1] / "data/boundaries/yichang_districts.geojson"
>>> gdf, problems = read_boundary_file(path)
>>> list(gdf.columns), problems
(['code', 'name', 'parent', 'geometry'], [])
>>> validate_boundaries(gdf, level="district")
[]
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from gridmap.boundary_io import FieldMap, _bad, _text, read_boundary_file
from gridmap.crs import metric_crs_for_geometry, to_metric
from gridmap.topology import (
    Problem,
    check_geometry,
    check_partition,
    feature_label,
    polygonal_parts,
)

__all__ = [
    "LEVELS",
    "FieldMap",
    "Problem",
    "read_boundary_file",
    "repair_boundaries",
    "size_problems",
    "validate_boundaries",
]

LEVELS = ("district", "street", "community", "grid")
_DENSIFY_DEG = 0.001
_GEOS_KINDS = ("self-intersection", "invalid-geometry", "too-few-points", "unclosed-ring")


def size_problems(gdf: Any, *, max_vertices: int, max_rings: int) -> list[Problem]:
    """Features past the vertex or ring caps (checked before any geometry work, which a
    runaway geometry would tie up). Raise the caps with GRIDMAP_MAX_VERTICES/_MAX_RINGS for
    detailed official boundaries."""
    geoms = np.asarray(gdf.geometry.values, dtype=object)
    codes = gdf["code"] if "code" in gdf.columns else pd.Series([None] * len(gdf))
    vertices = shapely.get_num_coordinates(geoms)
    polygons = shapely.get_parts(geoms, return_index=True)
    rings = np.bincount(
        polygons[1], 1 + shapely.get_num_interior_rings(polygons[0]), minlength=len(geoms)
    ).astype(int)
    out = []
    for i, (code, n, r) in enumerate(zip(codes, vertices, rings, strict=True)):
        label = feature_label(code, i)
        if n > max_vertices:
            msg = f"{label} has {n:,} vertices; at most {max_vertices:,} are accepted"
            out.append(Problem("too-many-vertices", label, msg))
        if r > max_rings:
            msg = f"{label} has {r} rings; at most {max_rings} are accepted"
            out.append(Problem("too-many-rings", label, msg))
    return out


def _check_frame(gdf: Any, what: str) -> None:
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise _bad(f"{what} must be a GeoDataFrame", "invalid-input")
    if gdf.crs is not None and not (
        gdf.crs.to_epsg() == 4326 or gdf.crs.to_authority() == ("OGC", "CRS84")
    ):
        raise _bad(f"{what} must be in EPSG:4326, not {gdf.crs.to_string()}", "wrong-crs")
    if missing := [c for c in ("code", "name") if c not in gdf.columns]:
        raise _bad(f"{what} lacks column(s) {missing}")


def _column(gdf: gpd.GeoDataFrame, name: str) -> list[str | None]:
    return [_text(v) for v in gdf[name]] if name in gdf.columns else [None] * len(gdf)


def _to_metric(geoms: Any, crs: str) -> Any:
    """Project after densifying to ≤ 0.001° (~100 m) segments: a long straight lon/lat edge
    projects to a curve, and a bare chord would leave gaps/overlaps of many m² along it."""
    return to_metric(shapely.segmentize(geoms, _DENSIFY_DEG), crs)


def validate_boundaries(
    gdf: gpd.GeoDataFrame, *, level: str, parents: gpd.GeoDataFrame | None = None
) -> list[Problem]:
    """Every problem in a WGS84 boundary set; nothing is repaired.

    Per feature: missing code/name (and parent code when ``parents`` is given), then the first
    geometry problem (see :func:`gridmap.topology.check_geometry`). Across features: duplicate
    codes; siblings (same parent) overlapping by > 1 m²; with ``parents``: unknown parent codes,
    children reaching > 1 m outside their parent, and gaps > 1 m² in the coverage of each parent
    that has children here. Metric checks run in the local metric CRS (EPSG:4546 for Yichang)
    and skip features with geometry problems (a parent with such a child gets no gap check).
    """
    if level not in LEVELS:
        raise _bad(f"unknown level {level!r}; use one of {LEVELS}", "invalid-input")
    _check_frame(gdf, "boundaries")
    if parents is not None:
        _check_frame(parents, "parents")
    codes, names, pcodes = _column(gdf, "code"), _column(gdf, "name"), _column(gdf, "parent")
    labels = [feature_label(c, i) for c, i in zip(codes, gdf.index, strict=True)]
    geoms = np.asarray(gdf.geometry.values, dtype=object)
    required = ("code", "name", "parent") if parents is not None else ("code", "name")
    problems: list[Problem] = []
    usable = np.zeros(len(gdf), dtype=bool)
    for i, label in enumerate(labels):
        who = f"{level} {label}" + (f" ({names[i]})" if names[i] else "")
        values = {"code": codes[i], "name": names[i], "parent": pcodes[i]}
        missing = [f for f in required if values[f] is None]
        problems += [Problem("missing-field", label, f"{who}: no {f}") for f in missing]
        found, usable[i] = check_geometry(geoms[i], label, who)
        problems += found
    for code, count in Counter(c for c in codes if c is not None).items():
        if count > 1:
            rows = ", ".join(f"#{gdf.index[i]}" for i, c in enumerate(codes) if c == code)
            text = f"{level} code {code} is used by {count} features ({rows})"
            problems.append(Problem("duplicate-code", code, text))
    known = set(_column(parents, "code")) if parents is not None else set()
    for i, p in enumerate(pcodes):
        if parents is not None and p and p not in known:
            text = f"{level} {labels[i]}: parent code {p} is not among the parents"
            problems.append(Problem("unknown-parent", labels[i], text))
    if not usable.any():
        return problems
    crs = metric_crs_for_geometry(shapely.box(*shapely.total_bounds(geoms[usable])))
    sel = np.flatnonzero(usable)
    data = {"code": [labels[i] for i in sel], "parent": [pcodes[i] for i in sel]}
    kids = gpd.GeoDataFrame(data, geometry=list(_to_metric(geoms[sel], crs)), crs=crs)
    pmetric: dict[str, BaseGeometry] | None = None
    if parents is not None:
        pmetric = {
            c: _to_metric(g, crs)
            for c, g in zip(_column(parents, "code"), parents.geometry.values, strict=True)
            if c is not None and c in set(pcodes) and check_geometry(g, c)[1]
        }
    incomplete = {p for p, ok in zip(pcodes, usable, strict=True) if not ok}
    return problems + check_partition(kids, pmetric, incomplete=incomplete)


def repair_boundaries(gdf: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, list[dict[str, Any]]]:
    """Make invalid features valid (``shapely.make_valid``, polygonal parts, MultiPolygon).

    Only features whose one problem is GEOS invalidity (self-intersection etc.) change; empty,
    non-polygonal, NaN, swapped or out-of-range ones are left for a human. Each change is
    reported with the feature, the GEOS reason before, and the area before/after in m².
    """
    _check_frame(gdf, "boundaries")
    out = gdf.copy()
    geoms = np.asarray(out.geometry.values, dtype=object).copy()
    codes = _column(gdf, "code")
    changes = []
    for i, geom in enumerate(geoms):
        found, _ = check_geometry(geom, codes[i])
        if not found or found[0].kind not in _GEOS_KINDS:
            continue
        fixed = shapely.MultiPolygon(polygonal_parts(shapely.make_valid(geom)))
        crs = metric_crs_for_geometry(geom)
        before, after = (float(to_metric(g, crs).area) for g in (geom, fixed))
        changes.append(
            {
                "feature": feature_label(codes[i], gdf.index[i]),
                "code": codes[i],
                "reason": shapely.is_valid_reason(geom),
                "area_before_m2": before,
                "area_after_m2": after,
            }
        )
        geoms[i] = fixed
    out[out.geometry.name] = gpd.GeoSeries(geoms, index=out.index, crs=out.crs)
    return out, changes
