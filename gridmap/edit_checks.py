"""Validation of one community's grids after an edit: the partition rules, as problems to fix.

The same rules as gridding (issue: "every point of a community lies in exactly one grid"): each
grid valid, non-empty and one piece; inside the community; no overlap above 0.01 m²; no gap above
1 m²; no building footprint cut between grids. Every problem names its grid and a WGS84 location,
so the planner page can put it on the map and the API can answer a precise 422.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from gridmap.topology import Problem, gaps, near, outside_parent, overlaps, to_lonlat

__all__ = ["GAP_M2", "OVERLAP_M2", "validate"]

OVERLAP_M2 = 0.01
GAP_M2 = 1.0
OUTSIDE_TOLERANCE_M = 0.5
SPLIT_SHARE = 0.01  # a footprint with more than this share on a second grid is cut


def _crs(grids: gpd.GeoDataFrame) -> str | None:
    return None if grids.crs is None else grids.crs.to_string()


def _piece_problems(grids: gpd.GeoDataFrame) -> list[Problem]:
    crs = _crs(grids)
    problems = []
    for code, geom in zip(grids["code"], grids.geometry, strict=True):
        code = str(code)
        if geom is None or geom.is_empty or geom.area < GAP_M2:
            problems.append(Problem("empty-grid", code, f"grid {code} has no area"))
            continue
        if not geom.is_valid:
            loc = to_lonlat(geom.representative_point(), crs)
            reason = shapely.is_valid_reason(geom)
            problems.append(
                Problem("invalid-geometry", code, f"grid {code}: {reason} {near(loc)}", loc)
            )
            continue
        parts = sorted(shapely.get_parts(geom), key=lambda p: -p.area)
        if len(parts) > 1:
            loc = to_lonlat(parts[1].representative_point(), crs)
            problems.append(
                Problem(
                    "non-contiguous",
                    code,
                    f"grid {code} would be in {len(parts)} pieces; a piece of "
                    f"{parts[1].area:.1f} m² lies apart {near(loc)}",
                    loc,
                    float(parts[1].area),
                )
            )
    return problems


def _split_buildings(grids: gpd.GeoDataFrame, units: gpd.GeoDataFrame | None) -> list[Problem]:
    if units is None or "footprint" not in units or not len(grids):
        return []
    foot = units["footprint"].to_numpy()
    has = np.flatnonzero([f is not None and not f.is_empty for f in foot])
    if not len(has):
        return []
    geoms = np.asarray(grids.geometry.values, dtype=object)
    fi, gi = shapely.STRtree(geoms).query(foot[has], predicate="intersects")
    share = shapely.area(shapely.intersection(foot[has][fi], geoms[gi])) / np.maximum(
        shapely.area(foot[has][fi]), 1e-9
    )
    fi, gi = fi[share > SPLIT_SHARE], gi[share > SPLIT_SHARE]
    problems = []
    for f in np.unique(fi):
        codes = sorted(str(grids["code"].iloc[g]) for g in gi[fi == f])
        if len(codes) < 2:
            continue
        unit = units.iloc[has[f]]
        loc = to_lonlat(unit.geometry, _crs(grids))
        problems.append(
            Problem(
                "building-split",
                codes[0],
                f"building {unit.get('id', has[f])} would be cut between grids "
                f"{' and '.join(codes)} {near(loc)}",
                loc,
                related=codes[1],
            )
        )
    return problems


def validate(
    grids: gpd.GeoDataFrame,
    community: BaseGeometry,
    community_code: str,
    units: gpd.GeoDataFrame | None = None,
) -> list[Problem]:
    """Every partition problem of a community's grids (metric CRS); empty means valid."""
    problems = _piece_problems(grids)
    bad = {p.feature for p in problems if p.kind in ("empty-grid", "invalid-geometry")}
    usable = grids[~grids["code"].astype(str).isin(bad)]
    problems += overlaps(usable, OVERLAP_M2)
    shell = community.buffer(OUTSIDE_TOLERANCE_M)
    for code, geom in zip(usable["code"], usable.geometry, strict=True):
        if not shell.covers(geom):
            found = outside_parent(
                geom,
                community,
                OUTSIDE_TOLERANCE_M,
                code=str(code),
                parent_code=community_code,
                crs=_crs(grids),
            )
            problems += [found] if found else []
    if not bad:
        problems += gaps(
            community, usable.geometry, GAP_M2, parent_code=community_code, crs=_crs(grids)
        )
    problems += _split_buildings(usable, units)
    return problems


def problems_json(problems: list[Problem]) -> list[dict[str, Any]]:
    """Problems as JSON-ready dicts (the 422 ``details`` and the page's error markers)."""
    return [p.to_dict() for p in problems]
