"""Planner edits on one community's grids — split, merge, reshape, move units — as pure geometry.

Each edit takes the community's grids as a GeoDataFrame in a metric CRS (``code`` column, one
polygon per row) and returns an :class:`Edit`: every grid after the edit, plus which codes it
changed, created or retired. Nothing here knows about drafts, locks or the database: the store
applies an edit only when :func:`gridmap.edit_checks.validate` finds no problem, so the partition
rule of gridding ("every point of the community in exactly one grid") survives every edit.

Codes: a grid that is cut keeps its code on the piece with the most households (postings and
care links follow the bulk of the people); the other pieces get fresh codes that were never used
in the community, so an old code never comes back meaning another place.

Examples
--------
>>> import geopandas as gpd, shapely
>>> g = gpd.GeoDataFrame({"code": ["c001", "c002"]}, crs="EPSG:4546",
...     geometry=[shapely.box(0, 0, 100, 100), shapely.box(100, 0, 200, 100)])
>>> e = merge(g, ["c001", "c002"], units=None)
>>> e.retired, round(e.grids.geometry.iloc[0].area)
(['c002'], 20000)
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from shapely.ops import split as split_along

from gridmap.errors import InvalidInput, NotFound, ValidationFailed
from gridmap.gridding import grid_community

__all__ = [
    "Edit",
    "assign_units",
    "create",
    "delete",
    "merge",
    "move_units",
    "new_codes",
    "replace_one",
    "reshape",
    "split_by_line",
    "split_into",
]

NOISE_M2 = 0.01  # polygon parts this small are floating-point debris of an overlay


@dataclass
class Edit:
    """All grids after an edit, and what changed (codes)."""

    grids: gpd.GeoDataFrame
    changed: list[str] = field(default_factory=list)  # new geometry, same code
    created: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)

    @property
    def touched(self) -> list[str]:
        """Codes whose rows must be rewritten (changed, created or retired)."""
        return sorted({*self.changed, *self.created, *self.retired})


def new_codes(community_code: str, taken: Collection[str], n: int) -> list[str]:
    """``n`` fresh codes: community code + 3-digit sequence after the highest ever taken."""
    seqs = [int(c[-3:]) for c in taken if c.startswith(community_code) and c[-3:].isdigit()]
    start = max(seqs, default=0) + 1
    if start + n - 1 > 999:
        raise InvalidInput(
            f"community {community_code} has no free grid codes left", code="codes-exhausted"
        )
    return [f"{community_code}{s:03d}" for s in range(start, start + n)]


def _clean(geom: BaseGeometry) -> BaseGeometry:
    """Valid polygonal geometry without overlay debris (parts under NOISE_M2)."""
    if geom is None or geom.is_empty:
        return shapely.Polygon()
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and p.area > NOISE_M2]
    if not parts:
        return shapely.Polygon()
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def _index(grids: gpd.GeoDataFrame, code: str) -> int:
    hits = np.flatnonzero(grids["code"].to_numpy() == code)
    if not len(hits):
        raise NotFound(f"grid {code} is not in this draft", code="grid-not-found")
    return int(hits[0])


def assign_units(grids: gpd.GeoDataFrame, units: gpd.GeoDataFrame | None) -> np.ndarray:
    """Row of ``grids`` holding each unit point (ties on an edge: the lowest code; -1: none)."""
    if units is None or not len(units) or not len(grids):
        return np.full(0 if units is None else len(units), -1, dtype=int)
    geoms = np.asarray(grids.geometry.values, dtype=object)
    pts = np.asarray(units.geometry.values, dtype=object)
    ui, gi = shapely.STRtree(geoms).query(pts, predicate="intersects")
    codes = grids["code"].to_numpy().astype(str)
    order = np.lexsort((codes[gi], ui))
    ui, gi = ui[order], gi[order]
    first = np.unique(ui, return_index=True)[1]
    out = np.full(len(units), -1, dtype=int)
    out[ui[first]] = gi[first]
    return out


def _households(grids: gpd.GeoDataFrame, units: gpd.GeoDataFrame | None) -> np.ndarray:
    owner = assign_units(grids, units)
    if units is None or not len(units):
        return np.zeros(len(grids))
    ok = owner >= 0
    return np.bincount(owner[ok], units["households"].to_numpy(float)[ok], len(grids))


def _with(
    grids: gpd.GeoDataFrame,
    replace: Mapping[str, BaseGeometry],
    add: Iterable[tuple[str, BaseGeometry]] = (),
    drop: Collection[str] = (),
) -> gpd.GeoDataFrame:
    """A copy of ``grids`` with some geometries replaced, rows added and rows dropped."""
    out = grids[~grids["code"].isin(list(drop))].copy()
    for code, geom in replace.items():
        out.loc[out["code"] == code, "geometry"] = _clean(geom)
    extra = [{"code": c, "geometry": _clean(g)} for c, g in add]
    if extra:
        new = gpd.GeoDataFrame(extra, geometry="geometry", crs=grids.crs)
        out = gpd.GeoDataFrame(
            [*out.to_dict("records"), *new.to_dict("records")], geometry="geometry", crs=grids.crs
        )
    return out.sort_values("code").reset_index(drop=True)


def _keep_code_on_bulk(
    code: str, pieces: list[BaseGeometry], units: gpd.GeoDataFrame | None, fresh: list[str]
) -> list[tuple[str, BaseGeometry]]:
    """Pieces of grid ``code``: the one with most households keeps the code."""
    frame = gpd.GeoDataFrame({"code": [str(i) for i in range(len(pieces))]}, geometry=pieces)
    hh = _households(frame, units) if units is not None else np.zeros(len(pieces))
    area = np.array([p.area for p in pieces])
    bulk = int(np.lexsort((-area, -hh))[0])
    rest = iter(fresh)
    return [(code if i == bulk else next(rest), p) for i, p in enumerate(pieces)]


def split_by_line(
    grids: gpd.GeoDataFrame,
    code: str,
    line: BaseGeometry,
    units: gpd.GeoDataFrame | None,
    taken: Collection[str],
    community_code: str,
) -> Edit:
    """Cut grid ``code`` along a drawn line that crosses it from edge to edge."""
    if line.geom_type not in ("LineString", "MultiLineString") or line.is_empty:
        raise InvalidInput("a split needs a line", code="not-a-line")
    geom = grids.geometry.iloc[_index(grids, code)]
    pieces = [
        p
        for p in shapely.get_parts(split_along(geom, line))
        if p.area > NOISE_M2 and p.geom_type == "Polygon"
    ]
    if len(pieces) < 2:
        raise ValidationFailed(
            f"the line does not cut grid {code} from edge to edge",
            code="line-does-not-cut",
            details=[{"kind": "line-does-not-cut", "feature": code}],
        )
    named = _keep_code_on_bulk(code, pieces, units, new_codes(community_code, taken, len(pieces)))
    added = [(c, g) for c, g in named if c != code]
    out = _with(grids, {code: dict(named)[code]}, added)
    return Edit(out, changed=[code], created=[c for c, _ in added])


def split_into(
    grids: gpd.GeoDataFrame,
    code: str,
    n: int,
    units: gpd.GeoDataFrame | None,
    taken: Collection[str],
    community_code: str,
    roads: Any = None,
) -> Edit:
    """Re-grid one grid into ``n`` household-balanced parts with the gridding algorithm."""
    if not 2 <= n <= 50:
        raise InvalidInput("a grid splits into 2 to 50 parts", code="invalid-parts")
    i = _index(grids, code)
    geom = grids.geometry.iloc[i]
    inside = (
        units.iloc[np.flatnonzero(assign_units(grids, units) == i)] if units is not None else None
    )
    if inside is None or not len(inside):
        inside = gpd.GeoDataFrame({"households": [], "residents": []}, geometry=[], crs=grids.crs)
    parts = grid_community(
        geom, inside[["households", "residents", "geometry"]], n_grids=n, roads=roads
    )
    pieces = [shapely.intersection(g, geom) for g in parts.geometry]
    named = _keep_code_on_bulk(code, pieces, units, new_codes(community_code, taken, n))
    added = [(c, g) for c, g in named if c != code]
    out = _with(grids, {code: dict(named)[code]}, added)
    return Edit(out, changed=[code], created=[c for c, _ in added])


def merge(grids: gpd.GeoDataFrame, codes: list[str], units: gpd.GeoDataFrame | None) -> Edit:
    """Merge two or more adjacent grids; the one with most households keeps its code."""
    codes = sorted(set(codes))
    if len(codes) < 2:
        raise InvalidInput("merge needs at least two grids", code="merge-needs-two")
    rows = [_index(grids, c) for c in codes]
    union = _clean(shapely.union_all([g.buffer(0) for g in grids.geometry.iloc[rows]]))
    if union.geom_type != "Polygon":
        raise ValidationFailed(
            f"grids {', '.join(codes)} are not adjacent: merged they would not be one piece",
            code="not-adjacent",
            details=[{"kind": "non-contiguous", "feature": c} for c in codes],
        )
    hh = _households(grids, units)[rows]
    keep = codes[int(np.lexsort((np.arange(len(codes)), -hh))[0])]
    retired = [c for c in codes if c != keep]
    return Edit(_with(grids, {keep: union}, drop=retired), changed=[keep], retired=retired)


def reshape(
    grids: gpd.GeoDataFrame, new_geoms: Mapping[str, BaseGeometry], community: BaseGeometry
) -> Edit:
    """New geometries for two or more neighbours that together cover what they covered before."""
    if len(new_geoms) < 2:
        raise InvalidInput(
            "moving a shared boundary gives new geometries for two or more grids",
            code="reshape-needs-two",
        )
    rows = [_index(grids, c) for c in new_geoms]
    before = shapely.union_all(list(grids.geometry.iloc[rows]))
    clipped = {c: _clean(shapely.intersection(g, community)) for c, g in new_geoms.items()}
    after = shapely.union_all(list(clipped.values()))
    moved = shapely.symmetric_difference(before, after).area
    if moved > 1.0:
        raise ValidationFailed(
            f"the new boundaries change the outline of grids {', '.join(sorted(new_geoms))} "
            f"by {moved:.1f} m²; a reshape may only move the boundaries they share",
            code="outline-changed",
            details=[{"kind": "outline-changed", "feature": c} for c in sorted(new_geoms)],
        )
    return Edit(_with(grids, clipped), changed=sorted(new_geoms))


def _give_away(grids: gpd.GeoDataFrame, piece: BaseGeometry, exclude: str) -> str | None:
    """Code of the grid (other than ``exclude``) sharing the longest boundary with ``piece``."""
    rim = piece.buffer(0.05)
    best, best_len = None, 0.0
    for code, geom in zip(grids["code"], grids.geometry, strict=True):
        if code == exclude or geom.is_empty:
            continue
        shared = rim.intersection(geom).area
        if shared > best_len:
            best, best_len = str(code), shared
    return best


def replace_one(
    grids: gpd.GeoDataFrame, code: str, geom: BaseGeometry, community: BaseGeometry
) -> Edit:
    """One grid's new outline (as QGIS sends it): neighbours give or absorb the difference.

    The new outline is clipped to the community; neighbours lose what it now covers, and each
    piece it released goes to the neighbour sharing the longest boundary with that piece.
    """
    i = _index(grids, code)
    new = _clean(shapely.intersection(shapely.make_valid(geom), community))
    if new.is_empty:
        raise ValidationFailed(
            f"the new outline of grid {code} does not overlap its community",
            code="outside-community",
            details=[{"kind": "outside-parent", "feature": code}],
        )
    old = grids.geometry.iloc[i]
    geoms = {str(c): g for c, g in zip(grids["code"], grids.geometry, strict=True)}
    geoms[code] = new
    for c in geoms:
        if c != code:
            geoms[c] = _clean(shapely.difference(geoms[c], new))
    released = _clean(shapely.difference(old, new))
    frame = _with(grids, geoms)
    for piece in [p for p in shapely.get_parts(released) if not p.is_empty]:
        target = _give_away(frame, piece, code)
        if target is None:
            raise ValidationFailed(
                f"part of grid {code}'s old area touches no other grid and would be left uncovered",
                code="uncovered",
                details=[{"kind": "coverage-gap", "feature": code}],
            )
        geoms[target] = _clean(shapely.union(geoms[target], piece))
        frame = _with(grids, geoms)
    changed = [
        c
        for c in geoms
        if not shapely.equals_exact(geoms[c], grids.geometry.iloc[_index(grids, c)], 1e-9)
    ]
    emptied = [c for c in changed if geoms[c].is_empty]
    out = _with(grids, {c: geoms[c] for c in changed if c not in emptied}, drop=emptied)
    return Edit(out, changed=[c for c in changed if c not in emptied], retired=emptied)


def create(
    grids: gpd.GeoDataFrame,
    geom: BaseGeometry,
    community: BaseGeometry,
    taken: Collection[str],
    community_code: str,
) -> Edit:
    """A new grid carved out of the grids it covers (grids it covers wholly are retired)."""
    new = _clean(shapely.intersection(shapely.make_valid(geom), community))
    if new.is_empty:
        raise ValidationFailed(
            "the new grid does not overlap the community",
            code="outside-community",
            details=[{"kind": "outside-parent", "feature": None}],
        )
    (code,) = new_codes(community_code, taken, 1)
    geoms = {}
    for c, g in zip(grids["code"], grids.geometry, strict=True):
        if g.intersects(new):
            geoms[str(c)] = _clean(shapely.difference(g, new))
    emptied = [c for c, g in geoms.items() if g.is_empty]
    out = _with(grids, {c: g for c, g in geoms.items() if c not in emptied}, [(code, new)], emptied)
    return Edit(
        out, changed=sorted(c for c in geoms if c not in emptied), created=[code], retired=emptied
    )


def delete(grids: gpd.GeoDataFrame, code: str) -> Edit:
    """Remove a grid by merging it into the neighbour sharing the longest boundary."""
    i = _index(grids, code)
    geom = grids.geometry.iloc[i]
    target = _give_away(grids, geom, code)
    if target is None:
        raise ValidationFailed(
            f"grid {code} has no neighbour to merge into (it is its community's only grid)",
            code="no-neighbour",
            details=[{"kind": "coverage-gap", "feature": code}],
        )
    union = _clean(shapely.union(grids.geometry.iloc[_index(grids, target)], geom))
    return Edit(_with(grids, {target: union}, drop=[code]), changed=[target], retired=[code])


def move_units(
    grids: gpd.GeoDataFrame, unit_ids: list[int], target: str, units: gpd.GeoDataFrame
) -> Edit:
    """Move household units (buildings) into a neighbouring grid, with the land around them.

    The land that goes with a unit is its Voronoi cell among the units of its grid, clipped to
    that grid, plus its footprint; other buildings' footprints stay where they are.
    """
    t = _index(grids, target)
    ids = units["id"].to_numpy()
    picked = np.flatnonzero(np.isin(ids, unit_ids))
    missing = sorted(set(unit_ids) - set(ids[picked].tolist()))
    if missing:
        raise NotFound(
            f"household units {missing[:5]} are not in this community", code="unit-not-found"
        )
    owner = assign_units(grids, units)
    geoms = {str(c): g for c, g in zip(grids["code"], grids.geometry, strict=True)}
    foot = units["footprint"].to_numpy() if "footprint" in units else np.full(len(units), None)
    for src in sorted(set(owner[picked].tolist()) - {t, -1}):
        code = str(grids["code"].iloc[src])
        members = np.flatnonzero(owner == src)
        moving = np.intersect1d(members, picked)
        staying = np.setdiff1d(members, moving)
        if not len(staying):
            raise ValidationFailed(
                f"moving every unit out of grid {code} would leave it empty; merge it instead",
                code="grid-emptied",
                details=[{"kind": "empty-grid", "feature": code}],
            )
        pts = np.asarray(units.geometry.values, dtype=object)
        cells = shapely.get_parts(
            shapely.voronoi_polygons(shapely.multipoints(pts[members]), extend_to=geoms[code])
        )
        take = [c for c in cells if any(c.covers(pts[m]) for m in moving)]
        take += [f for f in foot[moving] if f is not None]
        keep = [f.buffer(0.01) for f in foot[staying] if f is not None]
        region = shapely.intersection(shapely.union_all(take), geoms[code])
        if keep:
            region = shapely.difference(region, shapely.union_all(keep))
        geoms[code] = _clean(shapely.difference(geoms[code], region))
        geoms[target] = _clean(shapely.union(geoms[target], region))
    changed = sorted(c for c in geoms if geoms[c] is not grids.geometry.iloc[_index(grids, c)])
    return Edit(_with(grids, {c: geoms[c] for c in changed}), changed=changed)
