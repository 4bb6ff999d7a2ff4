"""Draft lifecycle: open with a per-community lock, resume, discard; who holds what.

A draft is a ``grid_version`` in status ``draft`` holding a copy of the published grids of the
communities being edited; a ``draft_lock`` row per community keeps other planners out (409 with
who and since) until it expires. Every edit refreshes the lock; an expired lock is taken back
when nobody else took it and nothing was published meanwhile.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.orm import Session

from gridmap.errors import ConflictError, InvalidInput, NotFound
from gridmap.store.areas import record_audit
from gridmap.store.models import GridVersion

__all__ = [
    "LOCK_MINUTES",
    "check_no_foreign_locks",
    "discard_draft",
    "draft_info",
    "draft_row",
    "hold_locks",
    "open_draft",
    "release_locks",
]

LOCK_MINUTES = 120


def _in_scope(code: str, scope: str | None) -> bool:
    return scope is None or code.startswith(scope)


def _locks(session: Session, community_ids: list[int]) -> list[Row[Any]]:
    session.execute(text("DELETE FROM draft_lock WHERE expires_at < now()"))
    return list(
        session.execute(
            text(
                "SELECT l.community_id, a.code, l.version_id, l.locked_by, l.locked_at, "
                "l.expires_at FROM draft_lock l JOIN area a ON a.id = l.community_id "
                "WHERE l.community_id = ANY(:ids) ORDER BY a.code FOR UPDATE OF l"
            ),
            {"ids": community_ids},
        ).all()
    )


def _locked_error(held: list[Row[Any]]) -> ConflictError:
    first = held[0]
    return ConflictError(
        f"community {first.code} is being edited by {first.locked_by} since "
        f"{first.locked_at:%Y-%m-%d %H:%M} UTC (draft {first.version_id}; the lock expires "
        f"{first.expires_at:%H:%M} UTC)",
        code="draft-locked",
        details=[
            {
                "community": r.code,
                "locked_by": r.locked_by,
                "since": r.locked_at.isoformat(),
                "expires": r.expires_at.isoformat(),
                "draft": r.version_id,
            }
            for r in held
        ],
    )


def check_no_foreign_locks(session: Session, community_ids: list[int], version_id: int) -> None:
    """409 when another draft holds a lock on any of these communities (publish, rollback)."""
    held = [r for r in _locks(session, community_ids) if r.version_id != version_id]
    if held:
        raise _locked_error(held)


def open_draft(
    session: Session,
    communities: list[str],
    *,
    user: str,
    scope: str | None,
    note: str | None = None,
    lock_minutes: int = LOCK_MINUTES,
    from_version: int | None = None,
) -> dict[str, Any]:
    """Open (or reopen) a draft of the current grids of ``communities``, locking them; with
    ``from_version``, of that generated plan's grids instead (refine a plan before it is
    published — also for communities that have no published grids yet)."""
    codes = sorted(set(communities))
    rows = session.execute(
        text("SELECT id, code FROM area WHERE kind = 'community' AND code = ANY(:codes)"),
        {"codes": codes},
    ).all()
    found = {r.code: int(r.id) for r in rows if _in_scope(r.code, scope)}
    missing = [c for c in codes if c not in found]
    if missing:
        raise NotFound(f"community {missing[0]} not found", code="community-not-found")
    ids = [found[c] for c in codes]
    held = _locks(session, ids)
    if foreign := [r for r in held if r.locked_by != user]:
        raise _locked_error(foreign)
    mine = {r.version_id for r in held}
    if len(held) == len(ids) and len(mine) == 1:  # the same planner coming back to the draft
        vid = mine.pop()
        started = session.execute(
            text("SELECT (params->>'from_version')::int FROM grid_version WHERE id = :v"),
            {"v": vid},
        ).scalar()
        if from_version is None or started == from_version:
            _refresh(session, vid, lock_minutes)
            return draft_info(session, vid)
        raise ConflictError(
            f"you already edit these communities in draft {vid}; publish or discard it "
            f"before starting from plan {from_version}",
            code="draft-open",
        )
    if held:
        r = held[0]
        raise ConflictError(
            f"you already edit community {r.code} in draft {r.version_id}; publish or discard "
            "it, or open exactly the same communities again",
            code="draft-open",
        )
    if from_version is not None:
        _check_plan(session, from_version)
    source = (
        "valid_from IS NOT NULL AND valid_to IS NULL"
        if from_version is None
        else "version_id = :src"
    )
    counts: dict[int, int] = dict(
        session.execute(
            text(
                "SELECT community_id, count(*) FROM grid WHERE community_id = ANY(:ids) "
                f"AND {source} GROUP BY community_id"
            ),
            {"ids": ids, "src": from_version},
        ).all()
    )
    if empty := [c for c in codes if not counts.get(found[c])]:
        raise InvalidInput(
            f"community {empty[0]} has no published grids to edit; run gridding first"
            if from_version is None
            else f"plan {from_version} has no grids in community {empty[0]}",
            code="no-grids",
        )
    params: dict[str, Any] = {"kind": "edit", "communities": codes}
    if from_version is not None:
        params["from_version"] = from_version
    version = GridVersion(status="draft", created_by=user, note=note, params=params)
    session.add(version)
    session.flush()
    vid = int(version.id)
    session.execute(
        text(
            "INSERT INTO grid (version_id, code, community_id, kind, households, population, geom)"
            " SELECT :vid, code, community_id, kind, households, population, geom FROM grid "
            f"WHERE community_id = ANY(:ids) AND {source}"
        ),
        {"vid": vid, "ids": ids, "src": from_version},
    )
    taken = session.execute(
        text(
            "INSERT INTO draft_lock (community_id, version_id, locked_by, expires_at) "
            "SELECT unnest(CAST(:ids AS int[])), :vid, :user, now() + make_interval(mins => :m) "
            "ON CONFLICT (community_id) DO NOTHING RETURNING community_id"
        ),
        {"ids": ids, "vid": vid, "user": user, "m": lock_minutes},
    ).all()
    if len(taken) != len(ids):  # another planner locked one between our check and insert
        raise ConflictError(
            "another planner just opened one of these communities", code="draft-locked"
        )
    record_audit(
        session, user, "drafts.open", "grid_version", str(vid), after={"communities": codes}
    )
    return draft_info(session, vid)


def _check_plan(session: Session, version: int) -> None:
    """A draft may start from a generated draft not yet published (anything else is a 409
    naming what it is; an unknown id a 404)."""
    row = session.execute(
        text("SELECT status, params->>'kind' AS kind FROM grid_version WHERE id = :v"),
        {"v": version},
    ).first()
    if row is None:
        raise NotFound(f"grid version {version} not found", code="version-not-found")
    if row.status != "draft" or (row.kind or "gridding") != "gridding":
        raise ConflictError(
            f"grid version {version} is {'an ' + row.kind if row.kind else 'a'} {row.status} "
            "version, not a generated plan; open a draft of the current grids instead",
            code="not-a-plan",
        )


def _refresh(session: Session, vid: int, minutes: int = LOCK_MINUTES) -> None:
    session.execute(
        text(
            "UPDATE draft_lock SET expires_at = now() + make_interval(mins => :m) "
            "WHERE version_id = :vid"
        ),
        {"vid": vid, "m": minutes},
    )


def draft_row(session: Session, vid: int, scope: str | None, *, lock: bool = False) -> Row[Any]:
    row = session.execute(
        text(
            "SELECT v.id, v.status, v.created_by, v.created_at, v.params, "
            "array_agg(DISTINCT a.code) AS communities FROM grid_version v "
            "JOIN grid g ON g.version_id = v.id JOIN area a ON a.id = g.community_id "
            "WHERE v.id = :vid GROUP BY v.id"
        ),
        {"vid": vid},
    ).first()
    if row is None or not all(_in_scope(c, scope) for c in row.communities):
        raise NotFound(f"draft {vid} not found", code="draft-not-found")
    if row.status != "draft":
        raise ConflictError(f"grid version {vid} is {row.status}, not a draft", code="not-a-draft")
    if lock:
        session.execute(
            text("SELECT id FROM grid_version WHERE id = :vid FOR UPDATE"), {"vid": vid}
        )
    return row


def hold_locks(session: Session, draft: Row[Any], user: str) -> None:
    """The caller must hold this draft's locks; an expired lock is taken back if still free."""
    ids = [
        int(i)
        for i in session.execute(
            text("SELECT DISTINCT community_id FROM grid WHERE version_id = :vid"),
            {"vid": draft.id},
        ).scalars()
    ]
    held = _locks(session, ids)
    if foreign := [r for r in held if r.version_id != draft.id or r.locked_by != user]:
        raise _locked_error(foreign)
    if len(held) < len(ids):
        newer = session.execute(
            text(
                "SELECT count(*) FROM grid WHERE community_id = ANY(:ids) AND valid_to IS NULL "
                "AND valid_from > :since"
            ),
            {"ids": ids, "since": draft.created_at},
        ).scalar_one()
        if newer:
            raise ConflictError(
                f"the grids of draft {draft.id} were published anew after it was opened and its "
                "lock expired; discard it and open a new draft",
                code="draft-stale",
            )
        session.execute(
            text(
                "INSERT INTO draft_lock (community_id, version_id, locked_by, expires_at) "
                "SELECT unnest(CAST(:ids AS int[])), :vid, :user, now() "
                "ON CONFLICT (community_id) DO NOTHING"
            ),
            {"ids": ids, "vid": draft.id, "user": user},
        )
    _refresh(session, int(draft.id))


def draft_info(session: Session, vid: int, scope: str | None = None) -> dict[str, Any]:
    """What a planner needs to resume: communities, lock, undo/redo depth, grid count."""
    d = draft_row(session, vid, scope)
    lock = session.execute(
        text(
            "SELECT locked_by, min(locked_at) AS since, min(expires_at) AS expires "
            "FROM draft_lock WHERE version_id = :vid GROUP BY locked_by"
        ),
        {"vid": vid},
    ).first()
    ops: dict[str, int] = dict(
        session.execute(
            text("SELECT state, count(*) FROM draft_op WHERE version_id = :vid GROUP BY state"),
            {"vid": vid},
        ).all()
    )
    grids = session.execute(
        text("SELECT count(*) FROM grid WHERE version_id = :vid"), {"vid": vid}
    ).scalar_one()
    return {
        "draft": int(d.id),
        "status": d.status,
        "created_by": d.created_by,
        "created_at": d.created_at.isoformat(),
        "communities": sorted(d.communities),
        "grids": int(grids),
        "lock": None
        if lock is None
        else {
            "locked_by": lock.locked_by,
            "since": lock.since.isoformat(),
            "expires": lock.expires.isoformat(),
        },
        "can_undo": int(ops.get("done", 0)),
        "can_redo": int(ops.get("undone", 0)),
    }


def release_locks(session: Session, vid: int) -> None:
    """Drop the draft's locks (published or discarded)."""
    session.execute(text("DELETE FROM draft_lock WHERE version_id = :vid"), {"vid": vid})


def discard_draft(session: Session, vid: int, *, user: str, scope: str | None) -> dict[str, Any]:
    """Give up a draft: its grids and edit log go, its locks are released."""
    draft = draft_row(session, vid, scope, lock=True)
    held = (
        session.execute(
            text("SELECT locked_by FROM draft_lock WHERE version_id = :vid AND expires_at > now()"),
            {"vid": vid},
        )
        .scalars()
        .first()
    )
    if held and held != user:
        raise ConflictError(f"draft {vid} is being edited by {held}", code="draft-locked")
    release_locks(session, vid)
    session.execute(text("DELETE FROM grid WHERE version_id = :vid"), {"vid": vid})
    session.execute(text("DELETE FROM draft_op WHERE version_id = :vid"), {"vid": vid})
    session.execute(
        text("UPDATE grid_version SET status = 'discarded' WHERE id = :vid"), {"vid": vid}
    )
    record_audit(
        session,
        user,
        "drafts.discard",
        "grid_version",
        str(vid),
        before={"communities": draft.communities},
    )
    return {"draft": vid, "status": "discarded"}
