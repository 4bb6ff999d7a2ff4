"""The one table mapping domain errors to HTTP, rendered as RFC 9457 problem+json."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from gridmap import errors as e

PROBLEM_BASE = "https://gridmap.invalid/problems/"  # stable identifiers, not fetched
MEDIA_TYPE = "application/problem+json"

STATUS: list[tuple[type[e.GridmapError], int]] = [
    (e.AuthenticationError, 401),
    (e.PermissionDenied, 403),
    (e.NotFound, 404),
    (e.ConflictError, 409),
    (e.PayloadTooLarge, 413),
    (e.TooManyRequests, 429),
    (e.InvalidInput, 422),
    (e.ServiceUnavailable, 503),
    (e.GridmapError, 400),
]


def status_for(exc: e.GridmapError) -> int:
    return next(code for cls, code in STATUS if isinstance(exc, cls))


def problem(
    status: int, code: str, title: str, detail: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"type": PROBLEM_BASE + code, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v})
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _routes(routes: list[BaseRoute]) -> list[BaseRoute]:
    """Routes flattened through included routers (FastAPI keeps them nested)."""
    out: list[BaseRoute] = []
    for r in routes:
        inner = getattr(r, "original_router", None)
        out.extend(_routes(inner.routes) if inner is not None else [r])
    return out


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path: Starlette's 405 names only the first
    route that matched the path, so a GET route hides the DELETE route beside it."""
    methods: set[str] = set()
    for route in _routes(request.app.router.routes):
        if route.matches(request.scope)[0] != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def _message(err: dict[str, Any]) -> Any:
    """The validation message; for undecodable JSON with the decoder's reason (which names
    the problem, e.g. NaN, never the input around it)."""
    reason = (err.get("ctx") or {}).get("error")
    if err.get("type") == "json_invalid" and isinstance(reason, str):
        return f"{err.get('msg')}: {reason[:120]}"
    return err.get("msg")


def install(app: FastAPI) -> None:
    @app.exception_handler(e.GridmapError)
    async def _domain(request: Request, exc: e.GridmapError) -> JSONResponse:
        status = status_for(exc)
        if isinstance(exc, e.TooManyRequests):
            resp = problem(
                status, exc.code, "too many requests", exc.message, instance=request.url.path
            )
            resp.headers["Retry-After"] = str(exc.retry_after)
            return resp
        return problem(
            status,
            exc.code,
            exc.code.replace("-", " "),
            exc.message,
            errors=exc.details,
            instance=request.url.path,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = [
            {"loc": list(err.get("loc", [])), "msg": _message(err), "type": err.get("type")}
            for err in exc.errors()
        ]  # no "input": never echo what was sent
        return problem(
            422,
            "invalid-request",
            "invalid request",
            "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in errs),
            errors=errs,
            instance=request.url.path,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            404: "not-found",
            405: "method-not-allowed",
            401: "unauthenticated",
            403: "forbidden",
        }.get(exc.status_code, "http-error")
        resp = problem(exc.status_code, code, str(exc.detail), instance=request.url.path)
        for k, v in (exc.headers or {}).items():  # e.g. Allow on 405
            resp.headers[k] = v
        if exc.status_code == 405 and (methods := allowed_methods(request)):
            resp.headers["Allow"] = ", ".join(methods)
        return resp

    @app.exception_handler(OperationalError)
    async def _db_down(request: Request, exc: OperationalError) -> JSONResponse:
        return problem(
            503,
            "database-unavailable",
            "database unavailable",
            "the database did not answer; retry shortly",
            instance=request.url.path,
        )

    @app.exception_handler(PoolTimeout)
    async def _pool_busy(request: Request, exc: PoolTimeout) -> JSONResponse:
        resp = problem(  # every database connection of this process is busy: overload, not a bug
            503,
            "service-busy",
            "service busy",
            "all database connections are in use; retry shortly",
            instance=request.url.path,
        )
        resp.headers["Retry-After"] = "2"
        return resp

    @app.exception_handler(DBAPIError)
    async def _db_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if "statement timeout" in str(exc.orig):
            resp = problem(
                503,
                "statement-timeout",
                "query took too long",
                "the request exceeded the statement timeout; narrow it or retry",
                instance=request.url.path,
            )
            resp.headers["Retry-After"] = "5"
            return resp
        return problem(
            422,
            "rejected-by-database",
            "the database rejected the request",
            str(getattr(getattr(exc.orig, "diag", None), "message_primary", None) or "rejected"),
            instance=request.url.path,
        )
