"""OGC API – Features Part 4 (create, replace, update, delete) on draft collections only.

Every edit goes through :func:`gridmap.store.drafts.apply_operation`, the same validated path
as the planner page: a new outline that would leave a gap, an overlap or a sliver is a 422
listing the problems and nothing changes; a draft another planner holds is a 409. Published
grids, areas and incidents stay read-only (405 with ``Allow``).

Grid properties are computed (households, population, area) or fixed (code, community); only
the geometry is editable here. A body may repeat the current values (QGIS sends whole
features) but a different code or kind, or an unknown property, is a 422 naming it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api.deps import CurrentUser, SessionDep, SettingsDep, User
from api.errors import problem
from api.limits import StrictJSONRoute
from api.routers import GEOJSON_OK, permission
from api.routers.ogc import (
    CRS84,
    GEOJSON,
    READ_ONLY,
    CollectionId,
    FeatureId,
    url,
)
from gridmap.errors import InvalidInput
from gridmap.geojson_in import parse_geometry
from gridmap.settings import Settings
from gridmap.store.drafts import apply_operation
from gridmap.store.features import Collection, get_collection, get_feature

router = APIRouter(prefix="/ogc", tags=["ogc"], route_class=StrictJSONRoute)

COMPUTED = {"community", "comm_name", "households", "population", "version", "area_m2"}
COMPUTED |= {"valid_from"}
FIXED = {"code", "kind"}
READ_ONLY_405 = {405: "the collection is read-only (only draft collections take edits)"}
Feature = Annotated[
    dict[str, Any], Body(description="a GeoJSON Feature (WGS84 lon/lat), as QGIS sends it")
]


def _draft(request: Request, session: Any, cid: str, user: User) -> Collection | Response:
    """The draft collection to edit, or a 405 problem naming the methods allowed here."""
    coll = get_collection(session, cid, role=user.role, scope=user.area)
    if coll.editable:
        return coll
    resp = problem(
        405,
        "method-not-allowed",
        "method not allowed",
        f"collection {coll.id} is read-only; edit grids in a draft-… collection",
        instance=request.url.path,
    )
    resp.headers["Allow"] = READ_ONLY
    return resp


def _check_properties(feature: dict[str, Any], current: dict[str, Any] | None) -> None:
    """Reject properties that would silently be dropped (see module docstring)."""
    if feature.get("type") not in ("Feature", None):
        raise InvalidInput("the body must be a GeoJSON Feature", code="invalid-geojson")
    props = feature.get("properties") or {}
    if not isinstance(props, dict):
        raise InvalidInput("properties must be an object", code="invalid-geojson")
    unknown = sorted(k for k in props if k not in COMPUTED | FIXED)
    if unknown:
        raise InvalidInput(
            f"unknown properties: {', '.join(unknown)[:200]}", code="unknown-property"
        )
    for key in sorted(FIXED & props.keys()):
        if current is not None and props[key] is not None and props[key] != current[key]:
            raise InvalidInput(
                f"property {key} cannot be changed here (only the geometry is editable)",
                code="read-only-property",
            )


def _geometry(feature: dict[str, Any], settings: Settings) -> Any:
    if feature.get("geometry") is None:
        raise InvalidInput("the feature needs a polygon geometry", code="missing-geometry")
    return parse_geometry(feature["geometry"], who="geometry", **settings.geometry_caps())


def _feature_response(
    request: Request, session: Any, coll: Collection, code: str, user: User, status: int = 200
) -> JSONResponse:
    feat = get_feature(session, coll, code, scope=user.area)
    href = url(request, f"/collections/{coll.id}/items/{code}")
    headers = {"Content-Crs": f"<{CRS84}>"} | ({"Location": href} if status == 201 else {})
    return JSONResponse(feat, status_code=status, media_type=GEOJSON, headers=headers)


@router.post(
    "/collections/{collection_id}/items",
    status_code=201,
    **permission("ogc.write", ok=GEOJSON_OK, extra=READ_ONLY_405),
)
def create_item(
    collection_id: CollectionId,
    feature: Feature,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
) -> Response:
    """A new grid, carved out of the grids it covers (draft collections only); 201 + Location."""
    coll = _draft(request, session, collection_id, user)
    if isinstance(coll, Response):
        return coll
    _check_properties({**feature, "properties": {}}, None)  # the server assigns the code
    out = apply_operation(
        session,
        coll.version or 0,
        user=user.name,
        scope=user.area,
        op="create",
        geom=_geometry(feature, settings),
    )
    session.commit()
    return _feature_response(request, session, coll, out["created"][0], user, 201)


def _replace(
    request: Request,
    session: Session,
    user: User,
    settings: Settings,
    collection_id: str,
    feature_id: str,
    feature: dict[str, Any],
    *,
    whole: bool,
) -> Response:
    """PUT (``whole``: the geometry is required) and PATCH: properties may only repeat their
    current values; a geometry is applied as ``replace_one`` (neighbours give or absorb the
    difference), validated."""
    coll = _draft(request, session, collection_id, user)
    if isinstance(coll, Response):
        return coll
    current = get_feature(session, coll, feature_id, scope=user.area)
    _check_properties(feature, current["properties"])
    if whole or "geometry" in feature:
        apply_operation(
            session,
            coll.version or 0,
            user=user.name,
            scope=user.area,
            op="replace_one",
            code=feature_id,
            geom=_geometry(feature, settings),
        )
        session.commit()
    return _feature_response(request, session, coll, feature_id, user)


@router.put(
    "/collections/{collection_id}/items/{feature_id}",
    **permission("ogc.write", extra=READ_ONLY_405),
)
def replace_item(
    collection_id: CollectionId,
    feature_id: FeatureId,
    feature: Feature,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
) -> Response:
    """A grid's new outline; neighbours give or absorb the difference (validated)."""
    return _replace(
        request, session, user, settings, collection_id, feature_id, feature, whole=True
    )


@router.patch(
    "/collections/{collection_id}/items/{feature_id}",
    **permission("ogc.write", extra=READ_ONLY_405),
)
def update_item(
    collection_id: CollectionId,
    feature_id: FeatureId,
    feature: Feature,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
) -> Response:
    """A partial update (JSON merge patch): a new geometry is applied like PUT; properties may
    only repeat their current values."""
    return _replace(
        request, session, user, settings, collection_id, feature_id, feature, whole=False
    )


@router.delete(
    "/collections/{collection_id}/items/{feature_id}",
    status_code=204,
    **permission("ogc.write", extra=READ_ONLY_405),
)
def delete_item(
    collection_id: CollectionId,
    feature_id: FeatureId,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
) -> Response:
    """Remove a grid by merging it into its longest-shared-edge neighbour (validated)."""
    coll = _draft(request, session, collection_id, user)
    if isinstance(coll, Response):
        return coll
    get_feature(session, coll, feature_id, scope=user.area)
    apply_operation(
        session,
        coll.version or 0,
        user=user.name,
        scope=user.area,
        op="delete",
        code=feature_id,
    )
    session.commit()
    return Response(status_code=204)
