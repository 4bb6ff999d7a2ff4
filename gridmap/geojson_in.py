"""Geometries submitted by clients (GeoJSON, WGS84): parsed, capped and screened, or a 422.

Edits arrive from the planner page, from QGIS through the OGC API and from scripts. Before any
geometry work: the GeoJSON must parse, be of the expected type, stay under vertex and ring caps
(a runaway geometry must not tie up a worker), and pass the WGS84 screen of
:func:`gridmap.topology.check_geometry` (NaN, out of range, probable lat/lon swap, invalid).
Lines get the same screen minus the polygon checks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from gridmap.errors import InvalidInput, ValidationFailed
from gridmap.topology import Problem, check_geometry

__all__ = ["parse_geometry"]

POLYGONAL = ("Polygon", "MultiPolygon")
LINEAR = ("LineString", "MultiLineString")


def _fail(problem: Problem) -> ValidationFailed:
    return ValidationFailed(problem.message, code=problem.kind, details=[problem.to_dict()])


def _screen_line(geom: BaseGeometry, who: str) -> None:
    xy = shapely.get_coordinates(geom)
    if not np.isfinite(xy).all():
        raise _fail(Problem("non-finite-coordinate", None, f"{who} has a NaN/infinite coordinate"))
    x, y = xy[:, 0], xy[:, 1]
    if ((x >= 0) & (x <= 60) & (y >= 70) & (y <= 140)).all():
        raise _fail(
            Problem(
                "probable-lat-lon-swap",
                None,
                f"{who} looks like lat/lon swapped: ({x[0]:.6f}, {y[0]:.6f}) is plausible only "
                f"as lon {y[0]:.6f}, lat {x[0]:.6f}; send [lon, lat]",
            )
        )
    if ((np.abs(x) > 180) | (np.abs(y) > 90)).any():
        raise _fail(
            Problem("coordinate-out-of-range", None, f"{who} is not in lon/lat (wrong CRS?)")
        )


def parse_geometry(
    obj: Any,
    *,
    kinds: tuple[str, ...] = POLYGONAL,
    who: str = "geometry",
    max_vertices: int = 20_000,
    max_rings: int = 200,
) -> BaseGeometry:
    """A shapely geometry from a GeoJSON geometry (or Feature) dict, screened as above."""
    if isinstance(obj, dict) and obj.get("type") == "Feature":
        obj = obj.get("geometry")
    if not isinstance(obj, dict) or "type" not in obj:
        raise InvalidInput(f"{who}: expected a GeoJSON geometry object", code="invalid-geojson")
    try:
        geom = shape(obj)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        raise InvalidInput(
            f"{who}: not a valid GeoJSON geometry ({exc})", code="invalid-geojson"
        ) from None
    if geom.geom_type not in kinds:
        raise InvalidInput(
            f"{who}: a {geom.geom_type} where a {' or '.join(kinds)} is expected",
            code="wrong-geometry-type",
        )
    n = int(shapely.get_num_coordinates(geom))
    if n > max_vertices:
        raise InvalidInput(
            f"{who} has {n:,} vertices; at most {max_vertices:,} are accepted",
            code="too-many-vertices",
        )
    rings = sum(
        1 + len(p.interiors) for p in getattr(geom, "geoms", [geom]) if hasattr(p, "interiors")
    )
    if rings > max_rings:
        raise InvalidInput(
            f"{who} has {rings} rings; at most {max_rings} are accepted", code="too-many-rings"
        )
    if geom.geom_type in POLYGONAL:
        problems, _ = check_geometry(geom, None, who)
        if problems:
            raise _fail(problems[0])
    else:
        if geom.is_empty:
            raise InvalidInput(f"{who} is empty", code="empty-geometry")
        _screen_line(geom, who)
    return geom
