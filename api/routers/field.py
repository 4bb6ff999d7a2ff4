"""The phone-friendly field reporting page (offline assets; the API calls carry the token)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api.limits import StrictJSONRoute
from api.routers import public

router = APIRouter(tags=["pages"], route_class=StrictJSONRoute)
_PAGE = Path(__file__).resolve().parents[2] / "web" / "templates" / "report.html"


@router.get(
    "/report",
    response_class=HTMLResponse,
    **public(
        "pages.report",
        ok={"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}},
    ),
)
def report_page() -> HTMLResponse:
    """Report a dispute at the phone's GPS position or a point tapped on the map. The page
    itself holds no data; it logs in and calls the incidents API with the user's role."""
    return HTMLResponse(
        _PAGE.read_text(encoding="utf-8"),
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'self'; "
            "script-src 'self' 'unsafe-inline'; style-src 'self' "
            "'unsafe-inline'; img-src 'self' data:",
        },
    )
