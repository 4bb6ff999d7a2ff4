"""Reading the audit trail, and restricted reads that must leave a trace in it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.errors import InvalidInput
from gridmap.store.areas import record_audit

__all__ = ["care_subjects", "own_care_subjects", "query_audit"]


def query_audit(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Audit rows, newest first; ``action`` matches a prefix (``incident.`` → all incident
    actions)."""
    rows = (
        session.execute(
            text("""
        SELECT id, at, actor, action, object_type, object_id, purpose, before, after
        FROM audit_log
        WHERE (CAST(:actor AS text) IS NULL OR actor = :actor)
          AND (CAST(:action AS text) IS NULL OR action LIKE :action || '%')
          AND (CAST(:since AS timestamptz) IS NULL OR at >= :since)
          AND (CAST(:until AS timestamptz) IS NULL OR at < :until)
        ORDER BY id DESC LIMIT :limit"""),
            {"actor": actor, "action": action, "since": since, "until": until, "limit": limit},
        )
        .mappings()
        .all()
    )
    return [{**dict(r), "at": r["at"].isoformat()} for r in rows]


def _require_purpose(purpose: str) -> str:
    if not purpose or len(purpose.strip()) < 4:
        raise InvalidInput(
            "state the purpose of this restricted read (at least 4 characters)",
            code="purpose-required",
        )
    return purpose.strip()[:500]


def care_subjects(
    session: Session,
    *,
    scope: str | None,
    actor: str,
    purpose: str,
    limit: int = 1000,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Care subjects (pseudonymous code, category, grid, carer, exact point) in ``scope``.

    A restricted read: the purpose is required and the read is audited with what was shown.
    Identity numbers are never returned.
    """
    why = _require_purpose(purpose)
    rows = (
        session.execute(
            text("""
        SELECT c.code, c.category, c.grid_code AS grid, p.name AS volunteer,
               ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat
        FROM care_subject c LEFT JOIN person p ON p.id = c.volunteer_id
        WHERE (CAST(:scope AS text) IS NULL OR c.grid_code LIKE :scope || '%')
        ORDER BY c.code LIMIT :limit OFFSET :offset"""),
            {"scope": scope, "limit": limit, "offset": offset},
        )
        .mappings()
        .all()
    )
    record_audit(
        session,
        actor,
        "care_subject.read",
        "care_subject",
        scope or "*",
        purpose=why,
        after={"rows": len(rows), "offset": offset},
    )
    return [dict(r) for r in rows]


def own_care_subjects(
    session: Session, *, person_id: int, scope: str | None, actor: str, purpose: str
) -> list[dict[str, Any]]:
    """A volunteer's own care subjects (those whose carer is ``person_id``): pseudonymous code,
    category and grid only. No exact point: a volunteer meets their few subjects in person and
    a phone is easily lost (see docs/privacy.md). Audited with the purpose, like every
    restricted read. At most a caseload cap's worth of rows, so no paging is needed."""
    why = _require_purpose(purpose)
    rows = (
        session.execute(
            text("""
        SELECT c.code, c.category, c.grid_code AS grid
        FROM care_subject c
        WHERE c.volunteer_id = :person
          AND (CAST(:scope AS text) IS NULL OR c.grid_code LIKE :scope || '%')
        ORDER BY c.code LIMIT 100"""),
            {"person": person_id, "scope": scope},
        )
        .mappings()
        .all()
    )
    record_audit(
        session,
        actor,
        "care_subject.read_own",
        "person",
        str(person_id),
        purpose=why,
        after={"rows": len(rows), "codes": [r["code"] for r in rows]},
    )
    return [dict(r) for r in rows]
