"""Request dependencies: database session, current user, role guards.

Handlers that write call ``session.commit()`` themselves before answering, so a client never
sees success for a transaction that did not commit; anything else is rolled back on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
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


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_engine(request: Request) -> Engine:
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


def current_user(
    session: SessionDep,
    settings: SettingsDep,
    cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    if cred is None or cred.scheme.lower() != "bearer":
        raise AuthenticationError("a bearer token is required", code="missing-token")
    claims = read_token(cred.credentials, settings.signing_key(), settings.token_audience)
    row = get_user(session, claims.user)
    if row is None or not row.active or row.token_version != claims.version:
        raise AuthenticationError("token revoked or user disabled", code="token-revoked")
    return User(name=row.name, role=row.role, area=row.area_code)


CurrentUser = Annotated[User, Depends(current_user)]


def guard(operation: str):  # type: ignore[no-untyped-def]
    """A dependency that admits only roles the matrix allows for ``operation``."""

    def _check(user: CurrentUser) -> User:
        if not allowed(operation, user.role):
            raise PermissionDenied(
                f"role {user.role!r} may not perform {operation}", code="forbidden"
            )
        return user

    _check.__name__ = f"guard_{operation.replace('.', '_')}"
    return _check
