"""Impact preview of a draft against the published grids: who and what an edit would move.

Planners see, before publishing, the households and residents whose grid changes, the staff
postings left on retired grids, the care links and open incidents whose grid would differ, and
the staffing-quota gaps the change creates or fixes. Counts are for every role that may preview;
identities (staff names, care-subject codes, incident ids) only for roles allowed to see them.
Located incidents keep the grid they were located in; the preview only tells which of them now
lie in another grid.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.permissions import allowed

__all__ = ["impact"]

OPEN_INCIDENTS = ("reported", "dispatched", "accepted", "on_site", "escalated")
QUOTA_ROLES = ("grid_manager", "mediator")

# grid code of a point among the current grids (cur) or the draft's (new); ties → lowest code
_CTE = """
WITH comm AS (SELECT DISTINCT community_id AS id FROM grid WHERE version_id = :vid),
cur AS (SELECT g.code, g.geom FROM grid g JOIN comm ON comm.id = g.community_id
        WHERE g.valid_from IS NOT NULL AND g.valid_to IS NULL),
new AS (SELECT g.code, g.geom FROM grid g WHERE g.version_id = :vid)
"""


def _at(table: str, point: str) -> str:
    return (
        f"(SELECT t.code FROM {table} t WHERE ST_Intersects(t.geom, {point}) "
        "ORDER BY t.code LIMIT 1)"
    )


def _grid_changes(session: Session, vid: int) -> dict[str, list[str]]:
    rows = session.execute(
        text(
            _CTE + "SELECT coalesce(c.code, n.code) AS code, "
            "CASE WHEN c.code IS NULL THEN 'created' WHEN n.code IS NULL THEN 'retired' "
            "WHEN ST_Area(ST_SymDifference(c.geom, n.geom)::geography) > 0.01 THEN 'changed' "
            "ELSE 'same' END AS change FROM cur c FULL JOIN new n ON n.code = c.code"
        ),
        {"vid": vid},
    ).all()
    out: dict[str, list[str]] = {"created": [], "retired": [], "changed": [], "same": []}
    for r in rows:
        out[r.change].append(r.code)
    return {k: sorted(v) for k, v in out.items()}


def _households(session: Session, vid: int) -> dict[str, Any]:
    rows = session.execute(
        text(
            _CTE + "SELECT f.before, f.after, count(*) AS units, sum(u.households) AS households, "
            "sum(u.residents) AS residents FROM household_unit u JOIN comm ON "
            f"comm.id = u.community_id, LATERAL (SELECT {_at('cur', 'u.geom')} AS before, "
            f"{_at('new', 'u.geom')} AS after) f WHERE f.before IS DISTINCT FROM f.after "
            "GROUP BY f.before, f.after ORDER BY sum(u.households) DESC"
        ),
        {"vid": vid},
    ).all()
    return {
        "units": int(sum(r.units for r in rows)),
        "households": int(sum(r.households for r in rows)),
        "residents": int(sum(r.residents for r in rows)),
        "moves": [
            {
                "from": r.before,
                "to": r.after,
                "units": int(r.units),
                "households": int(r.households),
                "residents": int(r.residents),
            }
            for r in rows[:100]
        ],
    }


def _postings(session: Session, vid: int, retired: list[str], names: bool) -> dict[str, Any]:
    rows = session.execute(
        text(
            "SELECT p.grid_code, p.role, s.name FROM posting p JOIN person s ON s.id = p.person_id "
            "WHERE p.valid_to IS NULL AND p.grid_code = ANY(:codes) ORDER BY p.grid_code, p.role"
        ),
        {"codes": retired},
    ).all()
    out: dict[str, Any] = {"on_retired_grids": len(rows)}
    if names:
        out["postings"] = [{"grid": r.grid_code, "role": r.role, "name": r.name} for r in rows]
    return out


def _care(session: Session, vid: int, identities: bool) -> dict[str, Any]:
    rows = session.execute(
        text(
            _CTE + "SELECT c.code, c.grid_code AS before, "
            f"{_at('new', 'c.geom')} AS after FROM care_subject c "
            "JOIN cur ON cur.code = c.grid_code WHERE c.geom IS NOT NULL"
        ),
        {"vid": vid},
    ).all()
    moved = [r for r in rows if r.before != r.after]
    out: dict[str, Any] = {"links_changing_grid": len(moved)}
    if identities:
        out["care_subjects"] = [{"code": r.code, "from": r.before, "to": r.after} for r in moved]
    return out


def _incidents(session: Session, vid: int, retired: list[str], ids: bool) -> dict[str, Any]:
    rows = session.execute(
        text(
            _CTE + "SELECT i.public_id, i.grid_code AS located, "
            f"{_at('new', 'i.geom')} AS now_in FROM incident i JOIN cur ON cur.code = i.grid_code "
            "WHERE i.status = ANY(:open) AND i.geom IS NOT NULL"
        ),
        {"vid": vid, "open": list(OPEN_INCIDENTS)},
    ).all()
    moved = [r for r in rows if r.located != r.now_in]
    out: dict[str, Any] = {
        "open_in_another_grid_now": len(moved),
        "open_on_retired_grids": sum(1 for r in rows if r.located in retired),
        "note": "located incidents keep the grid they were located in",
    }
    if ids:
        out["incidents"] = [
            {"id": r.public_id, "located": r.located, "now_in": r.now_in} for r in moved
        ]
    return out


def _quotas(session: Session, vid: int) -> dict[str, Any]:
    rows = session.execute(
        text(
            _CTE + "SELECT side, code, role FROM ("
            "SELECT 'before' AS side, code FROM cur UNION ALL SELECT 'after', code FROM new) g "
            "CROSS JOIN unnest(CAST(:roles AS text[])) AS role WHERE NOT EXISTS (SELECT 1 FROM "
            "posting p WHERE p.grid_code = g.code AND p.role = role AND p.valid_to IS NULL)"
        ),
        {"vid": vid, "roles": list(QUOTA_ROLES)},
    ).all()
    before = {(r.code, r.role) for r in rows if r.side == "before"}
    after = {(r.code, r.role) for r in rows if r.side == "after"}

    def listed(pairs: set[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"grid": g, "missing": role} for g, role in sorted(pairs)]

    return {"created": listed(after - before), "fixed": listed(before - after)}


def impact(session: Session, vid: int, *, role: str) -> dict[str, Any]:
    """What publishing draft ``vid`` would change, phrased for a role (counts for all)."""
    grids = _grid_changes(session, vid)
    return {
        "draft": vid,
        "grids": {k: v for k, v in grids.items() if k != "same"}
        | {"unchanged": len(grids["same"])},
        "households": _households(session, vid),
        "postings": _postings(session, vid, grids["retired"], allowed("assignments.run", role)),
        "care_links": _care(session, vid, allowed("care_subjects.read", role)),
        "incidents": _incidents(session, vid, grids["retired"], allowed("incidents.read", role)),
        "quota_violations": _quotas(session, vid),
    }
