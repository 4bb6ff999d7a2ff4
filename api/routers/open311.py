"""Open311 GeoReport v2 intake (``/open311/v2``), so existing hotline and app clients can
report disputes. Extension: ``coord_sys`` (wgs84 | gcj02 | bd09 | EPSG:n) for the point."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from api.deps import CurrentUser, SessionDep
from api.limits import StrictJSONRoute
from api.routers import IsoDateTime, permission, public
from gridmap.dispatch import SERVICES, open311_status
from gridmap.errors import InvalidInput, NotFound
from gridmap.store.incidents import create_incident, list_incidents
from gridmap.store.models import INCIDENT_STATUS

router = APIRouter(prefix="/open311/v2", tags=["open311"], route_class=StrictJSONRoute)
_NAME = {s.code: s.name for s in SERVICES}


@router.get("/services.json", **public("open311.services"))
def services() -> list[dict[str, Any]]:
    """The dispute categories."""
    return [
        {
            "service_code": s.code,
            "service_name": s.name,
            "description": s.description,
            "metadata": False,
            "type": "realtime",
            "keywords": "纠纷,调解",
            "group": "矛盾纠纷调解",
        }
        for s in SERVICES
    ]


def _request(inc: dict[str, Any]) -> dict[str, Any]:
    status, notes = open311_status(inc["status"])
    return {
        "service_request_id": inc["public_id"],
        "status": status,
        "status_notes": notes,
        "status_description": inc["status"],
        "service_name": _NAME.get(inc["service_code"]),
        "service_code": inc["service_code"],
        "description": inc["description"],
        "agency_responsible": inc["grid_code"],
        "service_notice": None,
        "requested_datetime": _iso(inc["created_at"]),
        "updated_datetime": _iso(inc["updated_at"]),
        "expected_datetime": None,
        "address": inc["address"],
        "address_id": None,
        "zipcode": None,
        "lat": inc["lat"],
        "long": inc["lon"],
        "media_url": None,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def _fields(request: Request) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        try:
            data = await request.json()
        except ValueError as exc:
            raise InvalidInput("body is not valid JSON", code="bad-json") from exc
        if not isinstance(data, dict):
            raise InvalidInput("body must be a JSON object", code="bad-json")
        return data
    return dict(await request.form())


def _float(fields: dict[str, Any], name: str) -> float | None:
    value = fields.get(name)
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number", code="bad-number") from None


@router.post("/requests.json", status_code=201, **permission("open311.create"))
async def create(request: Request, session: SessionDep, user: CurrentUser) -> list[dict[str, Any]]:
    """Create a service request (form-encoded as the spec says, or JSON). ``lat``/``long``
    are required here: address geocoding is not available offline."""
    f = await _fields(request)
    lat, lon = _float(f, "lat"), _float(f, "long")
    if lat is None or lon is None:
        raise InvalidInput(
            "lat and long are required (address_string alone cannot be located offline)",
            code="location-required",
        )
    if not f.get("service_code"):
        raise InvalidInput("service_code is required", code="service-code-required")
    contact = (
        " ".join(str(f[k]) for k in ("first_name", "last_name", "phone", "email") if f.get(k))[:200]
        or None
    )
    inc = create_incident(
        session,
        category=str(f["service_code"])[:32],
        x=lon,
        y=lat,
        crs=str(f.get("coord_sys") or "wgs84")[:32],
        description=(str(f["description"])[:4000] if f.get("description") else None),
        address=str(f["address_string"])[:500] if f.get("address_string") else None,
        contact=contact,
        reporter=user.name,
    )
    session.commit()
    return [
        {"service_request_id": inc["public_id"], "service_notice": "已受理", "account_id": None}
    ]


@router.get("/requests.json", **permission("open311.read"))
def requests(
    session: SessionDep,
    user: CurrentUser,
    service_request_id: Annotated[str | None, Query(max_length=2000)] = None,
    service_code: Annotated[str | None, Query(max_length=200)] = None,
    start_date: IsoDateTime | None = None,
    end_date: IsoDateTime | None = None,
    status: Annotated[str | None, Query(pattern=r"^(open|closed)(,(open|closed))*$")] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[dict[str, Any]]:
    """Requests with the spec's filters (comma lists allowed) and pagination."""
    wanted = set(status.split(",")) if status else None
    internal = None
    if wanted:
        internal = [s for s in INCIDENT_STATUS if open311_status(s)[0] in wanted]
    rows = list_incidents(
        session,
        status=internal,
        service=service_code.split(",") if service_code else None,
        start=start_date,
        end=end_date,
        scope=user.area,
        ids=service_request_id.split(",") if service_request_id else None,
        limit=page_size,
        offset=(page - 1) * page_size,
    )
    return [_request(r) for r in rows]


@router.get("/requests/{request_id}.json", **permission("open311.read"))
def one_request(request_id: str, session: SessionDep, user: CurrentUser) -> list[dict[str, Any]]:
    """One request, as a one-element list (the spec's shape)."""
    rows = list_incidents(session, ids=[request_id], scope=user.area, limit=1)
    if not rows:
        raise NotFound(f"no service request {request_id}", code="request-not-found")
    return [_request(rows[0])]
