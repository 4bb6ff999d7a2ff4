"""Login (password → bearer token) and who-am-I."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.limits import StrictJSONRoute
from api.routers import permission, public
from gridmap.errors import AuthenticationError, TooManyRequests
from gridmap.security import LoginThrottle, TokenClaims, issue_token, verify_password
from gridmap.store.users import get_user

router = APIRouter(prefix="/api/v1/auth", tags=["auth"], route_class=StrictJSONRoute)


@router.post("/token", **public("auth.token"))
def token(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    username: Annotated[str, Form(min_length=1, max_length=64)],
    password: Annotated[str, Form(min_length=1, max_length=256)],
) -> dict[str, Any]:
    """OAuth2 password grant: form fields ``username`` and ``password``."""
    throttle: LoginThrottle = request.app.state.login_throttle
    key = f"{username}|{request.client.host if request.client else '-'}"
    wait = throttle.retry_after(key)
    if wait:
        raise TooManyRequests(
            f"too many failed logins; retry in {wait} s", retry_after=wait, code="login-throttled"
        )
    user = get_user(session, username)
    if user is None or not user.active or not verify_password(user.password_hash, password):
        throttle.failed(key)
        raise AuthenticationError("wrong user name or password", code="bad-credentials")
    throttle.succeeded(key)
    tok = issue_token(
        TokenClaims(user.name, user.role, user.area_code, user.token_version),
        settings.signing_key(),
        settings.token_audience,
        settings.token_ttl_minutes,
    )
    return {
        "access_token": tok,
        "token_type": "bearer",
        "expires_in": settings.token_ttl_minutes * 60,
    }


@router.get("/me", **permission("auth.whoami"))
def me(user: CurrentUser) -> dict[str, Any]:
    """The caller's name, role and area scope."""
    return {"name": user.name, "role": user.role, "area": user.area}
