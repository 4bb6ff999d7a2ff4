"""Incidents in PostGIS: locate, intake, lifecycle events and the atomic mediator claim.

Claims never check-then-act: the incident row is locked, the mediator row is taken with
``FOR UPDATE SKIP LOCKED`` (a second dispatcher gets a clean 409 instead of waiting), the open
caseload is counted under that lock, and partial unique indexes (one exclusive assignment per
mediator and per incident) back it all up.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.crs import normalize_crs, to_wgs84
from gridmap.dispatch import (
    CO_MEDIATION_CATEGORIES,
    HOLDS_MEDIATOR,
    check_transition,
    service_code,
)
from gridmap.errors import ConflictError, InvalidInput, NotFound
from gridmap.store.areas import record_audit
from gridmap.store.locating import locate_current, miss

__all__ = [
    "claim",
    "create_incident",
    "get_incident",
    "list_incidents",
    "locate",
    "possible_duplicates",
    "to_wgs84_point",
    "transition",
]

OPEN_CASE = ("dispatched", "accepted", "on_site", "escalated")  # counts against caseload cap
_ASSIGNMENT_FOR = {
    "accepted": "accepted",
    "on_site": "on_site",
    "resolved": "completed",
    "failed": "completed",
    "escalated": "completed",
    "cancelled": "cancelled",
}


def to_wgs84_point(x: float, y: float, crs: str | None) -> tuple[float, float]:
    """Validate and convert a reported point; errors name the problem, never echo junk."""
    name = normalize_crs(crs)
    if not (math.isfinite(x) and math.isfinite(y)):
        raise InvalidInput("coordinates must be finite numbers", code="non-finite-coordinate")
    if name in ("wgs84", "gcj02", "bd09", "cgcs2000") and (abs(x) > 180 or abs(y) > 90):
        if abs(y) <= 180 and abs(x) <= 90:
            raise InvalidInput(
                "lat is out of range but lon/lat swapped would be valid: send lon first, then lat",
                code="probable-lat-lon-swap",
            )
        raise InvalidInput(
            "coordinates out of range: lon must be within ±180 and lat within ±90",
            code="coordinate-out-of-range",
        )
    lon, lat = to_wgs84(x, y, name)
    lon_f, lat_f = float(np.asarray(lon)), float(np.asarray(lat))
    if not (math.isfinite(lon_f) and math.isfinite(lat_f)) or abs(lat_f) > 90:
        raise InvalidInput(
            "coordinates fall outside the coordinate system's area", code="coordinate-out-of-range"
        )
    return lon_f, lat_f


_VALID_AT = "g.valid_from <= :at AND (g.valid_to IS NULL OR g.valid_to > :at)"


def _grid_at(session: Session, lon: float, lat: float, at: datetime) -> dict[str, Any] | None:
    """The grid valid at ``at`` covering a point (the current grids are answered in process)."""
    row = (
        session.execute(
            text(f"""
        SELECT g.id AS grid_id, g.code AS grid, c.code AS community, c.name AS community_name,
               s.code AS street, s.name AS street_name, d.code AS district,
               d.name AS district_name
        FROM grid g JOIN area c ON c.id = g.community_id
             LEFT JOIN area s ON s.id = c.parent_id LEFT JOIN area d ON d.id = s.parent_id
        WHERE {_VALID_AT} AND ST_Intersects(g.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
        ORDER BY g.code LIMIT 1"""),
            {"lon": lon, "lat": lat, "at": at},
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def _in_service_area(session: Session, lon: float, lat: float) -> bool:
    return bool(
        session.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM area WHERE kind = 'district' AND "
                "ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)))"
            ),
            {"lon": lon, "lat": lat},
        ).scalar_one()
    )


def locate(
    session: Session, lon: float, lat: float, *, at: datetime | None = None, near_m: float = 20.0
) -> dict[str, Any]:
    """The grid covering a WGS84 point (ties on shared edges: the lowest grid code), with the
    other grids within ``near_m`` metres so a dispatcher can confirm. The current grids are
    answered from the per-process index (:mod:`gridmap.store.locating`); PostGIS for ``at``."""
    if at is None:
        return dict(locate_current(session, lon, lat, near_m=near_m))
    hit = _grid_at(session, lon, lat, at)
    if hit is None:
        swapped = abs(lon) <= 90 and (
            _grid_at(session, lat, lon, at) is not None or _in_service_area(session, lat, lon)
        )
        raise miss(swapped)
    near = (
        session.execute(
            text(f"""
        SELECT g.code FROM grid g WHERE {_VALID_AT} AND g.code <> :code
          AND g.geom && ST_Expand(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :dx, :dy)
          AND ST_DWithin(g.geom::geography,
                         ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :d)
        ORDER BY g.code"""),
            # the box prefilter lets the GiST index work (a geography cast alone cannot)
            {
                "lon": lon,
                "lat": lat,
                "at": at,
                "code": hit["grid"],
                "d": near_m,
                "dx": 1.5 * near_m / (111_320.0 * max(math.cos(math.radians(lat)), 0.01)),
                "dy": 1.5 * near_m / 110_574.0,
            },
        )
        .scalars()
        .all()
    )
    hit["near_boundary"] = bool(near)
    hit["nearby_grids"] = list(near)
    hit["lon"], hit["lat"] = round(lon, 7), round(lat, 7)
    return hit


def _event(
    session: Session,
    incident_id: int,
    actor: str,
    frm: str | None,
    to: str,
    note: str | None = None,
) -> None:
    session.execute(
        text(
            "INSERT INTO incident_event (incident_id, actor, from_status, to_status, note) "
            "VALUES (:i, :a, :f, :t, :n)"
        ),
        {"i": incident_id, "a": actor, "f": frm, "t": to, "n": note},
    )


def create_incident(
    session: Session,
    *,
    category: str,
    x: float,
    y: float,
    crs: str | None = "wgs84",
    description: str | None = None,
    address: str | None = None,
    contact: str | None = None,
    reporter: str,
) -> dict[str, Any]:
    """Record a report located to its grid; returns the stored incident."""
    code = service_code(category)
    lon, lat = to_wgs84_point(x, y, crs)
    where = locate(session, lon, lat)
    row = session.execute(
        text("""
        INSERT INTO incident (public_id, category, service_code, description, address, contact,
                              status, reported_x, reported_y, reported_crs, grid_id, grid_code,
                              reported_by, geom)
        VALUES ('tmp' || substr(md5(random()::text), 1, 24), :cat, :code, :desc, :addr, :contact,
                'reported', :x, :y, :crs, :gid, :grid, :by,
                ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
        RETURNING id, created_at"""),
        {
            "cat": code,
            "code": code,
            "desc": description,
            "addr": address,
            "contact": contact,
            "x": x,
            "y": y,
            "crs": normalize_crs(crs),
            "gid": where["grid_id"],
            "grid": where["grid"],
            "by": reporter,
            "lon": lon,
            "lat": lat,
        },
    ).one()
    public_id = f"GM{row.created_at:%Y%m%d}{row.id:06d}"
    session.execute(
        text("UPDATE incident SET public_id = :p WHERE id = :i"), {"p": public_id, "i": row.id}
    )
    _event(session, row.id, reporter, None, "reported")
    record_audit(
        session,
        reporter,
        "incident.create",
        "incident",
        public_id,
        after={"grid": where["grid"], "category": code},
    )
    out = get_incident(session, public_id)
    out["possible_duplicates"] = possible_duplicates(session, row.id)
    return out


def possible_duplicates(
    session: Session, incident_id: int, *, radius_m: float = 50.0, hours: float = 24.0
) -> list[str]:
    """Open incidents of the same category within ``radius_m`` and ``hours`` of this one: a
    hint for the dispatcher (the same quarrel reported twice), never merged automatically."""
    return list(
        session.execute(
            text("""
        SELECT o.public_id FROM incident i JOIN incident o
          ON o.id <> i.id AND o.category = i.category
         AND o.status NOT IN ('closed', 'cancelled', 'resolved', 'failed')
         AND o.created_at > i.created_at - make_interval(secs => :h * 3600)
         AND o.geom && ST_Expand(i.geom, :dx, :dy)
         AND ST_DWithin(o.geom::geography, i.geom::geography, :r)
        WHERE i.id = :i ORDER BY o.created_at DESC LIMIT 20"""),
            {
                "i": incident_id,
                "h": hours,
                "r": radius_m,
                "dx": 2 * radius_m / 95_000.0,
                "dy": 2 * radius_m / 110_000.0,
            },
        ).scalars()
    )


_INCIDENT_SQL = """
    SELECT i.id, i.public_id, i.category, i.service_code, i.description, i.address, i.status,
           i.outcome, i.grid_code, i.mediator_id, p.name AS mediator_name, i.reported_by,
           i.reported_crs, i.reported_x, i.reported_y, i.created_at, i.updated_at,
           ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat
    FROM incident i LEFT JOIN person p ON p.id = i.mediator_id"""


def get_incident(session: Session, ref: str | int, *, scope: str | None = None) -> dict[str, Any]:
    """One incident by public id or numeric id; 404 outside the caller's scope."""
    numeric = isinstance(ref, int) or (ref.isascii() and ref.isdigit() and len(ref) < 19)
    key = "i.id = :ref" if numeric else "i.public_id = :ref"  # "³".isdigit() is True
    row = (
        session.execute(
            text(f"{_INCIDENT_SQL} WHERE {key}"),
            {"ref": ref if key.startswith("i.public") else int(ref)},
        )
        .mappings()
        .first()
    )
    if row is None or (scope and not str(row["grid_code"] or "").startswith(scope)):
        raise NotFound(f"no incident {ref}", code="incident-not-found")
    return dict(row)


def list_incidents(
    session: Session,
    *,
    status: list[str] | None = None,
    service: list[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    scope: str | None = None,
    ids: list[str] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Incidents filtered as Open311 and dispatchers need, newest first."""
    filters: list[tuple[Any, str, str]] = [  # (value, condition on :name, name)
        (status, "i.status = ANY(:status)", "status"),
        (service, "i.service_code = ANY(:service)", "service"),
        (start, "i.created_at >= :start", "start"),
        (end, "i.created_at <= :end", "end"),
        (scope + "%" if scope else None, "i.grid_code LIKE :scope", "scope"),
        (ids, "i.public_id = ANY(:ids)", "ids"),
    ]
    where = ["TRUE"] + [cond for value, cond, _ in filters if value]
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    params.update({name: value for value, _, name in filters if value})
    rows = (
        session.execute(
            text(
                f"{_INCIDENT_SQL} WHERE {' AND '.join(where)} "
                "ORDER BY i.created_at DESC, i.id DESC LIMIT :limit "
                "OFFSET :offset"
            ),
            params,
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]


def _lock_incident(session: Session, incident_id: int) -> dict[str, Any]:
    row = (
        session.execute(
            text(
                "SELECT id, public_id, status, grid_code, mediator_id, category FROM incident "
                "WHERE id = :i FOR UPDATE"
            ),
            {"i": incident_id},
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no incident {incident_id}", code="incident-not-found")
    return dict(row)


def claim(
    session: Session,
    incident_id: int,
    person_id: int,
    *,
    actor: str,
    reason: str | None = None,
    reassign: bool = False,
) -> dict[str, Any]:
    """Atomically send ``person_id`` to the incident. 409 when the mediator was just taken,
    is unavailable or at their caseload cap, or when the incident cannot be dispatched."""
    inc = _lock_incident(session, incident_id)
    if reassign:
        if inc["status"] not in ("dispatched", "accepted"):
            raise ConflictError(
                f"incident is {inc['status']}; only dispatched or accepted "
                "incidents can be reassigned",
                code="not-reassignable",
            )
        _end_assignment(session, incident_id, "reassigned")
        _set_status(session, inc, "reported", actor, "reassigned")
        inc["status"] = "reported"
    elif inc["status"] != "reported":
        raise ConflictError(
            f"incident is {inc['status']}, not waiting for dispatch",
            code="incident-not-dispatchable",
        )
    person = (
        session.execute(
            text(
                "SELECT p.id, p.name, p.status, p.caseload_cap, p.roles, "
                "(SELECT count(*) FROM dispatch_assignment a WHERE a.person_id = p.id "
                " AND a.status = ANY(:hold)) AS active, "
                "(SELECT count(*) FROM incident i WHERE i.mediator_id = p.id "
                " AND i.status = ANY(:open)) AS open_cases "
                "FROM person p WHERE p.id = :p FOR UPDATE OF p SKIP LOCKED"
            ),
            {"p": person_id, "hold": list(HOLDS_MEDIATOR), "open": list(OPEN_CASE)},
        )
        .mappings()
        .first()
    )
    if person is None:
        exists = session.execute(
            text("SELECT 1 FROM person WHERE id = :p"), {"p": person_id}
        ).first()
        if not exists:
            raise NotFound(f"no person {person_id}", code="person-not-found")
        raise ConflictError(
            "that mediator is being dispatched by someone else right now", code="mediator-taken"
        )
    if "mediator" not in str(person["roles"]).split(","):
        raise InvalidInput("that person is not a mediator", code="not-a-mediator")
    if person["status"] != "available":
        raise ConflictError(f"that mediator is {person['status']}", code="mediator-unavailable")
    active, open_cases = person["active"], person["open_cases"]
    if active:
        raise ConflictError("that mediator is on another incident", code="mediator-taken")
    if open_cases >= person["caseload_cap"]:
        raise ConflictError(
            "that mediator is at their open-caseload cap", code="mediator-over-capacity"
        )
    # The partial unique indexes (one active assignment per mediator and per incident) decide
    # a race: the loser's insert waits for the winner's commit, then inserts nothing.
    inserted = session.execute(
        text(
            "INSERT INTO dispatch_assignment (incident_id, person_id, status, reason_code, "
            "created_by) VALUES (:i, :p, 'dispatched', :r, :a) ON CONFLICT DO NOTHING RETURNING id"
        ),
        {"i": incident_id, "p": person_id, "r": reason, "a": actor},
    ).first()
    if inserted is None:
        raise ConflictError("that mediator was just taken", code="mediator-taken")
    _set_status(session, inc, "dispatched", actor, reason, mediator_id=person_id)
    record_audit(
        session,
        actor,
        "incident.dispatch",
        "incident",
        inc["public_id"],
        after={"person": person_id, "reason": reason, "reassign": reassign},
    )
    return {
        "incident": inc["public_id"],
        "person_id": person_id,
        "name": person["name"],
        "reason": reason,
        "status": "dispatched",
    }


def _set_status(
    session: Session,
    inc: dict[str, Any],
    to: str,
    actor: str,
    note: str | None,
    *,
    mediator_id: int | None = None,
) -> None:
    """Move the incident to ``to`` (and, when given, record its mediator in the same
    statement) with its event."""
    check_transition(inc["status"], to)
    mediator = ", mediator_id = :p" if mediator_id is not None else ""
    session.execute(  # the change and its event in one round trip
        text(
            f"WITH moved AS (UPDATE incident SET status = :s, updated_at = now(){mediator} "
            "WHERE id = :i RETURNING id) "
            "INSERT INTO incident_event (incident_id, actor, from_status, to_status, note) "
            "SELECT id, :a, :f, :s, :n FROM moved"
        ),
        {"s": to, "i": inc["id"], "p": mediator_id, "a": actor, "f": inc["status"], "n": note},
    )
    inc["status"] = to


def _end_assignment(session: Session, incident_id: int, to: str) -> None:
    session.execute(
        text(
            "UPDATE dispatch_assignment SET status = :s, ended_at = now() WHERE incident_id = :i "
            "AND status = ANY(:hold)"
        ),
        {"s": to, "i": incident_id, "hold": list(HOLDS_MEDIATOR)},
    )


def transition(
    session: Session,
    incident_id: int,
    to: str,
    *,
    actor: str,
    note: str | None = None,
    decline: bool = False,
) -> dict[str, Any]:
    """Move an incident along its lifecycle, keeping its assignment in step.

    ``decline`` (dispatched/accepted → reported) records the mediator's refusal so the incident
    can be dispatched again; resolved/failed record the mediation outcome.
    """
    inc = _lock_incident(session, incident_id)
    before = inc["status"]
    try:
        check_transition(before, to)
    except InvalidInput as exc:
        if exc.code != "illegal-transition":
            raise
        # the move conflicts with the incident's current state (often: someone else moved it
        # first), which is a 409, not a malformed request
        raise ConflictError(exc.message, code="illegal-transition", details=exc.details) from exc
    if to == "reported":  # back to the queue: nobody is attached any more
        if inc["status"] in HOLDS_MEDIATOR:
            _end_assignment(session, incident_id, "declined" if decline else "cancelled")
        session.execute(
            text("UPDATE incident SET mediator_id = NULL WHERE id = :i"), {"i": incident_id}
        )
    elif to in _ASSIGNMENT_FOR:
        target = _ASSIGNMENT_FOR[to]
        if target in HOLDS_MEDIATOR:
            session.execute(
                text(
                    "UPDATE dispatch_assignment SET status = :s WHERE incident_id = :i AND "
                    "status = ANY(:hold)"
                ),
                {"s": target, "i": incident_id, "hold": list(HOLDS_MEDIATOR)},
            )
        else:
            _end_assignment(session, incident_id, target)
    if to in ("resolved", "failed"):
        session.execute(
            text("UPDATE incident SET outcome = :o WHERE id = :i"),
            {"o": "success" if to == "resolved" else "failure", "i": incident_id},
        )
    _set_status(session, inc, to, actor, note)
    record_audit(
        session,
        actor,
        f"incident.{to}",
        "incident",
        inc["public_id"],
        after={"from": before, "note": note},
    )
    return get_incident(session, incident_id)


def needs_co_mediators(category: str) -> bool:
    return service_code(category) in CO_MEDIATION_CATEGORIES
