"""Boundary import: read ▸ (repair on request) ▸ validate against the parents in the database ▸
commit in one transaction tagged as a generation. A dry run unless ``commit=True``.

A file with any problem commits nothing: the report lists every problem and the database is
left exactly as it was.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pyogrio
from sqlalchemy import Engine

from gridmap.boundaries import (
    FieldMap,
    read_boundary_file,
    repair_boundaries,
    size_problems,
    validate_boundaries,
)
from gridmap.errors import InvalidInput
from gridmap.store.areas import LEVEL_PARENT, areas_frame, upsert_areas
from gridmap.store.db import session_scope

__all__ = ["ImportReport", "import_boundaries"]

LEVELS = ("district", "street", "community")
_COUNT_COLUMNS = {
    "households": ("households", "hh", "户数"),
    "population": ("population", "pop", "residents", "人口"),
}


@dataclass
class ImportReport:
    """What an import found and did; ``ok`` is False when anything blocks the commit."""

    source: str
    level: str
    features: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    repairs: list[dict[str, Any]] = field(default_factory=list)
    committed: bool = False
    generation_id: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _attach_counts(
    gdf: gpd.GeoDataFrame, path: Path, layer: str | None, encoding: str | None
) -> gpd.GeoDataFrame:
    """Copy household/population columns from the file when it has them (optional fields)."""
    try:
        attrs = pyogrio.read_dataframe(path, layer=layer, encoding=encoding, read_geometry=False)
    except Exception:  # the geometry reader already reported an unreadable file
        return gdf
    if len(attrs) != len(gdf):
        return gdf
    lower = {str(c).lower(): c for c in attrs.columns}
    for target, aliases in _COUNT_COLUMNS.items():
        for alias in aliases:
            if alias.lower() in lower:
                gdf[target] = attrs[lower[alias.lower()]].to_numpy()
                break
    return gdf


def import_boundaries(
    engine: Engine,
    path: str | Path,
    *,
    level: str,
    crs: str | None = None,
    encoding: str | None = None,
    layer: str | None = None,
    fields: FieldMap | None = None,
    commit: bool = False,
    repair: bool = False,
    user: str = "cli",
    synthetic: bool = False,
    source: str | None = None,
    max_vertices: int = 20_000,
    max_rings: int = 200,
) -> ImportReport:
    """Import one level of boundaries from a file; see the module docstring. Features past
    the vertex or ring caps are problems found before any other geometry work."""
    if level not in LEVELS:
        raise InvalidInput(
            f"unknown level {level!r}; use one of {', '.join(LEVELS)}", code="unknown-level"
        )
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"file not found: {path}", code="file-not-found")
    gdf, read_problems = read_boundary_file(
        path, layer=layer, encoding=encoding, crs=crs, fields=fields or FieldMap()
    )
    gdf = _attach_counts(gdf, path, layer, encoding)
    report = ImportReport(source=source or str(path), level=level, features=len(gdf))
    report.problems = [p.to_dict() for p in read_problems]
    too_big = size_problems(gdf, max_vertices=max_vertices, max_rings=max_rings)
    if too_big:
        report.problems.extend(p.to_dict() for p in too_big)
        return report
    if repair:
        gdf, report.repairs = repair_boundaries(gdf)
    with session_scope(engine) as session:
        parents = areas_frame(session, LEVEL_PARENT[level])
        problems = validate_boundaries(gdf, level=level, parents=parents if len(parents) else None)
        if level != "district" and not len(parents):
            report.problems.append(
                {
                    "kind": "unknown-parent",
                    "feature": None,
                    "location": None,
                    "area_m2": None,
                    "message": f"no {LEVEL_PARENT[level]} areas in the database yet: import the "
                    f"{LEVEL_PARENT[level]} level first",
                }
            )
        report.problems.extend(p.to_dict() for p in problems)
        if report.problems or not commit:
            return report
        report.generation_id = upsert_areas(
            session, gdf, level=level, source=report.source, user=user, synthetic=synthetic
        )
        report.committed = True
    return report
