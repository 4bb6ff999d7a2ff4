"""Routers, one per user task."""

from __future__ import annotations

from typing import Any

from fastapi import Depends

from api.deps import guard


def permission(operation: str) -> dict[str, Any]:
    """Route keyword arguments binding a route to one permission-matrix operation."""
    return {
        "dependencies": [Depends(guard(operation))],
        "openapi_extra": {"x-permission": operation},
    }


def public(operation: str) -> dict[str, Any]:
    """Route keyword arguments for an operation that needs no token."""
    return {"openapi_extra": {"x-permission": operation}}
