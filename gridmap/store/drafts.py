"""Edits of planner drafts in PostGIS: apply validated edits, undo/redo, check a draft.

Lifecycle and locks live in :mod:`gridmap.store.draft_locks` (re-exported here). Each edit
runs the pure functions of :mod:`gridmap.editing` on one community in its metric CRS, and is
written only when :func:`gridmap.edit_checks.validate` finds nothing wrong, both before and
after the trip back to lon/lat; ``draft_op`` keeps the rows it removed and added for undo and
redo.
"""

from __future__ import annotations

import json
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap import editing
from gridmap.crs import metric_crs_for_geometry, to_metric, transform_geometry
from gridmap.edit_checks import problems_json, validate
from gridmap.edit_noding import lonlat_grids
from gridmap.errors import ConflictError, InvalidInput, NotFound, ValidationFailed
from gridmap.store.areas import record_audit
from gridmap.store.draft_locks import (
    LOCK_MINUTES,
    check_no_foreign_locks,
    discard_draft,
    draft_info,
    draft_row,
    hold_locks,
    open_draft,
    release_locks,
)
from gridmap.store.grids import _roads

__all__ = [
    "LOCK_MINUTES",
    "OPERATIONS",
    "apply_operation",
    "check_no_foreign_locks",
    "discard_draft",
    "draft_info",
    "draft_problems",
    "draft_units",
    "open_draft",
    "redo",
    "release_locks",
    "undo",
]

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
    out = to_metric(geom, crs)
    return out if out.is_valid else shapely.make_valid(out)


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


def apply_operation(
    session: Session, version_id: int, *, user: str, scope: str | None, op: str, **params: Any
) -> dict[str, Any]:
    """Validate and apply one edit to a draft; a refused edit changes nothing (422 details)."""
    if op not in OPERATIONS:
        raise InvalidInput(
            f"unknown edit {op!r}; one of {', '.join(OPERATIONS)}", code="unknown-op"
        )
    draft = draft_row(session, version_id, scope, lock=True)
    hold_locks(session, draft, user)
    cid = _community_of(session, version_id, params)
    c = _Community(session, version_id, cid)
    try:
        edit = _run(c, op, params)
    except shapely.errors.GEOSException as exc:  # degenerate input GEOS cannot overlay
        raise InvalidInput(
            f"{op}: the geometry cannot be processed ({exc}); simplify it", code="geometry-error"
        ) from None
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
    lonlat, rewrite = lonlat_grids(edit, c.crs, before)
    # projected back, a valid lon/lat ring may fold at the millimetre scale: repair that
    # before measuring overlaps and gaps (the table checks validity in lon/lat)
    stored = edit.grids.set_geometry(
        [shapely.make_valid(to_metric(lonlat[k], c.crs)) for k in edit.grids["code"]], crs=c.crs
    )
    problems = validate(stored, c.geom, c.code, c.units)  # what the table will really hold
    if problems:
        raise ValidationFailed(
            f"{op} refused once stored in lon/lat: {problems[0].message}",
            code="edit-invalid",
            details=problems_json(problems),
        )
    added = []
    for i, code in enumerate(edit.grids["code"]):
        counts = (round(hh[i]), round(res[i]))
        old = before.get(code)
        if code not in rewrite and old and (old["households"], old["population"]) == counts:
            continue
        added.append(
            {
                "code": str(code),
                "community_id": cid,
                "kind": c.kinds.get(code, "residential"),
                "households": counts[0],
                "population": counts[1],
                "wkb": shapely.to_wkb(lonlat[code], hex=True),
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
    draft = draft_row(session, vid, scope, lock=True)
    hold_locks(session, draft, user)
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
    draft_row(session, vid, scope)
    ids = session.execute(
        text("SELECT DISTINCT community_id FROM grid WHERE version_id = :vid ORDER BY 1"),
        {"vid": vid},
    ).scalars()
    out: list[dict[str, Any]] = []
    for cid in ids:
        c = _Community(session, vid, int(cid))
        out += problems_json(validate(c.grids, c.geom, c.code, c.units))
    return out


def draft_units(session: Session, vid: int, scope: str | None = None) -> dict[str, Any]:
    """The household units (buildings: counts, no names) of the draft's communities, with the
    draft grid each lies in, as GeoJSON points for the planner's "move units" tool."""
    draft_row(session, vid, scope)
    rows = session.execute(
        text(
            "SELECT u.id, u.households, u.residents, ST_X(u.geom) AS lon, ST_Y(u.geom) AS lat, "
            "(SELECT g.code FROM grid g WHERE g.version_id = :vid AND "
            "ST_Intersects(g.geom, u.geom) ORDER BY g.code LIMIT 1) AS grid "
            "FROM household_unit u WHERE u.community_id IN "
            "(SELECT DISTINCT community_id FROM grid WHERE version_id = :vid) ORDER BY u.id"
        ),
        {"vid": vid},
    ).all()
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": int(r.id),
                "properties": {
                    "households": int(r.households),
                    "residents": int(r.residents),
                    "grid": r.grid,
                },
                "geometry": {"type": "Point", "coordinates": [round(r.lon, 7), round(r.lat, 7)]},
            }
            for r in rows
        ],
    }
