"""Feature collections for OGC API – Features and exports: the SQL side.

One query shape per collection kind (areas of one level, current grids, one draft version's
grids, incidents). Every query is limited to the caller's area (code prefix) and returns only
public properties: no reporter, contact, address or free text of incidents, nothing about care
subjects or people. Feature ids are the area/grid codes and the incidents' public ids.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.errors import InvalidInput, NotFound
from gridmap.permissions import allowed
from gridmap.store.areas import record_audit

__all__ = [
    "Collection",
    "audited_export",
    "collection_extent",
    "export_frame",
    "features_page",
    "get_collection",
    "get_feature",
    "list_collections",
]

AREA_LEVELS = {"districts": "district", "streets": "street", "communities": "community"}
DRAFT_PREFIX = "draft-"


@dataclass(frozen=True)
class Collection:
    """A collection the caller may see; ``version`` is set for draft collections."""

    id: str
    title: str
    description: str
    kind: str  # area | grid | draft | incident
    level: str | None = None
    version: int | None = None

    @property
    def editable(self) -> bool:
        return self.kind == "draft"


_STATIC = [
    Collection("districts", "Districts 区", "Administrative districts", "area", "district"),
    Collection("streets", "Streets 街道", "Sub-districts (streets)", "area", "street"),
    Collection("communities", "Communities 社区", "Communities", "area", "community"),
    Collection("grids", "Grids 网格", "Current published grids", "grid"),
    Collection(
        "incidents",
        "Incidents 事件",
        "Reported incidents (public id, category, status, grid; no personal data)",
        "incident",
    ),
]


def _like(scope: str | None) -> str | None:
    return scope.replace("%", "").replace("_", "") + "%" if scope else None


def _may_see_incidents(role: str) -> bool:
    # leaders never get exact incident points, whatever the matrix says about reads
    return role != "leader" and allowed("incidents.read", role)


def _may_see_drafts(role: str) -> bool:
    return allowed("drafts.read", role)


def _drafts(session: Session, scope: str | None) -> list[Collection]:
    """Open drafts lying wholly inside ``scope`` (a draft reaching outside is not theirs)."""
    rows = session.execute(
        text(
            "SELECT v.id, v.created_by, v.created_at, (SELECT count(*) FROM grid g "
            "WHERE g.version_id = v.id) AS n FROM grid_version v WHERE v.status = 'draft' "
            "AND (CAST(:scope AS text) IS NULL OR NOT EXISTS (SELECT 1 FROM grid g "
            "WHERE g.version_id = v.id AND g.code NOT LIKE :scope)) ORDER BY v.id"
        ),
        {"scope": _like(scope)},
    ).all()
    return [
        Collection(
            f"{DRAFT_PREFIX}{vid}",
            f"Draft grids v{vid}",
            f"Draft grid version {vid} by {by}, {at:%Y-%m-%d %H:%M}, {n} grids (editable)",
            "draft",
            version=int(vid),
        )
        for vid, by, at, n in rows
    ]


def list_collections(session: Session, *, role: str, scope: str | None) -> list[Collection]:
    """The collections ``role`` may see in ``scope``, drafts last."""
    out = [c for c in _STATIC if c.kind != "incident" or _may_see_incidents(role)]
    if _may_see_drafts(role):
        out += _drafts(session, scope)
    return out


def get_collection(session: Session, cid: str, *, role: str, scope: str | None) -> Collection:
    """One collection by id; NotFound when unknown or not visible to the caller."""
    if cid.startswith(DRAFT_PREFIX):
        found = [c for c in _drafts(session, scope) if c.id == cid] if _may_see_drafts(role) else []
    else:
        found = [c for c in _STATIC if c.id == cid]
        found = [c for c in found if c.kind != "incident" or _may_see_incidents(role)]
    if not found:
        raise NotFound(f"no collection {cid!r}", code="collection-not-found")
    return found[0]


@dataclass(frozen=True)
class _Query:
    """The pieces of one collection's query: id and geometry columns, select list, from, where."""

    id_col: str
    geom_col: str
    select: str
    source: str
    where: str
    params: dict[str, Any]

    def rows(self, session: Session, tail: str = "", **extra: Any) -> Any:
        sql = f"SELECT {self.id_col} AS id, {self.select} FROM {self.source} WHERE {self.where}"
        return session.execute(text(sql + tail), {**self.params, **extra}).mappings()


def _query(
    coll: Collection, scope: str | None, bbox: tuple[float, ...] | None, geom_sql: str
) -> _Query:
    """The query for one collection, limited to ``scope`` and ``bbox``."""
    params: dict[str, Any] = {"scope": _like(scope)}
    utc = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    if coll.kind == "area":
        id_col, geom = "a.code", "a.geom"
        sel = (
            "a.code, a.name, a.kind AS level, p.code AS parent, a.households, a.population, "
            "round((ST_Area(a.geom::geography) / 1e6)::numeric, 4) AS area_km2"
        )
        source = "area a LEFT JOIN area p ON p.id = a.parent_id"
        where = ["a.kind = :level", "(CAST(:scope AS text) IS NULL OR a.code LIKE :scope)"]
        params["level"] = coll.level
    elif coll.kind in ("grid", "draft"):
        id_col, geom = "g.code", "g.geom"
        sel = (
            "g.code, c.code AS community, c.name AS comm_name, g.kind, g.households, "
            "g.population, g.version_id AS version, "
            "round(ST_Area(g.geom::geography)::numeric, 1) AS area_m2, "
            f"{utc.format('g.valid_from')} AS valid_from"
        )
        source = "grid g JOIN area c ON c.id = g.community_id"
        where = ["(CAST(:scope AS text) IS NULL OR g.code LIKE :scope)"]
        if coll.kind == "grid":
            where.append("g.valid_from IS NOT NULL AND g.valid_to IS NULL")
        else:
            where.append("g.version_id = :version")
            params["version"] = coll.version
    else:
        id_col, geom = "i.public_id", "i.geom"
        sel = (
            "i.public_id, i.category, i.status, i.grid_code AS grid, i.outcome, "
            f"{utc.format('i.created_at')} AS created_at"
        )
        source = "incident i"
        where = ["i.geom IS NOT NULL", "(CAST(:scope AS text) IS NULL OR i.grid_code LIKE :scope)"]
    if bbox is not None:
        env = "ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)"
        where.append(f"{geom} && {env} AND ST_Intersects({geom}, {env})")
        params.update(dict(zip(("x0", "y0", "x1", "y1"), bbox, strict=True)))
    sel += f", {geom_sql.format(g=geom)} AS geometry"
    return _Query(id_col, geom, sel, source, " AND ".join(where), params)


_GEOJSON = "ST_AsGeoJSON({g}, 7)"


def _feature(row: dict[str, Any]) -> dict[str, Any]:
    fid, geometry = row.pop("id"), json.loads(row.pop("geometry"))
    props = {k: (float(v) if k.startswith("area_") else v) for k, v in row.items()}
    return {"type": "Feature", "id": fid, "geometry": geometry, "properties": props}


def features_page(
    session: Session,
    coll: Collection,
    *,
    scope: str | None,
    bbox: tuple[float, ...] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """(GeoJSON features of one page in id order, number matched) for a collection."""
    q = _query(coll, scope, bbox, _GEOJSON)
    total = session.execute(
        text(f"SELECT count(*) FROM {q.source} WHERE {q.where}"), q.params
    ).scalar_one()
    rows = q.rows(session, " ORDER BY 1 LIMIT :limit OFFSET :offset", limit=limit, offset=offset)
    return [_feature(dict(r)) for r in rows], int(total)


def get_feature(
    session: Session, coll: Collection, fid: str, *, scope: str | None
) -> dict[str, Any]:
    """One feature by id; NotFound when absent or outside the caller's area."""
    q = _query(coll, scope, None, _GEOJSON)
    row = q.rows(session, f" AND {q.id_col} = :fid", fid=fid).first()
    if row is None:
        raise NotFound(f"no feature {fid!r} in {coll.id}", code="feature-not-found")
    return _feature(dict(row))


def collection_extent(
    session: Session, coll: Collection, *, scope: str | None
) -> list[float] | None:
    """[minx, miny, maxx, maxy] of the features the caller may see, None when empty."""
    q = _query(coll, scope, None, "{g}")
    row = session.execute(
        text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            f"(SELECT ST_Extent({q.geom_col}) AS e FROM {q.source} WHERE {q.where}) x"
        ),
        q.params,
    ).one()
    return None if row[0] is None else [round(float(v), 7) for v in row]


def export_frame(
    session: Session,
    what: str,
    *,
    scope: str | None,
    version: int | None = None,
    community: str | None = None,
    level: str | None = None,
    drafts: bool = False,
) -> gpd.GeoDataFrame:
    """Grids (current, one version, or one community's) or areas of a level as a WGS84 frame.

    Only public properties: codes, names of areas, kinds and counts; never people. A draft
    version's grids (never valid) come out only with ``drafts``.
    """
    if what == "areas":
        coll = Collection(f"{level}s", "", "", "area", level)
    elif version is not None:
        coll = Collection(f"v{version}", "", "", "draft", version=version)
    else:
        coll = Collection("grids", "", "", "grid")
    q = _query(coll, scope, None, "ST_AsBinary({g})")
    tail = " AND g.code LIKE :community" if community else ""
    if version is not None and not drafts:
        tail += " AND g.valid_from IS NOT NULL"
    tail += " ORDER BY 1"
    rows = q.rows(session, tail, community=_like(community)).all()
    if what == "grids":
        cols = ["code", "community", "comm_name", "kind", "households", "population"]
        cols += ["version", "area_m2", "valid_from"]
    else:
        cols = ["code", "name", "level", "parent", "households", "population", "area_km2"]
    data = {c: [r[c] for r in rows] for c in cols}
    for c in ("area_m2", "area_km2"):
        if c in data:
            data[c] = [float(v) for v in data[c]]
    geoms = shapely.from_wkb([bytes(r["geometry"]) for r in rows]) if rows else []
    return gpd.GeoDataFrame(data, geometry=list(geoms), crs="EPSG:4326")


def audited_export(
    session: Session,
    what: str,
    *,
    actor: str,
    purpose: str,
    scope: str | None,
    fmt: str,
    version: int | None = None,
    community: str | None = None,
    level: str | None = None,
    role: str = "",
) -> gpd.GeoDataFrame:
    """The rows to export, with an audit record of who took what and why (in the caller's
    transaction: the caller commits before handing out the file)."""
    purpose = purpose.strip()
    if not purpose:
        raise InvalidInput("state the purpose of this export", code="purpose-required")
    gdf = export_frame(
        session,
        what,
        scope=scope,
        version=version,
        community=community,
        level=level,
        drafts=_may_see_drafts(role),
    )
    if gdf.empty:
        raise NotFound(f"no {what} to export here", code="nothing-to-export")
    filters = {"version": version, "community": community, "level": level, "scope": scope}
    record_audit(
        session,
        actor,
        f"export.{what}",
        what,
        scope or "*",
        purpose=purpose[:200],
        after={"rows": len(gdf), "format": fmt, **{k: v for k, v in filters.items() if v}},
    )
    return gdf
