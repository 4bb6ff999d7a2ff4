"""Partition checks in a metric CRS: sibling overlaps, coverage gaps, containment in a parent.

Areas (districts ▸ streets ▸ communities) and later grids must partition their parent: no two
siblings overlap, together they cover the parent, and none reaches outside it. These functions
find violations and describe each as a :class:`Problem` that a planner can act on — with the
feature codes, the area in m² and a WGS84 lon/lat location — instead of a bare ``False``.

The partition functions take valid polygons in a projected metric CRS (see
:func:`gridmap.crs.to_metric`), whose CRS is needed to report locations in WGS84;
:func:`check_geometry` screens one WGS84 geometry first (empty, type, NaN, axis swap, validity).

Examples
--------
>>> import geopandas as gpd, shapely
>>> kids = gpd.GeoDataFrame({"code": ["a", "b"]}, crs="EPSG:4546",
...     geometry=[shapely.box(528000, 3397000, 528100, 3397100),
...               shapely.box(528050, 3397000, 528150, 3397100)])
>>> [(p.kind, p.feature, p.related, round(p.area_m2)) for p in overlaps(kids)]
[('sibling-overlap', 'a', 'b', 5000)]
>>> parent = shapely.box(528000, 3397000, 528200, 3397100)
>>> [(p.kind, round(p.area_m2)) for p in gaps(parent, kids, parent_code="p")]
[('coverage-gap', 5000)]
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from gridmap.crs import normalize_crs, transform_geometry
from gridmap.errors import InvalidInput

__all__ = [
    "PROBLEM_KINDS",
    "Problem",
    "check_geometry",
    "check_partition",
    "feature_label",
    "gaps",
    "near",
    "outside_parent",
    "overlaps",
    "polygonal_parts",
    "to_lonlat",
]

PROBLEM_KINDS = (
    "invalid-geometry",
    "self-intersection",
    "unclosed-ring",
    "too-few-points",
    "empty-geometry",
    "wrong-geometry-type",
    "non-finite-coordinate",
    "too-many-vertices",
    "too-many-rings",
    "coordinate-out-of-range",
    "probable-lat-lon-swap",
    "missing-field",
    "duplicate-code",
    "unknown-parent",
    "outside-parent",
    "sibling-overlap",
    "coverage-gap",
    "non-contiguous",
    "empty-grid",
    "building-split",
)

_OUTSIDE_MIN_AREA = 0.01  # m²; below this a "part outside" is floating-point noise
_REASON = re.compile(r"^(?P<text>[^\[]*)\[\s*(?P<x>\S+)\s+(?P<y>[^\s\]]+)")
_REASON_KINDS = (
    ("ring self-intersection", "self-intersection"),
    ("self-intersection", "self-intersection"),
    ("too few points", "too-few-points"),
    ("ring is not closed", "unclosed-ring"),
    ("invalid coordinate", "non-finite-coordinate"),
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one feature, phrased for the person who has to fix it.

    ``kind`` is a stable machine code (one of :data:`PROBLEM_KINDS`); ``feature`` the feature's
    code, or ``"#<index>"`` when it has none; ``related`` the other feature involved (the second
    sibling of an overlap), if any; ``location`` WGS84 ``(lon, lat)``; ``area_m2`` the area
    concerned, for overlaps, gaps and parts outside a parent.
    """

    kind: str
    feature: str | None
    message: str
    location: tuple[float, float] | None = None
    area_m2: float | None = None
    related: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (location as a ``[lon, lat]`` list)."""
        out = asdict(self)
        out["location"] = list(self.location) if self.location is not None else None
        return out


def feature_label(code: Any, index: Any) -> str:
    """The name a problem uses for a feature: its code, or ``#<index>`` when it has none."""
    missing = pd.isna(code)
    if (isinstance(missing, bool) and missing) or str(code).strip() == "":
        return f"#{index}"
    return str(code)


def to_lonlat(point: BaseGeometry | None, crs: str | None) -> tuple[float, float] | None:
    """WGS84 ``(lon, lat)`` of a point given in ``crs`` (``None`` if there is no point)."""
    if point is None or point.is_empty:
        return None
    if crs is not None and normalize_crs(crs) != "wgs84":
        point = transform_geometry(point, crs, "wgs84")
    return (round(float(point.x), 7), round(float(point.y), 7))


def polygonal_parts(geom: BaseGeometry | None) -> list[BaseGeometry]:
    """The polygons inside any geometry (overlay results mix in lines and points)."""
    if geom is None or geom.is_empty:
        return []
    parts = shapely.get_parts(geom)
    out: list[BaseGeometry] = []
    for part in parts:
        if part.geom_type == "Polygon" and not part.is_empty:
            out.append(part)
        elif part.geom_type in ("MultiPolygon", "GeometryCollection"):
            out.extend(polygonal_parts(part))
    return out


def near(loc: tuple[float, float] | None) -> str:
    """Location phrase for messages: ``near lon 111.300000, lat 30.700000``."""
    return f"near lon {loc[0]:.6f}, lat {loc[1]:.6f}" if loc else "(no usable location)"


def _crs_name(crs: Any) -> str:
    """An EPSG string for a pyproj CRS / string, or InvalidInput when it cannot be known."""
    if crs is None:
        raise InvalidInput(
            "the metric CRS is unknown, so locations cannot be given in WGS84; "
            "pass crs= or use a GeoDataFrame with .crs set",
            code="unknown-crs",
        )
    epsg = crs.to_epsg() if hasattr(crs, "to_epsg") else None
    return f"EPSG:{epsg}" if epsg else str(crs)


def _labels(frame: gpd.GeoDataFrame | gpd.GeoSeries) -> list[str]:
    codes = frame["code"] if isinstance(frame, gpd.GeoDataFrame) and "code" in frame else None
    return [
        feature_label(None if codes is None else codes.iloc[i], idx)
        for i, idx in enumerate(frame.index)
    ]


def overlaps(gdf_metric: gpd.GeoDataFrame | gpd.GeoSeries, min_area: float = 1.0) -> list[Problem]:
    """Pairs of siblings whose interiors overlap by more than ``min_area`` m².

    Candidate pairs come from an STRtree, then ``relate_pattern('T********')`` keeps only pairs
    whose interiors meet, so neighbours sharing an edge (the normal case) cost no overlay.
    Empty, missing and invalid geometries are skipped (they are reported elsewhere).

    Parameters
    ----------
    gdf_metric : GeoDataFrame with a metric ``crs`` and a ``code`` column (or a GeoSeries).
    min_area : overlaps of this many m² or less are ignored (digitising noise).
    """
    crs = _crs_name(gdf_metric.crs)
    geoms = np.asarray(gdf_metric.geometry.values, dtype=object)
    labels = _labels(gdf_metric)
    usable = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    usable[usable] &= shapely.is_valid(geoms[usable])
    idx = np.flatnonzero(usable)
    if len(idx) < 2:
        return []
    sub = geoms[idx]
    left, right = shapely.STRtree(sub).query(sub, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    inner = shapely.relate_pattern(sub[left], sub[right], "T********")
    left, right = left[inner], right[inner]
    problems = []
    for a, b, inter in zip(left, right, shapely.intersection(sub[left], sub[right]), strict=True):
        parts = polygonal_parts(inter)
        area = float(sum(p.area for p in parts))
        if area <= min_area:
            continue
        biggest = max(parts, key=lambda p: p.area)
        loc = to_lonlat(biggest.point_on_surface(), crs)
        la, lb = labels[idx[a]], labels[idx[b]]
        problems.append(
            Problem(
                "sibling-overlap",
                la,
                f"{la} and {lb} overlap by {area:.1f} m² {near(loc)}",
                loc,
                area,
                related=lb,
            )
        )
    return problems


def gaps(
    parent_geom_metric: BaseGeometry,
    children_metric: gpd.GeoDataFrame | gpd.GeoSeries | Any,
    min_area: float = 1.0,
    *,
    parent_code: str | None = None,
    crs: str | None = None,
) -> list[Problem]:
    """Parts of the parent that no child covers, one problem per gap larger than ``min_area``.

    Parameters
    ----------
    parent_geom_metric : the parent's (valid) polygon in the metric CRS.
    children_metric : GeoDataFrame/GeoSeries (or array) of the children's valid polygons.
    min_area : gaps of this many m² or less are ignored (shared-edge rounding).
    parent_code : names the parent in the problems (``Problem.feature``).
    crs : metric CRS of the inputs; defaults to ``children_metric.crs``.
    """
    crs = _crs_name(crs if crs is not None else getattr(children_metric, "crs", None))
    kids = np.asarray(getattr(children_metric, "geometry", children_metric), dtype=object)
    kids = kids[~(shapely.is_missing(kids) | shapely.is_empty(kids))]
    covered = shapely.union_all(kids) if len(kids) else shapely.Polygon()
    uncovered = shapely.difference(parent_geom_metric, covered)
    label = parent_code or "parent"
    problems = []
    for part in sorted(polygonal_parts(uncovered), key=lambda p: -p.area):
        if part.area <= min_area:
            continue
        loc = to_lonlat(part.point_on_surface(), crs)
        problems.append(
            Problem(
                "coverage-gap",
                parent_code,
                f"{label}: {part.area:.1f} m² not covered by any child {near(loc)}",
                loc,
                float(part.area),
            )
        )
    return problems


def outside_parent(
    child_geom_metric: BaseGeometry,
    parent_geom_metric: BaseGeometry,
    tolerance: float = 1.0,
    *,
    code: str | None = None,
    parent_code: str | None = None,
    crs: str | None = None,
) -> Problem | None:
    """A problem if the child reaches more than ``tolerance`` metres outside its parent.

    Boundaries digitised separately wobble by centimetres along shared edges; only parts beyond
    the tolerance count. The reported area is everything outside the parent (without tolerance),
    the location a point in the largest part beyond the tolerance.

    Parameters
    ----------
    child_geom_metric, parent_geom_metric : valid polygons in the metric CRS ``crs``.
    tolerance : metres the child may stray outside the parent.
    code, parent_code : names used in the message.
    crs : metric CRS of the geometries (required to give the location in WGS84).
    """
    crs = _crs_name(crs)
    beyond = polygonal_parts(child_geom_metric.difference(parent_geom_metric.buffer(tolerance)))
    beyond = [p for p in beyond if p.area > _OUTSIDE_MIN_AREA]
    if not beyond:
        return None
    area = float(
        sum(p.area for p in polygonal_parts(child_geom_metric.difference(parent_geom_metric)))
    )
    loc = to_lonlat(max(beyond, key=lambda p: p.area).point_on_surface(), crs)
    label = code or "child"
    parent = f"its parent {parent_code}" if parent_code else "its parent"
    return Problem(
        "outside-parent",
        code,
        f"{label}: {area:.1f} m² lies outside {parent} "
        f"(more than {tolerance:g} m beyond its boundary) {near(loc)}",
        loc,
        area,
        related=parent_code,
    )


def _parse_reason(reason: str) -> tuple[str, str, tuple[float, float] | None]:
    """Split GEOS ``is_valid_reason`` ("Self-intersection[111.3 30.7]") into kind, text, loc."""
    m = _REASON.match(reason)
    text = (m.group("text") if m else reason).strip()
    kind = next((k for key, k in _REASON_KINDS if text.lower().startswith(key)), "invalid-geometry")
    loc = None
    if m:
        try:
            x, y = float(m.group("x")), float(m.group("y"))
            loc = (x, y) if np.isfinite(x) and np.isfinite(y) else None
        except ValueError:
            loc = None
    return kind, text, loc


def check_geometry(
    geom: BaseGeometry | None, feature: str | None, who: str | None = None
) -> tuple[list[Problem], bool]:
    """Problems of one WGS84 area geometry, and whether it is fit for metric checks.

    Reports, first match only: empty, not (Multi)Polygon, NaN/inf, probable lat/lon swap,
    out-of-range lon/lat, then GEOS invalidity with its reason and location. ``who`` names the
    feature in messages (e.g. ``"community 420502001001 (学院街社区)"``).
    """
    who = who or feature or "feature"

    def one(kind: str, text: str, loc: tuple[float, float] | None) -> tuple[list[Problem], bool]:
        return [Problem(kind, feature, f"{who}: {text} {near(loc)}", loc)], False

    if geom is None or geom.is_empty:
        return one("empty-geometry", "has no geometry", None)
    xy = shapely.get_coordinates(geom)
    finite = np.isfinite(xy).all(axis=1)
    first = (float(xy[finite][0, 0]), float(xy[finite][0, 1])) if finite.any() else None
    inside = first if first and abs(first[0]) <= 180 and abs(first[1]) <= 90 else None
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        return one(
            "wrong-geometry-type",
            f"is a {geom.geom_type}, not a Polygon/MultiPolygon",
            inside,
        )
    if not finite.all():
        return one("non-finite-coordinate", "has a NaN/infinite coordinate", inside)
    x, y = xy[:, 0], xy[:, 1]
    china_swap = bool(((x >= 0) & (x <= 60) & (y >= 70) & (y <= 140)).all())
    lat_beyond = bool(
        (np.abs(y) > 90).any() and (np.abs(x) <= 90).all() and (np.abs(y) <= 180).all()
    )
    if china_swap or lat_beyond:
        back = (float(y[0]), float(x[0]))
        return one(
            "probable-lat-lon-swap",
            f"looks like lat/lon swapped: first point "
            f"({x[0]:.6f}, {y[0]:.6f}) is plausible only as lon {back[0]:.6f}, "
            f"lat {back[1]:.6f}; check the axis order",
            back,
        )
    out = (np.abs(x) > 180) | (np.abs(y) > 90)
    if out.any():
        return one(
            "coordinate-out-of-range",
            f"coordinate ({x[out][0]:.3f}, {y[out][0]:.3f}) is not a lon/lat (wrong CRS?)",
            None,
        )
    reason = shapely.is_valid_reason(geom)
    if reason != "Valid Geometry":
        kind, text, loc = _parse_reason(reason)
        return one(kind, f"invalid geometry ({text.lower()})", loc or first)
    return [], True


def check_partition(
    children_metric: gpd.GeoDataFrame,
    parents_metric: Mapping[str, BaseGeometry] | None = None,
    *,
    tolerance: float = 1.0,
    min_area: float = 1.0,
    incomplete: Collection[str | None] = (),
) -> list[Problem]:
    """All partition problems of valid children (``code``, ``parent`` columns, metric ``crs``).

    Siblings (same ``parent``) must not overlap. With ``parents_metric`` (parent code → metric
    geometry), each child must lie within ``tolerance`` m of its parent, and the children of
    each parent must cover it — except parents in ``incomplete`` (some child was left out, e.g.
    for invalid geometry, so a gap there would be a false alarm). Parents missing from the
    mapping are skipped.
    """
    crs = _crs_name(children_metric.crs)
    pcol = (
        children_metric["parent"] if "parent" in children_metric else [None] * len(children_metric)
    )
    groups: dict[Any, list[int]] = {}
    for i, pcode in enumerate(pcol):
        groups.setdefault(None if pcode is None or pcode != pcode else pcode, []).append(i)
    labels = _labels(children_metric)
    geoms = np.asarray(children_metric.geometry.values, dtype=object)
    problems: list[Problem] = []
    for pcode, members in groups.items():
        if len(members) > 1:
            problems += overlaps(children_metric.iloc[members], min_area)
        if parents_metric is None or pcode is None or pcode not in parents_metric:
            continue
        parent = parents_metric[pcode]
        shell = parent.buffer(tolerance)
        shapely.prepare(shell)  # most children are well inside: skip the overlay for them
        for i in members:
            if not shell.covers(geoms[i]):
                found = outside_parent(
                    geoms[i], parent, tolerance, code=labels[i], parent_code=pcode, crs=crs
                )
                problems += [found] if found else []
        if pcode not in incomplete:
            problems += gaps(parent, geoms[members], min_area, parent_code=pcode, crs=crs)
    return problems
