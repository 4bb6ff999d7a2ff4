"""Request dependencies: database session, current user, role guards.

Handlers that write call ``session.commit()`` themselves before answering, so a client never
sees success for a transaction that did not commit; anything else is rolled back on exit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.datastructures import State

from gridmap.errors import AuthenticationError, PermissionDenied
from gridmap.permissions import allowed
from gridmap.security import TokenClaims, read_token
from gridmap.settings import Settings
from gridmap.store.users import get_user

log = logging.getLogger(__name__)
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


def _refresh_ahead(state: State, name: str, ttl: float) -> None:
    """Re-read a cached user row in the background once half its life has passed, so a busy
    user's requests never wait for it (a waiting request costs a thread hop and a round
    trip: a visible part of the lookup's p99 with 40 dispatchers). An entry is still never
    used past ``ttl``, so a revocation takes effect as before."""
    if name in state.user_refreshing:
        return
    state.user_refreshing.add(name)

    def work() -> None:
        try:
            state.user_cache[name] = (time.monotonic() + ttl, _user_entry(state.engine, name))
        except Exception:  # the entry expires and the next request reads it in the foreground
            log.exception("background re-read of user %s failed", name)
        finally:
            state.user_refreshing.discard(name)

    asyncio.get_running_loop().run_in_executor(None, work)


def cached_user(state: State, claims: TokenClaims, ttl: float) -> User | None:
    """The caller from the per-process user cache, or ``None`` when the cache has no fresh
    entry (the caller reads the row). Raises 401 for a disabled user or revoked token.

    The user row (active, token version, role, scope) is cached for ``ttl`` seconds: one
    database round trip less per request; a revocation takes effect within ``ttl``."""
    hit = state.user_cache.get(claims.user)
    now = time.monotonic()
    if hit is None or hit[0] < now:
        return None
    if hit[0] - now < ttl / 2:
        _refresh_ahead(state, claims.user, ttl)
    return _checked_user(claims, hit[1])


def _checked_user(claims: TokenClaims, entry: UserEntry | None) -> User:
    if entry is None or not entry[0] or entry[1] != claims.version:
        raise AuthenticationError("token revoked or user disabled", code="token-revoked")
    return User(name=claims.user, role=entry[2], area=entry[3], person_id=entry[4])


async def current_user(
    request: Request,
    settings: SettingsDep,
    cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The caller, from the token (checked on the event loop) and the user row (cached a few
    seconds per process; read in a worker thread only when the cache has no fresh entry)."""
    token, audience = _credentials(request, cred, settings.token_audience)
    state = request.app.state
    claims = read_token(token, state.signing_key, audience)
    user = cached_user(state, claims, settings.user_cache_s)
    if user is not None:
        return user
    entry = await run_in_threadpool(_user_entry, state.engine, claims.user)
    if len(state.user_cache) > 10_000:
        state.user_cache.clear()
    state.user_cache[claims.user] = (time.monotonic() + settings.user_cache_s, entry)
    return _checked_user(claims, entry)


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
