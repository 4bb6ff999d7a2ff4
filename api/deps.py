"""Request dependencies: database session, current user, role guards.

Handlers that write call ``session.commit()`` themselves before answering, so a client never
sees success for a transaction that did not commit; anything else is rolled back on exit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from gridmap.errors import AuthenticationError, PermissionDenied
from gridmap.permissions import allowed
from gridmap.security import read_token
from gridmap.settings import Settings
from gridmap.store.users import get_user

_bearer = HTTPBearer(
    auto_error=False, description="Token from `gridmap token NAME` or POST /api/v1/auth/token"
)


async def get_settings_dep(request: Request) -> Settings:
    """(async: cheap dependencies stay on the event loop instead of a thread-pool hop)"""
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine  # type: ignore[no-any-return]


def get_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        try:
            yield session
        finally:
            session.rollback()


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]


@dataclass(frozen=True)
class User:
    name: str
    role: str
    area: str | None
    person_id: int | None = None  # the roster person behind the account (volunteers)


SESSION_COOKIE = "gridmap_session"  # HttpOnly, SameSite=Strict; honoured for GET/HEAD only
PRINT_TICKET = "print_ticket"  # query parameter; loopback GETs only (headless Chromium printing)
LOOPBACK = frozenset({"127.0.0.1", "::1"})


def _credentials(
    request: Request, cred: HTTPAuthorizationCredentials | None, audience: str
) -> tuple[str, str]:
    """(token, audience): the bearer header; for GET/HEAD also the map pages' session cookie,
    or a one-minute print ticket (own audience) when the request comes from this machine."""
    if cred is not None and cred.scheme.lower() == "bearer":
        return cred.credentials, audience
    if cred is None and request.method in ("GET", "HEAD"):
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            return cookie, audience
        ticket = request.query_params.get(PRINT_TICKET)
        if ticket and request.client is not None and request.client.host in LOOPBACK:
            return ticket, f"{audience}:print"
    raise AuthenticationError("a bearer token is required", code="missing-token")


UserEntry = tuple[bool, int, str, str | None, int | None]


def _user_entry(engine: Engine, name: str) -> UserEntry | None:
    """(active, token version, role, scope, person) of a user, from the database."""
    with Session(engine) as session:
        row = get_user(session, name)
        if row is None:
            return None
        return (row.active, row.token_version, row.role, row.area_code, row.person_id)


async def current_user(
    request: Request,
    settings: SettingsDep,
    cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The caller, from the token (checked on the event loop) and the user row (cached a few
    seconds per process; read in a worker thread only when the cache has no fresh entry)."""
    token, audience = _credentials(request, cred, settings.token_audience)
    claims = read_token(token, request.app.state.signing_key, audience)
    # The user row (active, token version, role, scope) is cached for a few seconds per
    # process: one database round trip less per request; a revocation takes effect within
    # ``user_cache_s``.
    cache: dict[str, tuple[float, UserEntry | None]] = request.app.state.user_cache
    now = time.monotonic()
    hit = cache.get(claims.user)
    if hit is None or hit[0] < now:
        entry = await run_in_threadpool(_user_entry, request.app.state.engine, claims.user)
        if len(cache) > 10_000:
            cache.clear()
        cache[claims.user] = (now + settings.user_cache_s, entry)
        hit = cache[claims.user]
    entry = hit[1]
    if entry is None or not entry[0] or entry[1] != claims.version:
        raise AuthenticationError("token revoked or user disabled", code="token-revoked")
    return User(name=claims.user, role=entry[2], area=entry[3], person_id=entry[4])


CurrentUser = Annotated[User, Depends(current_user)]


def guard(operation: str):  # type: ignore[no-untyped-def]
    """A dependency that admits only roles the matrix allows for ``operation``."""

    async def _check(user: CurrentUser) -> User:
        if not allowed(operation, user.role):
            raise PermissionDenied(
                f"role {user.role!r} may not perform {operation}", code="forbidden"
            )
        return user

    _check.__name__ = f"guard_{operation.replace('.', '_')}"
    return _check
