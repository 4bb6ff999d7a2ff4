"""HTML shells served without data: the phone-friendly field reporting page and the planner
page (offline assets; every figure comes from the API with the signed-in user's token)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api.limits import StrictJSONRoute
from api.routers import public

router = APIRouter(tags=["pages"], route_class=StrictJSONRoute)
_TEMPLATES = Path(__file__).resolve().parents[2] / "web" / "templates"
_PAGE = _TEMPLATES / "report.html"
_HTML = {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:",
}


@router.get("/report", response_class=HTMLResponse, **public("pages.report", ok=_HTML))
def report_page() -> HTMLResponse:
    """Report a dispute at the phone's GPS position or a point tapped on the map. The page
    itself holds no data; it logs in and calls the incidents API with the user's role."""
    return HTMLResponse(_PAGE.read_text(encoding="utf-8"), headers=_HEADERS)


@router.get("/planner", response_class=HTMLResponse, **public("pages.planner", ok=_HTML))
def planner_page() -> HTMLResponse:
    """Planners open a draft, split, merge and redraw grids, see validation problems on the map
    and the impact preview, then publish. Only the drafts API's own role checks apply."""
    return HTMLResponse((_TEMPLATES / "planner.html").read_text(encoding="utf-8"), headers=_HEADERS)
