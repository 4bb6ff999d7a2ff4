"""Liveness and readiness: answers ok only when PostGIS answers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.limits import StrictJSONRoute
from api.routers import public
from gridmap import __version__
from gridmap.store.db import ping

router = APIRouter(tags=["health"], route_class=StrictJSONRoute)


@router.get(
    "/health",
    **public(
        "health",
        ok={
            "description": "database reachable",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
    ),
)
def health(request: Request) -> JSONResponse:
    """``{"status": "ok"}`` with the PostGIS version, or 503 when the database is down."""
    try:
        postgis = ping(request.app.state.engine)
    except Exception as exc:  # any failure to reach the DB means not ready
        return JSONResponse(
            {"status": "unavailable", "database": "down", "detail": type(exc).__name__},
            status_code=503,
        )
    return JSONResponse(
        {"status": "ok", "database": "ok", "postgis": postgis, "version": __version__}
    )
