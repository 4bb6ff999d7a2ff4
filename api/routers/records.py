"""Restricted records: care subjects (audited, purpose required) and the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import CurrentUser, SessionDep
from api.routers import permission
from gridmap.store.audit import care_subjects, query_audit

router = APIRouter(prefix="/api/v1", tags=["records"])


@router.get("/care-subjects", **permission("care_subjects.read"))
def list_care_subjects(
    session: SessionDep,
    user: CurrentUser,
    purpose: Annotated[
        str, Query(min_length=4, max_length=500, description="why you need these records (audited)")
    ],
) -> list[dict[str, Any]]:
    """Care subjects in the caller's area with their carer and exact point. Every call is
    recorded in the audit trail with its purpose; identity numbers are never returned."""
    rows = care_subjects(session, scope=user.area, actor=user.name, purpose=purpose)
    session.commit()  # the audit row
    return rows


@router.get("/audit", **permission("audit.read"))
def audit(
    session: SessionDep,
    user: CurrentUser,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Who did what when (with before/after), newest first."""
    return query_audit(session, actor=actor, action=action, since=since, until=until, limit=limit)
