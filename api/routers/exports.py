"""File exports of grids and areas (GeoJSON, GeoPackage, zipped Shapefile, CSV with WKT).

A purpose is required and every export leaves an audit record (what, how many rows, why).
Exports hold only public properties of areas and grids: never people or care subjects.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.deps import CurrentUser, SessionDep
from api.limits import StrictJSONRoute
from api.routers import permission
from gridmap.exports import export_bytes
from gridmap.store.features import audited_export

router = APIRouter(prefix="/api/v1/exports", tags=["exports"], route_class=StrictJSONRoute)

Fmt = Annotated[
    Literal["geojson", "gpkg", "shp", "csv"],
    Query(alias="format", description="geojson, gpkg, shp (zipped, UTF-8 .cpg) or csv (WKT)"),
]
Purpose = Annotated[
    str, Query(min_length=1, max_length=200, description="why you need this file (audited)")
]
FILE_OK = {
    "description": "the file, as an attachment",
    "content": {
        "application/geo+json": {"schema": {"type": "object"}},
        **{
            m: {"schema": {"type": "string", "format": "binary"}}
            for m in ("application/geopackage+sqlite3", "application/zip", "text/csv")
        },
    },
}


def _file(data: bytes, media: str, stem: str, ext: str) -> Response:
    name = f"{stem}-{datetime.now(UTC):%Y%m%d}.{ext}"
    return Response(
        data,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/grids", **permission("exports.read", ok=FILE_OK))
def export_grids(
    session: SessionDep,
    user: CurrentUser,
    purpose: Purpose,
    fmt: Fmt = "geojson",
    version: Annotated[int | None, Query(ge=1)] = None,
    community: Annotated[str | None, Query(pattern=r"^[0-9]{12}$")] = None,
) -> Response:
    """Current grids (or one version's, or one community's) in the caller's area, as a file;
    draft versions only for roles that read drafts."""
    gdf = audited_export(
        session,
        "grids",
        actor=user.name,
        purpose=purpose,
        scope=user.area,
        fmt=fmt,
        version=version,
        community=community,
        role=user.role,
    )
    data, media, ext = export_bytes(gdf, fmt, "grids")
    session.commit()  # the audit record, before the file leaves
    parts = ["gridmap-grids", user.area or "all"]
    parts += [f"v{version}"] if version else []
    parts += [community] if community else []
    return _file(data, media, "-".join(parts), ext)


@router.get("/areas", **permission("exports.read", ok=FILE_OK))
def export_areas(
    session: SessionDep,
    user: CurrentUser,
    purpose: Purpose,
    level: Literal["district", "street", "community"],
    fmt: Fmt = "geojson",
) -> Response:
    """Areas of one level in the caller's area, as a file."""
    gdf = audited_export(
        session, "areas", actor=user.name, purpose=purpose, scope=user.area, fmt=fmt, level=level
    )
    data, media, ext = export_bytes(gdf, fmt, f"{level}s")
    session.commit()
    return _file(data, media, f"gridmap-{level}s-{user.area or 'all'}", ext)
