"""Restricted records: care subjects (audited, purpose required) and the audit trail."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.limits import StrictJSONRoute
from api.routers import IsoDateTime, PageLimit, permission
from gridmap.errors import NotFound
from gridmap.store.audit import care_subjects, own_care_subjects, query_audit

router = APIRouter(prefix="/api/v1", tags=["records"], route_class=StrictJSONRoute)
Purpose = Annotated[
    str, Query(min_length=4, max_length=500, description="why you need these records (audited)")
]


@router.get("/care-subjects", **permission("care_subjects.read"))
def list_care_subjects(
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    purpose: Purpose,
    limit: PageLimit = 1000,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[dict[str, Any]]:
    """Care subjects in the caller's area with their carer and exact point. Every call is
    recorded in the audit trail with its purpose; identity numbers are never returned."""
    rows = care_subjects(
        session,
        scope=user.area,
        actor=user.name,
        purpose=purpose,
        limit=min(limit, settings.max_page_size),
        offset=offset,
    )
    session.commit()  # the audit row
    return rows


@router.get("/my/care-subjects", **permission("care_subjects.own"))
def my_care_subjects(
    session: SessionDep, user: CurrentUser, purpose: Purpose
) -> list[dict[str, Any]]:
    """A volunteer's own care subjects: pseudonymous code, category and grid (no exact point,
    no identity number). Audited with the purpose; 404 when the account is not linked to a
    roster person (`gridmap user add --person`)."""
    if user.person_id is None:
        raise NotFound("this account is not linked to a roster person", code="no-person-link")
    rows = own_care_subjects(
        session, person_id=user.person_id, scope=user.area, actor=user.name, purpose=purpose
    )
    session.commit()  # the audit row
    return rows


@router.get("/audit", **permission("audit.read"))
def audit(
    session: SessionDep,
    user: CurrentUser,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    since: IsoDateTime | None = None,
    until: IsoDateTime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Who did what when (with before/after), newest first."""
    return query_audit(session, actor=actor, action=action, since=since, until=until, limit=limit)
