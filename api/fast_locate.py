"""The hot path of ``GET /api/v1/locate``: a dispatcher's lookup answered in ≈ 0.2 ms of CPU.

FastAPI's routing, dependency solving, validation and response encoding cost several times
more than the lookup itself (a raster cell and a 20 m neighbourhood, ≈ 0.1 ms). At a busy
desk that overhead is what queues requests behind each other, so :class:`FastLocate` answers
the ordinary request — a bearer token whose user is in the cache, ``lon`` and ``lat`` as plain
decimals, ``crs`` wgs84/gcj02/bd09 or absent, a point inside a grid — itself, with the same
checks (token signature, audience, expiry, revocation via the cached user row, the role
matrix) and byte-identical JSON. Everything else — a missing or odd parameter, ``at=``, cookie
or print-ticket auth, a user not cached yet, any error — passes to the FastAPI route, which
remains the one definition of the endpoint (its OpenAPI entry, its errors).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from urllib.parse import parse_qsl

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from api.deps import cached_user
from gridmap.errors import GridmapError
from gridmap.permissions import allowed
from gridmap.security import read_token
from gridmap.store.incidents import to_wgs84_point
from gridmap.store.locating import CURRENT, Current, answer

__all__ = ["FastLocate", "current_grids", "refresh_current"]

log = logging.getLogger(__name__)
PATH = "/api/v1/locate"
_DECIMAL = re.compile(r"[+-]?\d{1,3}(?:\.\d{1,17})?")
_CRS = frozenset({"wgs84", "gcj02", "bd09"})
_HEADERS = [(b"content-type", b"application/json")]


async def current_grids(engine: Engine, max_age: float) -> Current:
    """The shared lookup data; a due re-check runs in the background (see ``usable``)."""
    current = fresh_grids(engine, max_age)
    if current is None:
        current = await run_in_threadpool(refresh_current, engine)
    return current


def fresh_grids(engine: Engine, max_age: float) -> Current | None:
    """The lookup data if it may be served without waiting (starting a due background
    re-check), else ``None``."""
    current, recheck = CURRENT.usable(max_age)
    if recheck:
        asyncio.get_running_loop().run_in_executor(None, _recheck_current, engine)
    return current


def refresh_current(engine: Engine) -> Current:
    """Re-check (and rebuild if changed) the lookup data now, waiting for it."""
    with Session(engine) as session:
        return CURRENT.refresh(session)


def _recheck_current(engine: Engine) -> None:
    try:
        CURRENT.recheck(lambda: Session(engine))
    except Exception:  # the next due request tries again; this one was already answered
        log.exception("background re-check of the current grids failed")


class FastLocate:
    """Pure ASGI middleware answering ordinary ``GET /api/v1/locate`` requests (see module)."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state
        state.fast_locate_served = 0  # requests answered here (tests check the path is taken)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "GET":
            body = self._answer(scope)
            if body is not None:
                self.state.fast_locate_served += 1
                headers = [*_HEADERS, (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope) -> bytes | None:
        """The response body, or ``None`` to leave the request to the FastAPI route."""
        query = _query(scope.get("query_string", b""))
        token = _bearer(scope.get("headers", ()))
        if query is None or token is None:
            return None
        state, settings = self.state, self.state.settings
        try:
            claims = read_token(token, state.signing_key, settings.token_audience)
            user = cached_user(state, claims, settings.user_cache_s)
            if user is None or not allowed("locate.read", user.role):
                return None
            current = fresh_grids(state.engine, settings.locate_refresh_s)
            if current is None:
                return None
            lon, lat = to_wgs84_point(float(query["lon"]), float(query["lat"]), query["crs"])
            hit = answer(current, lon, lat)
        except GridmapError:
            return None
        hit.pop("grid_id", None)
        # what Starlette's JSONResponse renders for the route's dict
        return json.dumps(hit, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _query(raw: bytes) -> dict[str, str] | None:
    """lon, lat and crs when the query is exactly that, in plain decimals; else ``None``."""
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    query = dict(pairs)
    if len(query) != len(pairs) or not {"lon", "lat"} <= query.keys() <= {"lon", "lat", "crs"}:
        return None
    if not (_DECIMAL.fullmatch(query["lon"]) and _DECIMAL.fullmatch(query["lat"])):
        return None
    query.setdefault("crs", "wgs84")
    return query if query["crs"] in _CRS else None


def _bearer(headers: object) -> str | None:
    value = None
    for name, raw in headers:  # type: ignore[attr-defined]
        if name == b"authorization":
            if value is not None:
                return None  # two Authorization headers: let the full route decide
            value = raw
    if value is None:
        return None
    scheme, _, token = value.decode("latin-1").partition(" ")
    return token if scheme.lower() == "bearer" and token and " " not in token else None
