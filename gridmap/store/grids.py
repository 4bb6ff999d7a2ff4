"""Grid versions in PostGIS: run the pure gridding over communities into a draft, publish it,
and read grids back as GeoJSON.

A draft's grids have no validity yet. Publishing closes the current grids of the same
communities (``valid_to = now``) and opens the draft's (``valid_from = now``) in one transaction,
so at every instant each community has exactly one current set of grids.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import numpy as np
import shapely
from geoalchemy2.shape import from_shape
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session

from gridmap.crs import metric_crs_for_geometry
from gridmap.errors import ConflictError, InvalidInput, NotFound
from gridmap.gridding_jobs import GridJob, GridOutcome, make_job, run_job
from gridmap.gridding_prefs import check_preference
from gridmap.store import dispatching
from gridmap.store.areas import record_audit
from gridmap.store.locating import CURRENT
from gridmap.store.models import Area, Grid, GridVersion

__all__ = [
    "GriddingResult",
    "grids_geojson",
    "publish_version",
    "run_gridding",
    "select_communities",
]


@dataclass
class GriddingResult:
    version_id: int
    communities: int
    grids: int
    quality: dict[str, Any] = field(default_factory=dict)


def select_communities(
    session: Session,
    *,
    community: str | None = None,
    district: str | None = None,
    scope: str | None = None,
) -> list[tuple[int, str, Any]]:
    """(id, code, WGS84 geometry) of the chosen communities; all when nothing is named."""
    stmt = select(Area.id, Area.code, func.ST_AsBinary(Area.geom)).where(Area.kind == "community")
    for prefix in (community, district, scope):
        if prefix:
            stmt = stmt.where(Area.code.like(prefix.replace("%", "") + "%"))
    rows = session.execute(stmt.order_by(Area.code)).all()
    if not rows:
        what = community or district or scope or "the database"
        raise NotFound(f"no communities in {what}", code="no-communities")
    return [(int(i), str(c), shapely.from_wkb(bytes(w))) for i, c, w in rows]


def _units(
    session: Session, community_id: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rows = session.execute(
        text(
            "SELECT ST_X(geom), ST_Y(geom), households, residents FROM household_unit "
            "WHERE community_id = :cid ORDER BY id"
        ),
        {"cid": community_id},
    ).all()
    arr = np.array(rows, dtype=float).reshape(-1, 4)
    return arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]


def _roads(session: Session, geom: Any) -> np.ndarray:
    minx, miny, maxx, maxy = geom.bounds
    rows = (
        session.execute(
            text(
                "SELECT ST_AsBinary(geom) FROM road_edge WHERE geom && "
                "ST_MakeEnvelope(:a, :b, :c, :d, 4326)"
            ),
            {"a": minx, "b": miny, "c": maxx, "d": maxy},
        )
        .scalars()
        .all()
    )
    return shapely.from_wkb([bytes(r) for r in rows]) if rows else np.empty(0, dtype=object)


MapJobs = Callable[[Callable[[GridJob], GridOutcome], list[GridJob]], Iterable[GridOutcome]]


def _serial(fn: Callable[[GridJob], GridOutcome], jobs: list[GridJob]) -> Iterator[GridOutcome]:
    return (fn(j) for j in jobs)


def _job(session: Session, cid: int, code: str, geom: Any, metric: str) -> GridJob:
    """One community's gridding inputs read from the database, projected to ``metric``."""
    x, y, hh, res = _units(session, cid)
    return make_job(code, geom, x, y, hh, res, _roads(session, geom), metric)


def run_gridding(
    session: Session,
    communities: list[tuple[int, str, Any]],
    *,
    user: str,
    households_per_grid: float | None = None,
    n_grids: int | None = None,
    prefer: str | None = None,
    progress: Callable[[str], None] | None = None,
    map_jobs: MapJobs | None = None,
) -> GriddingResult:
    """Grid each community into a new draft version; returns its id and quality figures.

    ``map_jobs(fn, jobs)`` yields ``fn(job)`` for each job in order; the default runs them here
    one by one, :func:`gridmap.batch.dask_map` runs them on a Dask cluster with the same result.
    """
    prefer = check_preference(prefer)  # an unknown one fails here, before the draft exists
    if n_grids is not None and len(communities) != 1:
        raise InvalidInput(
            "an exact number of grids applies to one community at a time", code="invalid-target"
        )
    version = GridVersion(
        status="draft",
        created_by=user,
        params={
            "households_per_grid": households_per_grid,
            "n_grids": n_grids,
            "prefer": prefer,
            "communities": [c for _, c, _ in communities],
        },
    )
    session.add(version)
    session.flush()
    metric = metric_crs_for_geometry(shapely.union_all([g for _, _, g in communities]).envelope)
    jobs = [_job(session, cid, code, geom, metric) for cid, code, geom in communities]
    ids = {code: cid for cid, code, _ in communities}
    run = partial(run_job, households_per_grid=households_per_grid, n_grids=n_grids, prefer=prefer)
    per: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for out in (map_jobs or _serial)(run, jobs):
        per.append({"community": out.code, **out.quality})
        for seq, hh, res, g in zip(out.seq, out.households, out.residents, out.geoms, strict=True):
            mp = g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon([g])
            rows.append(
                {
                    "version_id": version.id,
                    "code": f"{out.code}{int(seq):03d}",
                    "community_id": ids[out.code],
                    "households": int(hh),
                    "population": int(res),
                    "geom": from_shape(mp, 4326),
                }
            )
        if progress:
            progress(out.code)
    session.execute(insert(Grid), rows)
    version.quality = quality_summary(per)
    record_audit(
        session,
        user,
        "grids.draft",
        "grid_version",
        str(version.id),
        after={"communities": len(communities), "grids": len(rows)},
    )
    return GriddingResult(int(version.id), len(communities), len(rows), version.quality)


def quality_summary(per: list[dict[str, Any]], *, detail: bool = True) -> dict[str, Any]:
    """Figures over the communities ``per`` (one dict of gridding quality each); with
    ``detail`` the per-community dicts too."""

    def stat(key: str, fn: Callable[[np.ndarray], float]) -> float | None:
        vals = np.array([p[key] for p in per if p.get(key) is not None], dtype=float)
        vals = vals[np.isfinite(vals)]
        return round(float(fn(vals)), 4) if len(vals) else None

    return {
        "communities": len(per),
        "cv_median": stat("cv", np.median),
        "cv_max": stat("cv", np.max),
        "pp_mean": stat("pp_mean", np.mean),
        "road_alignment_mean": stat("road_alignment", np.mean),
        "max_overlap_m2": stat("max_overlap", np.max),
        "total_gap_m2": stat("gap_area", np.sum),
        "slivers": int(sum(p.get("slivers", 0) for p in per)),
        "units_on_edge": int(sum(p.get("units_on_edge", 0) for p in per)),
    } | ({"per_community": per} if detail else {})


def publish_version(
    session: Session, version_id: int | None, *, user: str, scope: str | None = None
) -> int:
    """Make a draft current for its communities (the latest draft when ``version_id`` is None)."""
    stmt = select(GridVersion).where(GridVersion.status == "draft")
    if version_id is not None:
        stmt = select(GridVersion).where(GridVersion.id == version_id)
    version = session.scalars(
        stmt.order_by(GridVersion.id.desc()).limit(1).with_for_update()
    ).first()
    if version is not None and scope:
        foreign = session.scalar(
            select(func.count())
            .select_from(Grid)
            .where(Grid.version_id == version.id, Grid.code.not_like(scope.replace("%", "") + "%"))
        )
        if foreign:
            version = None  # a draft reaching outside the caller's area is not theirs to see
    if version is None:
        raise NotFound("no draft grid version to publish", code="no-draft")
    if version.status != "draft":
        raise ConflictError(
            f"grid version {version.id} is {version.status}, not a draft", code="not-a-draft"
        )
    now = session.execute(select(func.now())).scalar_one()
    communities = select(Grid.community_id).where(Grid.version_id == version.id)
    session.execute(
        update(Grid)
        .where(
            Grid.community_id.in_(communities),
            Grid.valid_from.is_not(None),
            Grid.valid_to.is_(None),
        )
        .values(valid_to=now)
    )
    session.execute(update(Grid).where(Grid.version_id == version.id).values(valid_from=now))
    version.status, version.published_at = "published", now
    session.execute(
        text(
            "UPDATE grid_version v SET status = 'superseded' WHERE status = 'published' "
            "AND id <> :id AND NOT EXISTS (SELECT 1 FROM grid g WHERE g.version_id = v.id "
            "AND g.valid_to IS NULL)"
        ),
        {"id": version.id},
    )
    record_audit(session, user, "grids.publish", "grid_version", str(version.id))
    CURRENT.invalidate()  # single lookups in this process re-check at once
    dispatching.invalidate()  # and so do recommendations
    return int(version.id)


def grids_geojson(
    session: Session,
    *,
    community: str | None = None,
    version: int | None = None,
    scope: str | None = None,
    limit: int = 5000,
    offset: int = 0,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Current grids (one version's, or those valid at ``at``) as a FeatureCollection, in scope."""
    where = ["TRUE"]
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if at is not None:
        where.append("g.valid_from <= :at AND (g.valid_to IS NULL OR g.valid_to > :at)")
        params["at"] = at
    if version is not None:
        where.append("g.version_id = :version")
        params["version"] = version
    elif at is None:
        where.append("g.valid_from IS NOT NULL AND g.valid_to IS NULL")
    for i, prefix in enumerate(p for p in (community, scope) if p):
        where.append(f"g.code LIKE :p{i}")
        params[f"p{i}"] = prefix.replace("%", "") + "%"
    cond = " AND ".join(where)
    total = session.execute(text(f"SELECT count(*) FROM grid g WHERE {cond}"), params).scalar_one()
    rows = (
        session.execute(
            text(
                "SELECT g.code, a.code AS community, g.kind, g.households, g.population, "
                "g.version_id, g.valid_from, g.valid_to, ST_Area(g.geom::geography) AS area_m2, "
                "ST_AsGeoJSON(g.geom, 7) AS geometry "
                "FROM grid g JOIN area a ON a.id = g.community_id "
                f"WHERE {cond} ORDER BY g.code LIMIT :limit OFFSET :offset"
            ),
            params,
        )
        .mappings()
        .all()
    )
    feats = []
    for r in rows:
        props = {
            k: r[k] for k in ("code", "community", "kind", "households", "population", "version_id")
        }
        props["area_m2"] = round(float(r["area_m2"]), 1)
        props["valid_from"] = r["valid_from"].isoformat() if r["valid_from"] else None
        props["valid_to"] = r["valid_to"].isoformat() if r["valid_to"] else None
        feats.append(
            {
                "type": "Feature",
                "id": r["code"],
                "properties": props,
                "geometry": json.loads(r["geometry"]),
            }
        )
    return {
        "type": "FeatureCollection",
        "features": feats,
        "numberMatched": int(total),
        "numberReturned": len(feats),
    }
