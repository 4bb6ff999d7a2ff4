"""Planner drafts in PostGIS: open with a lock, apply validated edits, undo/redo, publish.

A draft is a ``grid_version`` in status ``draft`` holding a copy of the published grids of the
communities being edited; a ``draft_lock`` row per community keeps other planners out (409 with
who and since) until it expires. Each edit runs the pure functions of :mod:`gridmap.editing`
on one community in its metric CRS, and is written only when :func:`gridmap.edit_checks.validate`
finds nothing wrong; ``draft_op`` keeps the rows it removed and added for undo and redo.
"""

from __future__ import annotations

import json
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Row, text
from sqlalchemy.orm import Session

from gridmap import editing
from gridmap.crs import metric_crs_for_geometry, to_metric, transform_geometry
from gridmap.edit_checks import problems_json, validate
from gridmap.errors import ConflictError, InvalidInput, NotFound, ValidationFailed
from gridmap.store.areas import record_audit
from gridmap.store.grids import _roads
from gridmap.store.models import GridVersion

__all__ = [
    "LOCK_MINUTES",
    "OPERATIONS",
    "apply_operation",
    "discard_draft",
    "draft_info",
    "draft_problems",
    "open_draft",
    "redo",
    "release_locks",
    "undo",
]

LOCK_MINUTES = 120
OPERATIONS = (
    "split_line",
    "split_n",
    "merge",
    "reshape",
    "move_units",
    "replace_one",
    "create",
    "delete",
)


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
) -> dict[str, Any]:
    """Open (or reopen) a draft of the current grids of ``communities``, locking them."""
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
        _refresh(session, vid, lock_minutes)
        return draft_info(session, vid)
    if held:
        r = held[0]
        raise ConflictError(
            f"you already edit community {r.code} in draft {r.version_id}; publish or discard "
            "it, or open exactly the same communities again",
            code="draft-open",
        )
    counts: dict[int, int] = dict(
        session.execute(
            text(
                "SELECT community_id, count(*) FROM grid WHERE community_id = ANY(:ids) "
                "AND valid_from IS NOT NULL AND valid_to IS NULL GROUP BY community_id"
            ),
            {"ids": ids},
        ).all()
    )
    if empty := [c for c in codes if not counts.get(found[c])]:
        raise InvalidInput(
            f"community {empty[0]} has no published grids to edit; run gridding first",
            code="no-grids",
        )
    version = GridVersion(
        status="draft", created_by=user, note=note, params={"kind": "edit", "communities": codes}
    )
    session.add(version)
    session.flush()
    vid = int(version.id)
    session.execute(
        text(
            "INSERT INTO grid (version_id, code, community_id, kind, households, population, geom)"
            " SELECT :vid, code, community_id, kind, households, population, geom FROM grid "
            "WHERE community_id = ANY(:ids) AND valid_from IS NOT NULL AND valid_to IS NULL"
        ),
        {"vid": vid, "ids": ids},
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


def _refresh(session: Session, vid: int, minutes: int = LOCK_MINUTES) -> None:
    session.execute(
        text(
            "UPDATE draft_lock SET expires_at = now() + make_interval(mins => :m) "
            "WHERE version_id = :vid"
        ),
        {"vid": vid, "m": minutes},
    )


def _draft(session: Session, vid: int, scope: str | None, *, lock: bool = False) -> Row[Any]:
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


def _hold(session: Session, draft: Row[Any], user: str) -> None:
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
    d = _draft(session, vid, scope)
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


class _Community:
    """One community of a draft, loaded in its metric CRS for an edit or a check."""

    def __init__(self, session: Session, vid: int, community_id: int) -> None:
        row = session.execute(
            text("SELECT code, ST_AsBinary(geom) AS wkb FROM area WHERE id = :id"),
            {"id": community_id},
        ).one()
        self.id, self.code = community_id, str(row.code)
        wgs = shapely.from_wkb(bytes(row.wkb))
        self.crs = metric_crs_for_geometry(wgs)
        self.geom = shapely.make_valid(to_metric(wgs, self.crs))
        grids = session.execute(
            text(
                "SELECT code, kind, ST_AsBinary(geom) AS wkb FROM grid "
                "WHERE version_id = :vid AND community_id = :cid ORDER BY code"
            ),
            {"vid": vid, "cid": community_id},
        ).all()
        self.kinds = {r.code: r.kind for r in grids}
        self.grids = gpd.GeoDataFrame(
            {"code": [r.code for r in grids]},
            geometry=list(
                to_metric(np.array([shapely.from_wkb(bytes(r.wkb)) for r in grids]), self.crs)
            ),
            crs=self.crs,
        )
        units = session.execute(
            text(
                "SELECT id, households, residents, ST_AsBinary(geom) AS wkb, "
                "ST_AsBinary(footprint) AS foot FROM household_unit WHERE community_id = :cid "
                "ORDER BY id"
            ),
            {"cid": community_id},
        ).all()
        pts = np.array([shapely.from_wkb(bytes(u.wkb)) for u in units], dtype=object)
        foot = [None if u.foot is None else shapely.from_wkb(bytes(u.foot)) for u in units]
        self.units = gpd.GeoDataFrame(
            {
                "id": [int(u.id) for u in units],
                "households": [int(u.households) for u in units],
                "residents": [int(u.residents) for u in units],
                "footprint": [None if f is None else to_metric(f, self.crs) for f in foot],
            },
            geometry=list(to_metric(pts, self.crs)) if len(pts) else [],
            crs=self.crs,
        )
        self.taken = set(
            session.execute(
                text("SELECT DISTINCT code FROM grid WHERE community_id = :cid"),
                {"cid": community_id},
            ).scalars()
        )
        self.session = session

    def roads(self) -> Any:
        wgs = transform_geometry(self.geom, self.crs, "wgs84")
        lines = _roads(self.session, wgs)
        return to_metric(lines, self.crs) if len(lines) else None


def _community_of(session: Session, vid: int, params: dict[str, Any]) -> int:
    codes = [params["code"]] if params.get("code") else list(params.get("codes") or [])
    codes += [*list((params.get("geoms") or {}).keys()), params.get("target") or ""]
    codes = [c for c in codes if c]
    if codes:
        ids = set(
            session.execute(
                text("SELECT community_id FROM grid WHERE version_id = :vid AND code = ANY(:c)"),
                {"vid": vid, "c": codes},
            ).scalars()
        )
        known = session.execute(
            text("SELECT count(*) FROM grid WHERE version_id = :vid AND code = ANY(:c)"),
            {"vid": vid, "c": sorted(set(codes))},
        ).scalar_one()
        if known < len(set(codes)):
            raise NotFound(
                f"grid(s) {', '.join(sorted(set(codes)))} not all in draft {vid}",
                code="grid-not-found",
            )
        if len(ids) != 1:
            raise InvalidInput(
                "an edit works on grids of one community at a time", code="one-community"
            )
        return int(ids.pop())
    geom = params.get("geom")
    if geom is None:
        raise InvalidInput("the edit names no grid and no geometry", code="nothing-to-edit")
    cid = session.execute(
        text(
            "SELECT g.community_id FROM grid g WHERE g.version_id = :vid AND "
            "ST_Intersects(g.geom, ST_GeomFromWKB(:wkb, 4326)) GROUP BY g.community_id "
            "ORDER BY sum(ST_Area(ST_Intersection(g.geom, ST_GeomFromWKB(:wkb, 4326)))) DESC "
            "LIMIT 1"
        ),
        {"vid": vid, "wkb": shapely.to_wkb(geom)},
    ).scalar()
    if cid is None:
        raise ValidationFailed(
            "the geometry lies outside every community of this draft",
            code="outside-community",
            details=[{"kind": "outside-parent", "feature": None}],
        )
    return int(cid)


def _metric(geom: BaseGeometry, crs: str) -> BaseGeometry:
    if geom is None or not isinstance(geom, BaseGeometry) or geom.is_empty:
        raise InvalidInput("missing or empty geometry", code="empty-geometry")
    return to_metric(geom, crs)


def _run(c: _Community, op: str, p: dict[str, Any]) -> editing.Edit:
    g, u = c.grids, c.units
    if op == "split_line":
        return editing.split_by_line(g, p["code"], _metric(p["line"], c.crs), u, c.taken, c.code)
    if op == "split_n":
        return editing.split_into(g, p["code"], int(p["parts"]), u, c.taken, c.code, c.roads())
    if op == "merge":
        return editing.merge(g, list(p["codes"]), u)
    if op == "reshape":
        geoms = {k: _metric(v, c.crs) for k, v in p["geoms"].items()}
        return editing.reshape(g, geoms, c.geom)
    if op == "move_units":
        return editing.move_units(g, [int(i) for i in p["units"]], p["target"], u)
    if op == "replace_one":
        return editing.replace_one(g, p["code"], _metric(p["geom"], c.crs), c.geom)
    if op == "create":
        return editing.create(g, _metric(p["geom"], c.crs), c.geom, c.taken, c.code)
    if op == "delete":
        return editing.delete(g, p["code"])
    raise InvalidInput(f"unknown edit {op!r}; one of {', '.join(OPERATIONS)}", code="unknown-op")


def _rows(session: Session, vid: int, codes: list[str]) -> list[dict[str, Any]]:
    rows = session.execute(
        text(
            "SELECT code, community_id, kind, households, population, "
            "encode(ST_AsBinary(geom), 'hex') AS wkb FROM grid "
            "WHERE version_id = :vid AND code = ANY(:codes) ORDER BY code"
        ),
        {"vid": vid, "codes": codes},
    ).mappings()
    return [dict(r) for r in rows]


def _replace_rows(session: Session, vid: int, drop: list[str], add: list[dict[str, Any]]) -> None:
    session.execute(
        text("DELETE FROM grid WHERE version_id = :vid AND code = ANY(:codes)"),
        {"vid": vid, "codes": drop},
    )
    for r in add:
        session.execute(
            text(
                "INSERT INTO grid (version_id, code, community_id, kind, households, population, "
                "geom) VALUES (:vid, :code, :community_id, :kind, :households, :population, "
                "ST_Multi(ST_GeomFromWKB(decode(:wkb, 'hex'), 4326)))"
            ),
            {"vid": vid, **r},
        )


def _wgs84(geom: BaseGeometry, crs: str) -> BaseGeometry:
    out = transform_geometry(geom, crs, "wgs84")
    return out if out.is_valid else editing._clean(shapely.make_valid(out))


def apply_operation(
    session: Session, version_id: int, *, user: str, scope: str | None, op: str, **params: Any
) -> dict[str, Any]:
    """Validate and apply one edit to a draft; a refused edit changes nothing (422 details)."""
    if op not in OPERATIONS:
        raise InvalidInput(
            f"unknown edit {op!r}; one of {', '.join(OPERATIONS)}", code="unknown-op"
        )
    draft = _draft(session, version_id, scope, lock=True)
    _hold(session, draft, user)
    cid = _community_of(session, version_id, params)
    c = _Community(session, version_id, cid)
    edit = _run(c, op, params)
    problems = validate(edit.grids, c.geom, c.code, c.units)
    if problems:
        raise ValidationFailed(
            f"{op} refused: {problems[0].message}"
            + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""),
            code="edit-invalid",
            details=problems_json(problems),
        )
    owner = editing.assign_units(edit.grids, c.units)
    ok = owner >= 0
    hh = np.bincount(owner[ok], c.units["households"].to_numpy(float)[ok], len(edit.grids))
    res = np.bincount(owner[ok], c.units["residents"].to_numpy(float)[ok], len(edit.grids))
    before = {
        r["code"]: r for r in _rows(session, version_id, list(edit.grids["code"]) + edit.retired)
    }
    added = []
    for i, (code, geom) in enumerate(zip(edit.grids["code"], edit.grids.geometry, strict=True)):
        counts = (round(hh[i]), round(res[i]))
        old = before.get(code)
        if code not in edit.touched and old and (old["households"], old["population"]) == counts:
            continue
        added.append(
            {
                "code": str(code),
                "community_id": cid,
                "kind": c.kinds.get(code, "residential"),
                "households": counts[0],
                "population": counts[1],
                "wkb": shapely.to_wkb(_wgs84(geom, c.crs), hex=True),
            }
        )
    codes = sorted({a["code"] for a in added} | set(edit.retired))
    removed = [before[k] for k in codes if k in before]
    _replace_rows(session, version_id, codes, added)
    session.execute(
        text("DELETE FROM draft_op WHERE version_id = :vid AND state = 'undone'"),
        {"vid": version_id},
    )
    seq = session.execute(
        text(
            "INSERT INTO draft_op (version_id, seq, op, params, removed, added, created_by) "
            "SELECT :vid, coalesce(max(seq), 0) + 1, :op, CAST(:params AS jsonb), "
            "CAST(:removed AS jsonb), CAST(:added AS jsonb), :user FROM draft_op "
            "WHERE version_id = :vid RETURNING seq"
        ),
        {
            "vid": version_id,
            "op": op,
            "params": json.dumps(_plain(params)),
            "removed": json.dumps(removed),
            "added": json.dumps(added),
            "user": user,
        },
    ).scalar_one()
    summary = {
        "draft": version_id,
        "op": op,
        "seq": int(seq),
        "community": c.code,
        "changed": edit.changed,
        "created": edit.created,
        "retired": edit.retired,
    }
    record_audit(session, user, f"drafts.{op}", "grid_version", str(version_id), after=summary)
    return summary


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """Edit parameters as JSON (geometries as WKT) for the edit log."""

    def one(v: Any) -> Any:
        if isinstance(v, BaseGeometry):
            return shapely.to_wkt(v, rounding_precision=7)
        if isinstance(v, dict):
            return {k: one(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [one(x) for x in v]
        return v

    return {k: one(v) for k, v in params.items()}


def _step(
    session: Session, vid: int, *, user: str, scope: str | None, redo_: bool
) -> dict[str, Any]:
    draft = _draft(session, vid, scope, lock=True)
    _hold(session, draft, user)
    state, order = ("undone", "ASC") if redo_ else ("done", "DESC")
    row = session.execute(
        text(
            f"SELECT id, seq, op, removed, added FROM draft_op WHERE version_id = :vid "
            f"AND state = :state ORDER BY seq {order} LIMIT 1"
        ),
        {"vid": vid, "state": state},
    ).first()
    if row is None:
        raise ConflictError(
            f"nothing to {'redo' if redo_ else 'undo'} in draft {vid}", code="nothing-to-undo"
        )
    put = row.added if redo_ else row.removed
    codes = sorted({r["code"] for r in row.removed} | {r["code"] for r in row.added})
    _replace_rows(session, vid, codes, put)
    session.execute(
        text("UPDATE draft_op SET state = :s WHERE id = :id"),
        {"s": "done" if redo_ else "undone", "id": row.id},
    )
    action = "redo" if redo_ else "undo"
    record_audit(
        session,
        user,
        f"drafts.{action}",
        "grid_version",
        str(vid),
        after={"seq": row.seq, "op": row.op},
    )
    return {"draft": vid, action: row.op, "seq": int(row.seq), "grids": codes}


def undo(session: Session, vid: int, *, user: str, scope: str | None) -> dict[str, Any]:
    """Take back the latest edit of the draft."""
    return _step(session, vid, user=user, scope=scope, redo_=False)


def redo(session: Session, vid: int, *, user: str, scope: str | None) -> dict[str, Any]:
    """Apply again the edit undone last."""
    return _step(session, vid, user=user, scope=scope, redo_=True)


def draft_problems(session: Session, vid: int, scope: str | None = None) -> list[dict[str, Any]]:
    """Every partition problem of the draft, community by community (empty: publishable)."""
    _draft(session, vid, scope)
    ids = session.execute(
        text("SELECT DISTINCT community_id FROM grid WHERE version_id = :vid ORDER BY 1"),
        {"vid": vid},
    ).scalars()
    out: list[dict[str, Any]] = []
    for cid in ids:
        c = _Community(session, vid, int(cid))
        out += problems_json(validate(c.grids, c.geom, c.code, c.units))
    return out


def release_locks(session: Session, vid: int) -> None:
    """Drop the draft's locks (published or discarded)."""
    session.execute(text("DELETE FROM draft_lock WHERE version_id = :vid"), {"vid": vid})


def discard_draft(session: Session, vid: int, *, user: str, scope: str | None) -> dict[str, Any]:
    """Give up a draft: its grids and edit log go, its locks are released."""
    draft = _draft(session, vid, scope, lock=True)
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
