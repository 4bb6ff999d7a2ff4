"""OGC API – Features (Part 1 core + GeoJSON + OAS 3.0) at ``/ogc``, for QGIS and GDAL;
Part 4 edits of draft collections live in :mod:`api.routers.ogc_edit`.

Same bearer token as the rest of the API; every collection and item is limited to the caller's
area and role (incidents only for roles that read incidents, drafts only for editors). Paging
is offset based and stable (features ordered by id), so following ``next`` links reads every
feature exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from api.deps import CurrentUser, SessionDep, SettingsDep, User
from api.limits import StrictJSONRoute
from api.routers import GEOJSON_OK, PageLimit, permission
from gridmap.errors import InvalidInput
from gridmap.permissions import allowed
from gridmap.store.features import (
    Collection,
    collection_extent,
    features_page,
    get_collection,
    get_feature,
    list_collections,
)

router = APIRouter(prefix="/ogc", tags=["ogc"], route_class=StrictJSONRoute)
F = TypeVar("F", bound=Callable[..., Any])

JSON, GEOJSON = "application/json", "application/geo+json"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/features",
]
READ_ONLY = "GET, HEAD, OPTIONS"

CollectionId = Annotated[
    str, Path(pattern=r"^[a-z][a-z0-9-]{0,39}$", description="collection id, e.g. grids")
]
FeatureId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9_-]{1,32}$", description="grid/area code or incident id")
]
Format = Annotated[Literal["json", "geojson"] | None, Query(description="response format")]
BBox = Annotated[
    str | None,
    Query(
        description="minLon,minLat,maxLon,maxLat in WGS84 (CRS84)",
        examples=["111.28,30.69,111.31,30.72"],
    ),
]


def parse_bbox(raw: str | None) -> tuple[float, float, float, float] | None:
    """Four finite WGS84 numbers, west ≤ east (no antimeridian crossing), south ≤ north."""
    if raw is None:
        return None
    parts = raw.split(",")
    if len(parts) != 4:
        raise InvalidInput(
            "bbox needs exactly 4 comma-separated numbers: minLon,minLat,maxLon,maxLat",
            code="invalid-bbox",
        )
    try:
        x0, y0, x1, y1 = (float(p) for p in parts)
    except ValueError:
        raise InvalidInput("bbox values must be numbers", code="invalid-bbox") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise InvalidInput("bbox values must be finite numbers", code="invalid-bbox")
    if not (-180 <= x0 <= 180 and -180 <= x1 <= 180 and -90 <= y0 <= 90 and -90 <= y1 <= 90):
        raise InvalidInput(
            "bbox is lon/lat (WGS84): lon within ±180, lat within ±90", code="invalid-bbox"
        )
    if x0 > x1 or y0 > y1:
        raise InvalidInput(
            "bbox must be minLon,minLat,maxLon,maxLat with min ≤ max", code="invalid-bbox"
        )
    return x0, y0, x1, y1


def media_type(request: Request, f: str | None, default: str) -> str:
    """``f`` wins; else GeoJSON unless the Accept header asks for plain JSON only."""
    if f is not None:
        return JSON if f == "json" else GEOJSON
    accept = request.headers.get("accept", "")
    if default == GEOJSON and JSON in accept and GEOJSON not in accept:
        return JSON
    return default


def url(request: Request, path: str = "", **query: Any) -> str:
    """Absolute URL of ``/ogc{path}`` on the host the client used."""
    base = str(request.base_url).rstrip("/") + "/ogc" + path
    q = urlencode({k: v for k, v in query.items() if v is not None}, safe=",")
    return f"{base}?{q}" if q else base


def link(href: str, rel: str, mtype: str, title: str) -> dict[str, str]:
    return {"href": href, "rel": rel, "type": mtype, "title": title}


def allow_header(coll: Collection, user: User, *, item: bool) -> str:
    """Methods the caller may use here; QGIS reads this to decide whether a layer is editable."""
    if coll.editable and allowed("ogc.write", user.role):
        return READ_ONLY + (", PUT, PATCH, DELETE" if item else ", POST")
    return READ_ONLY


def get_and_head(path: str, **kwargs: Any) -> Callable[[F], F]:
    """Register a GET route and its HEAD twin (same guard; HEAD kept out of the OpenAPI
    document so operation ids stay unique)."""

    def register(fn: F) -> F:
        router.add_api_route(path, fn, methods=["GET"], **kwargs)
        router.add_api_route(path, fn, methods=["HEAD"], include_in_schema=False, **kwargs)
        return fn

    return register


def _json(body: Any, mtype: str = JSON, **headers: str) -> JSONResponse:
    return JSONResponse(body, media_type=mtype, headers=headers or None)


@get_and_head("", **permission("ogc.read"))
def landing(request: Request, user: CurrentUser, f: Format = None) -> JSONResponse:
    """Landing page: links to the API description, conformance and the collections."""
    return _json(
        {
            "title": "gridmap OGC API – Features",
            "description": "Areas, grids, drafts and incidents of gridmap, by the caller's area",
            "links": [
                link(url(request), "self", JSON, "this document"),
                link(
                    str(request.base_url).rstrip("/") + "/openapi.json",
                    "service-desc",
                    "application/vnd.oai.openapi+json;version=3.0",
                    "the API definition",
                ),
                link(url(request, "/conformance"), "conformance", JSON, "conformance classes"),
                link(url(request, "/collections"), "data", JSON, "feature collections"),
            ],
        }
    )


@get_and_head("/conformance", **permission("ogc.read"))
def conformance(user: CurrentUser, f: Format = None) -> JSONResponse:
    """Conformance classes implemented (Part 4 transactions apply to draft collections)."""
    return _json({"conformsTo": CONFORMANCE})


def _describe(request: Request, session: Any, coll: Collection, user: User) -> dict[str, Any]:
    items = url(request, f"/collections/{coll.id}/items")
    extent = collection_extent(session, coll, scope=user.area)
    out: dict[str, Any] = {
        "id": coll.id,
        "title": coll.title,
        "description": coll.description,
        "itemType": "feature",
        "crs": [CRS84],
        "storageCrs": CRS84,
        "links": [
            link(url(request, f"/collections/{coll.id}"), "self", JSON, coll.title),
            link(items, "items", GEOJSON, f"{coll.title} as GeoJSON"),
        ],
    }
    if extent is not None:
        out["extent"] = {"spatial": {"bbox": [extent], "crs": CRS84}}
    return out


@get_and_head("/collections", **permission("ogc.read"))
def collections(
    request: Request, session: SessionDep, user: CurrentUser, f: Format = None
) -> JSONResponse:
    """The collections this caller may read (drafts only for editors, incidents by role)."""
    colls = list_collections(session, role=user.role, scope=user.area)
    return _json(
        {
            "links": [link(url(request, "/collections"), "self", JSON, "collections")],
            "collections": [_describe(request, session, c, user) for c in colls],
        }
    )


@get_and_head("/collections/{collection_id}", **permission("ogc.read"))
def collection(
    collection_id: CollectionId,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    f: Format = None,
) -> JSONResponse:
    """One collection's description; 404 when unknown or not visible to the caller."""
    coll = get_collection(session, collection_id, role=user.role, scope=user.area)
    return _json(_describe(request, session, coll, user))


@get_and_head("/collections/{collection_id}/items", **permission("ogc.read", ok=GEOJSON_OK))
def items(
    collection_id: CollectionId,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    bbox: BBox = None,
    limit: PageLimit = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    f: Format = None,
) -> JSONResponse:
    """A page of features (GeoJSON), in id order, with next/prev links and counts."""
    box = parse_bbox(bbox)
    coll = get_collection(session, collection_id, role=user.role, scope=user.area)
    limit = min(limit, settings.max_page_size)
    feats, matched = features_page(
        session, coll, scope=user.area, bbox=box, limit=limit, offset=offset
    )
    mtype = media_type(request, f, GEOJSON)
    path = f"/collections/{coll.id}/items"
    page = {"bbox": bbox, "limit": limit, "f": f}
    links = [
        link(url(request, path, **page, offset=offset), "self", mtype, "this page"),
        link(url(request, f"/collections/{coll.id}"), "collection", JSON, coll.title),
    ]
    if offset + len(feats) < matched:
        links.append(
            link(url(request, path, **page, offset=offset + limit), "next", mtype, "next page")
        )
    if offset > 0:
        prev = max(offset - limit, 0)
        links.append(link(url(request, path, **page, offset=prev), "prev", mtype, "previous page"))
    body = {
        "type": "FeatureCollection",
        "features": feats,
        "numberMatched": matched,
        "numberReturned": len(feats),
        "timeStamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "links": links,
    }
    return _json(body, mtype, **{"Content-Crs": f"<{CRS84}>"})


@get_and_head(
    "/collections/{collection_id}/items/{feature_id}", **permission("ogc.read", ok=GEOJSON_OK)
)
def item(
    collection_id: CollectionId,
    feature_id: FeatureId,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    f: Format = None,
) -> JSONResponse:
    """One feature by code (incidents: public id); 404 outside the caller's area."""
    coll = get_collection(session, collection_id, role=user.role, scope=user.area)
    feat = get_feature(session, coll, feature_id, scope=user.area)
    mtype = media_type(request, f, GEOJSON)
    feat["links"] = [
        link(url(request, f"/collections/{coll.id}/items/{feature_id}"), "self", mtype, "this"),
        link(url(request, f"/collections/{coll.id}"), "collection", JSON, coll.title),
    ]
    return _json(feat, mtype, **{"Content-Crs": f"<{CRS84}>"})


@router.options("/collections/{collection_id}/items", status_code=204, **permission("ogc.read"))
def items_options(collection_id: CollectionId, session: SessionDep, user: CurrentUser) -> Response:
    """``Allow``: POST appears for draft collections the caller may edit."""
    coll = get_collection(session, collection_id, role=user.role, scope=user.area)
    return Response(status_code=204, headers={"Allow": allow_header(coll, user, item=False)})


@router.options(
    "/collections/{collection_id}/items/{feature_id}", status_code=204, **permission("ogc.read")
)
def item_options(
    collection_id: CollectionId, feature_id: FeatureId, session: SessionDep, user: CurrentUser
) -> Response:
    """``Allow``: PUT, PATCH and DELETE appear for features of drafts the caller may edit."""
    coll = get_collection(session, collection_id, role=user.role, scope=user.area)
    get_feature(session, coll, feature_id, scope=user.area)
    return Response(status_code=204, headers={"Allow": allow_header(coll, user, item=True)})
