"""Edited grids back to lon/lat for storage, noded so the partition survives the projection.

Edits run in a metric CRS; the table stores lon/lat. A straight edge in metres is not quite
straight in lon/lat (≈ 5 mm off over 650 m around Yichang), so a vertex of one grid lying on a
neighbour's edge (a T-junction) would open square metres of overlap or gap once stored and
projected again. :func:`lonlat_grids` nodes edited grids with their neighbours first.
"""

from __future__ import annotations

from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from gridmap.crs import to_metric, transform_geometry
from gridmap.edit_checks import OVERLAP_M2
from gridmap.editing import Edit
from gridmap.errors import InvalidInput

__all__ = ["lonlat_grids", "to_wgs84_polygon"]

CRUMB_DEG2 = 1e-12  # ≈ 0.01 m² in lon/lat: polygon crumbs below this are overlay debris
NODE_M = 0.001  # a vertex within 1 mm of a neighbour's edge is inserted into that edge


def to_wgs84_polygon(geom: BaseGeometry, crs: str | None, code: str) -> BaseGeometry:
    """Back to lon/lat for storage, still valid (the table's CHECK would refuse it otherwise)."""
    out = geom if crs is None else transform_geometry(geom, crs, "wgs84")
    parts = shapely.get_parts(out if out.is_valid else shapely.make_valid(out))
    parts = [p for p in parts if p.geom_type == "Polygon" and p.area > CRUMB_DEG2]
    if len(parts) != len(shapely.get_parts(out)) or not out.is_valid:
        out = shapely.union_all(parts) if parts else shapely.Polygon()
    if not out.is_valid or out.is_empty:
        raise InvalidInput(
            f"grid {code} would not be a valid polygon in lon/lat ({shapely.is_valid_reason(out)})",
            code="invalid-geometry",
        )
    return out


def lonlat_grids(
    edit: Edit, crs: str, stored: dict[str, dict[str, Any]]
) -> tuple[dict[str, BaseGeometry], set[str]]:
    """Every grid of the community in lon/lat, and the codes whose stored rows must change.

    Edited grids are first noded with their neighbours in metres: a vertex of one lying on the
    other's edge is inserted into that edge (``shapely.snap``). A straight edge in metres is
    not straight in lon/lat (≈ 5 mm off over 650 m here), so a T-junction left in place would
    open square metres of overlap or gap once stored and projected again. Untouched grids
    that gain a vertex are rewritten too; the others stay exactly as stored.
    """
    metric = {str(k): g for k, g in zip(edit.grids["code"], edit.grids.geometry, strict=True)}
    rewrite = {c for c in metric if c in edit.touched}
    for code in sorted(rewrite):
        x = metric[code]
        for other in sorted(metric):
            n = metric[other]
            if other == code or not n.buffer(NODE_M).intersects(x):
                continue
            noded = shapely.snap(n, x, NODE_M)
            if shapely.get_num_coordinates(noded) != shapely.get_num_coordinates(n):
                metric[other] = noded
                rewrite.add(other)
            x = shapely.snap(x, metric[other], NODE_M)
        metric[code] = x
    placed = {
        k: to_wgs84_polygon(metric[k], crs, k)
        if k in rewrite
        else shapely.from_wkb(bytes.fromhex(stored[k]["wkb"]))
        for k in metric
    }
    # Near-coincident vertices (rounded client input) can still leave a hair of overlap once
    # projected back; trimming the edited grid by its neighbour turns it into a hair of gap,
    # which the partition rule tolerates (gaps up to 1 m², overlaps only to 0.01 m²).
    for code in sorted(rewrite):
        for other in sorted(placed):
            if other == code or not placed[other].intersects(placed[code]):
                continue
            hair = shapely.intersection(
                shapely.make_valid(to_metric(placed[code], crs)),
                shapely.make_valid(to_metric(placed[other], crs)),
            ).area
            if hair > OVERLAP_M2 / 10:
                trimmed = shapely.difference(placed[code], placed[other])
                placed[code] = to_wgs84_polygon(trimmed, None, code)
    return placed, rewrite
