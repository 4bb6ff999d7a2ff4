"""``create_app(settings)``: the FastAPI application factory."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api import errors
from api.fast_locate import FastLocate
from api.limits import BodyLimit
from api.routers import (
    areas,
    auth,
    dashboard,
    drafts,
    exports,
    field,
    grids,
    health,
    incidents,
    maps,
    ogc,
    ogc_edit,
    open311,
    records,
    staffing,
    supervision,
)
from gridmap import __version__
from gridmap.security import LoginThrottle
from gridmap.settings import Settings, get_settings
from gridmap.store.db import database_url, make_engine

WEB = Path(__file__).resolve().parents[1] / "web"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for ``settings`` (environment by default). Opens no connection yet."""
    settings = settings or get_settings()
    app = FastAPI(
        title="gridmap",
        version=__version__,
        description="Grid-based community governance (网格化管理): areas, grids, staffing, "
        "incidents and dispatch on PostGIS.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = make_engine(database_url(settings), settings.statement_timeout_ms)
    app.state.login_throttle = LoginThrottle(settings.login_max_failures, settings.login_window_s)
    app.state.signing_key = settings.signing_key()  # read once, not per request
    app.state.user_cache = {}
    app.state.user_refreshing = set()  # names being re-read in the background
    errors.install(app)
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """Swagger UI served from vendored assets (works air-gapped)."""
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="gridmap API",
            swagger_js_url="/static/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/favicon.png",
        )

    for module in (
        health,
        auth,
        areas,
        grids,
        drafts,
        incidents,
        open311,
        staffing,
        supervision,
        maps,
        dashboard,
        field,
        records,
        ogc,
        ogc_edit,
        exports,
    ):
        app.include_router(module.router)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        overrides={"/api/v1/locate:batch": settings.max_batch_bytes},
    )
    # outermost: an ordinary lookup never reaches the routing and dependency machinery
    app.add_middleware(FastLocate, state=app.state)
    return app
