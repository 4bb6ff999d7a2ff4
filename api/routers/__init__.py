"""Routers, one per user task, and the route keyword arguments every route uses."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query

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

PageLimit = Annotated[
    int,
    Query(
        ge=1,
        description="page size; larger values are clamped to the server maximum "
        "(GRIDMAP_MAX_PAGE_SIZE, default 5000)",
    ),
]

Offset = Annotated[int, Query(ge=0, le=10_000_000, description="rows to skip")]

GEOJSON_OK = {
    "description": "GeoJSON (RFC 7946)",
    "content": {"application/geo+json": {"schema": {"type": "object"}}},
}


def _ok(ok: dict[str, Any] | None) -> dict[int | str, dict[str, Any]]:
    return {200: ok} if ok else {}


def permission(operation: str, ok: dict[str, Any] | None = None) -> dict[str, Any]:
    """Route keyword arguments binding a route to one permission-matrix operation, with the
    error responses every guarded route may give (``ok`` documents another 200 media type)."""
    return {
        "dependencies": [Depends(guard(operation))],
        "openapi_extra": {"x-permission": operation},
        "responses": {**_AUTH_ERRORS, **_ok(ok)},
    }


def public(operation: str, ok: dict[str, Any] | None = None) -> dict[str, Any]:
    """Route keyword arguments for an operation that needs no token."""
    return {
        "openapi_extra": {"x-permission": operation},
        "responses": {**_ERRORS, 401: {"description": "bad credentials", **_PROBLEM}, **_ok(ok)},
    }
