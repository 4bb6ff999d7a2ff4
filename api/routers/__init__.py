"""Routers, one per user task, and the route keyword arguments every route uses."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Depends, Query
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from api.deps import guard

_PROBLEM = {
    "content": {
        "application/problem+json": {
            "schema": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                },
            }
        }
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text, **_PROBLEM}
    for code, text in [
        (400, "malformed request"),
        (413, "body too large"),
        (422, "invalid input (RFC 9457 problem+json naming the problem)"),
        (429, "too many attempts"),
        (503, "database unavailable or query timed out"),
    ]
}
_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    **{
        code: {"description": text, **_PROBLEM}
        for code, text in [
            (401, "missing, invalid, expired or revoked token"),
            (403, "role not allowed for this operation"),
            (404, "not found or outside the caller's area"),
            (409, "conflict with the current state"),
        ]
    },
}


class Body(BaseModel):
    """Base of every JSON request body: strict types (``false`` is not a number, ``"3"`` not an
    integer) and no NaN or Infinity."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False)


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso(value: Any) -> Any:
    """Query times must be ISO 8601; pydantic would also read ``0.5`` as a Unix time."""
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("expected an ISO 8601 date or date-time such as 2026-01-31T08:00:00Z")
    return value


def _plausible(value: date) -> date:
    """Years 1900–2999 only: date arithmetic at year 1 or 9999 overflows (a 500 found by
    fuzzing ``/maps/incidents?end=0001-01-01``), and no record lies outside them."""
    if not 1900 <= value.year <= 2999:
        raise ValueError("dates must lie between the years 1900 and 2999")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso), AfterValidator(_plausible)]
IsoDate = Annotated[date, BeforeValidator(_iso), AfterValidator(_plausible)]

PAGE_DOC = (
    "page size; larger values are clamped to the server maximum "
    "(GRIDMAP_MAX_PAGE_SIZE, default 5000)"
)
PageLimit = Annotated[int, Query(ge=1, description=PAGE_DOC)]
PageLimitOrAll = Annotated[
    int | None, Query(ge=1, description=PAGE_DOC + "; default: that maximum")
]

Offset = Annotated[int, Query(ge=0, le=10_000_000, description="rows to skip")]

GEOJSON_OK = {
    "description": "GeoJSON (RFC 7946)",
    "content": {"application/geo+json": {"schema": {"type": "object"}}},
}


def _ok(ok: dict[str, Any] | None) -> dict[int | str, dict[str, Any]]:
    return {200: ok} if ok else {}


def permission(
    operation: str, ok: dict[str, Any] | None = None, extra: dict[int, str] | None = None
) -> dict[str, Any]:
    """Route keyword arguments binding a route to one permission-matrix operation, with the
    error responses every guarded route may give (``ok`` documents another 200 media type,
    ``extra`` further problem statuses of this route)."""
    more = {code: {"description": text, **_PROBLEM} for code, text in (extra or {}).items()}
    return {
        "dependencies": [Depends(guard(operation))],
        "openapi_extra": {"x-permission": operation},
        "responses": {**_AUTH_ERRORS, **more, **_ok(ok)},
    }


def public(operation: str, ok: dict[str, Any] | None = None) -> dict[str, Any]:
    """Route keyword arguments for an operation that needs no token."""
    return {
        "openapi_extra": {"x-permission": operation},
        "responses": {**_ERRORS, 401: {"description": "bad credentials", **_PROBLEM}, **_ok(ok)},
    }
