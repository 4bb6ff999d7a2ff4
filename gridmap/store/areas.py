"""Areas (district ▸ street ▸ community) and load generations: the SQL side.

Geometry crosses the database boundary here only, as shapely with SRID 4326.
Functions take a Session and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import json
from typing import Any

import geopandas as gpd
import shapely
from geoalchemy2.shape import from_shape
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, aliased

from gridmap.store.models import Area, AuditLog, Generation

__all__ = [
    "LEVEL_PARENT",
    "area_feature_collection",
    "areas_frame",
    "count_areas",
    "get_area",
    "list_areas",
    "record_audit",
    "upsert_areas",
]

LEVEL_PARENT = {"district": "city", "street": "district", "community": "street"}


def _scope_clause(scope: str | None) -> Any:
    """Areas a user scoped to ``scope`` may see: that area and everything below it."""
    if not scope:
        return text("true")
    return Area.code.like(scope.replace("%", "") + "%")


def _feature_rows(
    session: Session,
    where: list[Any],
    *,
    precision: int = 7,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    parent = aliased(Area)
    stmt = (
        select(
            Area.code,
            Area.name,
            Area.kind,
            parent.code.label("parent"),
            Area.households,
            Area.population,
            Area.synthetic,
            (func.ST_Area(func.geography(Area.geom)) / 1e6).label("area_km2"),
            func.ST_AsGeoJSON(Area.geom, precision).label("geometry"),
        )
        .outerjoin(parent, parent.id == Area.parent_id)
        .where(*where)
        .order_by(Area.code)
        .offset(offset)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return [dict(r._mapping) for r in session.execute(stmt)]


def _to_feature(row: dict[str, Any]) -> dict[str, Any]:
    geometry = json.loads(row.pop("geometry"))
    row["level"] = row.pop("kind")
    row["area_km2"] = round(float(row["area_km2"]), 4)
    return {"type": "Feature", "id": row["code"], "properties": row, "geometry": geometry}


def list_areas(
    session: Session,
    *,
    level: str | None = None,
    parent: str | None = None,
    scope: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """GeoJSON features of areas, filtered by level, parent code and the caller's scope."""
    where: list[Any] = [_scope_clause(scope)]
    if level:
        where.append(Area.kind == level)
    if parent:
        pid = select(Area.id).where(Area.code == parent).scalar_subquery()
        where.append(Area.parent_id == pid)
    return [_to_feature(r) for r in _feature_rows(session, where, limit=limit, offset=offset)]


def count_areas(
    session: Session,
    *,
    level: str | None = None,
    parent: str | None = None,
    scope: str | None = None,
) -> int:
    stmt = select(func.count()).select_from(Area).where(_scope_clause(scope))
    if level:
        stmt = stmt.where(Area.kind == level)
    if parent:
        pid = select(Area.id).where(Area.code == parent).scalar_subquery()
        stmt = stmt.where(Area.parent_id == pid)
    return int(session.execute(stmt).scalar_one())


def get_area(session: Session, code: str, *, scope: str | None = None) -> dict[str, Any] | None:
    rows = _feature_rows(session, [Area.code == code, _scope_clause(scope)])
    return _to_feature(rows[0]) if rows else None


def area_feature_collection(features: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": features, **extra}


def areas_frame(session: Session, level: str) -> gpd.GeoDataFrame:
    """Areas of one level as a WGS84 GeoDataFrame (code, name, parent, geometry)."""
    parent = aliased(Area)
    rows = session.execute(
        select(
            Area.code,
            Area.name,
            parent.code.label("parent"),
            func.ST_AsBinary(Area.geom).label("wkb"),
        )
        .outerjoin(parent, parent.id == Area.parent_id)
        .where(Area.kind == level)
        .order_by(Area.code)
    ).all()
    geoms = shapely.from_wkb([bytes(r.wkb) for r in rows]) if rows else []
    return gpd.GeoDataFrame(
        {
            "code": [r.code for r in rows],
            "name": [r.name for r in rows],
            "parent": [r.parent for r in rows],
        },
        geometry=list(geoms),
        crs="EPSG:4326",
    )


def upsert_areas(
    session: Session,
    gdf: gpd.GeoDataFrame,
    *,
    level: str,
    source: str,
    user: str,
    synthetic: bool = False,
    note: str | None = None,
) -> int:
    """Insert or replace areas by code, tagged with a new generation. Returns the generation id.

    Parent codes must already exist (one level per import, top down); the caller validated.
    """
    generation = Generation(
        kind="boundaries",
        level=level,
        source=source,
        created_by=user,
        feature_count=len(gdf),
        note=note,
    )
    session.add(generation)
    session.flush()
    parent_codes = sorted({p for p in gdf["parent"].dropna().astype(str)})
    parent_ids: dict[str, int] = {}
    if parent_codes:
        parent_ids = {
            c: i
            for c, i in session.execute(
                select(Area.code, Area.id).where(Area.code.in_(parent_codes))
            )
        }
    rows = []
    for rec in gdf.itertuples(index=False):
        geom = rec.geometry
        if geom.geom_type == "Polygon":
            geom = shapely.MultiPolygon([geom])
        parent_code = getattr(rec, "parent", None)
        rows.append(
            {
                "kind": level,
                "code": str(rec.code),
                "name": str(rec.name),
                "parent_id": parent_ids.get(str(parent_code)) if parent_code else None,
                "households": _int_or_none(getattr(rec, "households", None)),
                "population": _int_or_none(getattr(rec, "population", None)),
                "generation_id": generation.id,
                "synthetic": synthetic,
                "geom": from_shape(geom, srid=4326),
            }
        )
    if rows:
        stmt = insert(Area).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=[Area.code],
            set_={
                c: stmt.excluded[c]
                for c in (
                    "kind",
                    "name",
                    "parent_id",
                    "households",
                    "population",
                    "generation_id",
                    "synthetic",
                    "geom",
                )
            },
        )
        session.execute(stmt)
    record_audit(
        session,
        user,
        "import.boundaries",
        "generation",
        str(generation.id),
        after={"level": level, "source": source, "features": len(rows)},
    )
    return int(generation.id)


def _int_or_none(value: Any) -> int | None:
    try:
        if value is None or value != value:  # NaN
            return None
        return int(value)
    except (TypeError, ValueError):
        return None


def record_audit(
    session: Session,
    actor: str,
    action: str,
    object_type: str | None = None,
    object_id: str | None = None,
    *,
    purpose: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Append one audit row in the caller's transaction (so it commits with the change).
    A plain INSERT, not an ORM object: no unit-of-work flush on the hot paths (dispatch,
    transitions), same row."""
    session.execute(
        insert(AuditLog).values(
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            purpose=purpose,
            before=before,
            after=after,
        )
    )
