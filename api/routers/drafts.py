"""Planner drafts: open with a lock, edit (split, merge, reshape, move units), undo/redo,
validate, preview the impact, publish; grid history: versions, as-of, diff, rollback."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.limits import StrictJSONRoute
from api.routers import GEOJSON_OK, Body, permission
from gridmap.errors import InvalidInput
from gridmap.geojson_in import LINEAR, parse_geometry
from gridmap.settings import Settings
from gridmap.store import drafts, history
from gridmap.store.impact import impact

router = APIRouter(prefix="/api/v1", tags=["drafts and history"], route_class=StrictJSONRoute)
GridCode = Annotated[str, Field(pattern=r"^[0-9]{12}[0-9]{3}$")]


class DraftRequest(Body):
    """Communities to edit (codes); they stay locked for others while the draft is open."""

    communities: list[Annotated[str, Field(pattern=r"^[0-9]{12}$")]] = Field(
        min_length=1, max_length=50
    )
    note: str | None = Field(None, max_length=500)
    # start from a generated plan (POST /gridding) instead of the current grids
    from_version: int | None = Field(None, ge=1, le=2**31 - 1)


class EditRequest(Body):
    """One edit. Geometries are GeoJSON in WGS84 lon/lat.

    - ``split_line``: ``code`` + ``line`` (crossing the grid from edge to edge)
    - ``split_n``: ``code`` + ``parts`` (household-balanced)
    - ``merge``: ``codes`` (adjacent)
    - ``reshape``: ``geoms`` (code → new polygon for two or more neighbours)
    - ``move_units``: ``units`` (household unit ids) + ``target`` grid
    - ``replace_one``: ``code`` + ``geom`` (neighbours give or absorb the difference)
    - ``create``: ``geom`` (carved out of the grids it covers)
    - ``delete``: ``code`` (merged into its longest-shared-edge neighbour)
    """

    op: Literal[
        "split_line", "split_n", "merge", "reshape", "move_units", "replace_one", "create", "delete"
    ]
    code: GridCode | None = None
    codes: list[GridCode] | None = Field(None, min_length=2, max_length=20)
    parts: int | None = Field(None, ge=2, le=50)
    line: dict[str, Any] | None = None
    geom: dict[str, Any] | None = None
    geoms: dict[str, dict[str, Any]] | None = Field(None, min_length=2, max_length=20)
    units: list[Annotated[int, Field(ge=1)]] | None = Field(None, min_length=1, max_length=5000)
    target: GridCode | None = None


_NEEDS: dict[str, tuple[str, ...]] = {
    "split_line": ("code", "line"),
    "split_n": ("code", "parts"),
    "merge": ("codes",),
    "reshape": ("geoms",),
    "move_units": ("units", "target"),
    "replace_one": ("code", "geom"),
    "create": ("geom",),
    "delete": ("code",),
}


def edit_params(body: EditRequest, settings: Settings) -> dict[str, Any]:
    """The keyword arguments of :func:`drafts.apply_operation`, geometries parsed and screened."""
    missing = [k for k in _NEEDS[body.op] if getattr(body, k) is None]
    if missing:
        raise InvalidInput(f"{body.op} needs {', '.join(missing)}", code="missing-field")
    caps = settings.geometry_caps()
    params: dict[str, Any] = {k: getattr(body, k) for k in _NEEDS[body.op]}
    if body.op == "split_line":
        params["line"] = parse_geometry(body.line, kinds=LINEAR, who="line", **caps)
    if "geom" in params:
        params["geom"] = parse_geometry(body.geom, who="geom", **caps)
    if "geoms" in params:
        params["geoms"] = {
            k: parse_geometry(v, who=f"geoms[{k}]", **caps) for k, v in (body.geoms or {}).items()
        }
    return params


@router.post("/drafts", status_code=201, **permission("drafts.edit"))
def open_draft(
    body: DraftRequest, session: SessionDep, user: CurrentUser, settings: SettingsDep
) -> dict[str, Any]:
    """Open a draft of the communities' current grids (409 with who and since if locked)."""
    out = drafts.open_draft(
        session,
        body.communities,
        user=user.name,
        scope=user.area,
        note=body.note,
        lock_minutes=settings.draft_lock_minutes,
        from_version=body.from_version,
    )
    session.commit()
    return out


@router.get("/drafts/{draft_id}", **permission("drafts.read"))
def draft(draft_id: int, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """The draft: communities, lock holder and expiry, undo/redo depth."""
    return drafts.draft_info(session, draft_id, user.area)


@router.post("/drafts/{draft_id}/edits", **permission("drafts.edit"))
def edit(
    draft_id: int, body: EditRequest, session: SessionDep, user: CurrentUser, settings: SettingsDep
) -> dict[str, Any]:
    """Apply one validated edit; a refused edit is a 422 listing each problem, nothing changed."""
    out = drafts.apply_operation(
        session,
        draft_id,
        user=user.name,
        scope=user.area,
        op=body.op,
        **edit_params(body, settings),
    )
    session.commit()
    return out


@router.post("/drafts/{draft_id}/undo", **permission("drafts.edit"))
def undo(draft_id: int, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """Take back the latest edit."""
    out = drafts.undo(session, draft_id, user=user.name, scope=user.area)
    session.commit()
    return out


@router.post("/drafts/{draft_id}/redo", **permission("drafts.edit"))
def redo(draft_id: int, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """Apply again the edit undone last."""
    out = drafts.redo(session, draft_id, user=user.name, scope=user.area)
    session.commit()
    return out


@router.get("/drafts/{draft_id}/validation", **permission("drafts.read"))
def validation(draft_id: int, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """Every partition problem of the draft (an empty list means it can be published)."""
    problems = drafts.draft_problems(session, draft_id, user.area)
    return {"draft": draft_id, "valid": not problems, "problems": problems}


@router.get("/drafts/{draft_id}/units", **permission("drafts.read", ok=GEOJSON_OK))
def units(draft_id: int, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """Household units (buildings with counts; no personal data) and their draft grid."""
    return drafts.draft_units(session, draft_id, user.area)


@router.get("/drafts/{draft_id}/impact", **permission("drafts.read"))
def draft_impact(draft_id: int, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """What publishing would move: households, postings, care links, open incidents, quotas."""
    drafts.draft_info(session, draft_id, user.area)  # 404 outside the caller's area
    return impact(session, draft_id, role=user.role)


@router.post("/drafts/{draft_id}/publish", **permission("grids.publish"))
def publish(draft_id: int, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """Validate and publish the draft as the new current version (dated validity)."""
    drafts.draft_info(session, draft_id, user.area)
    vid = history.publish_draft(session, draft_id, user=user.name, scope=user.area)
    session.commit()
    return {"version": vid, "status": "published"}


@router.delete("/drafts/{draft_id}", **permission("drafts.edit"))
def discard(draft_id: int, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """Give up the draft and release its locks."""
    out = drafts.discard_draft(session, draft_id, user=user.name, scope=user.area)
    session.commit()
    return out


@router.get("/grid-versions", **permission("grids.history"))
def versions(
    session: SessionDep,
    user: CurrentUser,
    community: Annotated[str | None, Query(pattern=r"^[0-9]{6,12}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Grid versions newest first: status, who, when, communities, validity."""
    return history.list_versions(session, scope=user.area, community=community, limit=limit)


@router.get("/grid-versions/diff", **permission("grids.history", ok=GEOJSON_OK))
def diff(
    session: SessionDep,
    user: CurrentUser,
    base: Annotated[int, Query(ge=1)],
    other: Annotated[int, Query(ge=1)],
) -> dict[str, Any]:
    """Grids added, removed and changed between two versions, before and after, as GeoJSON."""
    return history.diff_versions(session, base, other, scope=user.area)


@router.post("/grid-versions/{version_id}/rollback", **permission("grids.rollback"))
def rollback(
    version_id: int,
    session: SessionDep,
    user: CurrentUser,
    area: Annotated[str | None, Query(pattern=r"^[0-9]{6,12}$")] = None,
) -> dict[str, Any]:
    """Republish an old version's grids as a new version (only ``area``'s when given)."""
    out = history.rollback(session, version_id, user=user.name, scope=user.area, area=area)
    session.commit()
    return out
