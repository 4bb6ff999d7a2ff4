"""Grid history: publish a draft as a dated version, list versions, diff two, roll back.

Publishing closes the validity of the current grids of the draft's communities and opens the
draft's (one transaction, :func:`gridmap.store.grids.publish_version`); an edited draft is
validated again first and must not collide with another planner's lock. A rollback republishes
an old version's grids as a new version, so history only ever grows.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.errors import InvalidInput, NotFound, ValidationFailed
from gridmap.store.areas import record_audit
from gridmap.store.drafts import check_no_foreign_locks, draft_problems, release_locks
from gridmap.store.grids import publish_version, quality_summary
from gridmap.store.models import GridVersion

__all__ = ["diff_versions", "list_versions", "publish_draft", "rollback"]


def _communities(session: Session, vid: int) -> list[int]:
    return [
        int(i)
        for i in session.execute(
            text("SELECT DISTINCT community_id FROM grid WHERE version_id = :vid"), {"vid": vid}
        ).scalars()
    ]


def publish_draft(session: Session, vid: int | None, *, user: str, scope: str | None) -> int:
    """Validate (edited drafts), check locks, publish, release the draft's locks."""
    if vid is None:
        vid = session.execute(
            text("SELECT max(id) FROM grid_version WHERE status = 'draft'")
        ).scalar()
        if vid is None:
            raise NotFound("no draft grid version to publish", code="no-draft")
    params = session.execute(
        text("SELECT params, status FROM grid_version WHERE id = :vid"), {"vid": vid}
    ).first()
    if params is not None and params.status == "draft":
        check_no_foreign_locks(session, _communities(session, vid), vid)
        if (params.params or {}).get("kind") in ("edit", "rollback"):
            problems = draft_problems(session, vid, scope)
            if problems:
                raise ValidationFailed(
                    f"draft {vid} cannot be published: {problems[0]['message']}",
                    code="draft-invalid",
                    details=problems,
                )
    out = publish_version(session, vid, user=user, scope=scope)
    release_locks(session, out)
    return out


def list_versions(
    session: Session, *, scope: str | None, community: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Versions newest first that touch the caller's area (or ``community``): their
    communities, grid counts and validity counted within that area only; for generated
    drafts the preference and the quality figures of those communities (not of the whole
    version, which may reach beyond the caller's area), so drafts can be compared before one
    is published; None for edits and rollbacks."""
    prefixes = [p.replace("%", "") + "%" for p in (scope, community) if p]
    where = " AND ".join(f"a.code LIKE :p{i}" for i in range(len(prefixes))) or "TRUE"
    rows = session.execute(
        text(
            "SELECT v.id, v.status, v.created_by, v.created_at, v.published_at, v.note, "
            "v.params->>'kind' AS kind, v.params->>'prefer' AS prefer, "
            "v.quality->'per_community' AS quality, count(g.id) AS grids, "
            "array_agg(DISTINCT a.code) AS communities, min(g.valid_from) AS valid_from, "
            "max(g.valid_to) AS valid_to, bool_or(g.valid_to IS NULL AND g.valid_from IS NOT NULL)"
            " AS current FROM grid_version v JOIN grid g ON g.version_id = v.id "
            f"JOIN area a ON a.id = g.community_id WHERE {where} GROUP BY v.id "
            "ORDER BY v.id DESC LIMIT :limit"
        ),
        {f"p{i}": p for i, p in enumerate(prefixes)} | {"limit": limit},
    ).mappings()
    out = []
    for r in rows:
        d = dict(r)
        for k in ("created_at", "published_at", "valid_from", "valid_to"):
            d[k] = d[k].isoformat() if d[k] else None
        d["communities"] = sorted(d["communities"])
        d["kind"] = d["kind"] or "gridding"
        per = d["quality"]
        if per is not None:
            within = set(d["communities"])
            mine = [p for p in per if p.get("community") in within]
            d["quality"] = quality_summary(mine, detail=False) if mine else None
        out.append(d)
    return out


def _version_grids(session: Session, vid: int, scope: str | None) -> dict[str, dict[str, Any]]:
    """The grids of version ``vid`` within the caller's area (404 when none is)."""
    rows = session.execute(
        text(
            "SELECT g.code, a.code AS community, g.households, g.population, "
            "ST_AsGeoJSON(g.geom, 7) AS geometry, encode(ST_AsBinary(g.geom), 'hex') AS wkb "
            "FROM grid g JOIN area a ON a.id = g.community_id WHERE g.version_id = :vid "
            "AND a.code LIKE :scope"
        ),
        {"vid": vid, "scope": (scope or "").replace("%", "") + "%"},
    ).mappings()
    grids = {r["code"]: dict(r) for r in rows}
    if not grids:
        raise NotFound(f"grid version {vid} not found", code="version-not-found")
    return grids


def diff_versions(session: Session, base: int, other: int, *, scope: str | None) -> dict[str, Any]:
    """Grids added, removed and changed from ``base`` to ``other``, as GeoJSON before/after."""
    a, b = _version_grids(session, base, scope), _version_grids(session, other, scope)
    communities = {g["community"] for g in a.values()} & {g["community"] for g in b.values()}
    if not communities:
        raise InvalidInput(
            f"versions {base} and {other} share no community to compare", code="nothing-to-diff"
        )
    a = {k: v for k, v in a.items() if v["community"] in communities}
    b = {k: v for k, v in b.items() if v["community"] in communities}
    both = sorted(set(a) & set(b))
    moved = set(
        session.execute(
            text(
                "SELECT x.code FROM unnest(CAST(:codes AS text[]), CAST(:wa AS text[]), "
                "CAST(:wb AS text[])) AS x(code, wa, wb) WHERE ST_Area(ST_SymDifference("
                "ST_GeomFromWKB(decode(x.wa, 'hex'), 4326), ST_GeomFromWKB(decode(x.wb, 'hex'), "
                "4326))::geography) > 0.01"
            ),
            {"codes": both, "wa": [a[c]["wkb"] for c in both], "wb": [b[c]["wkb"] for c in both]},
        ).scalars()
    )
    feats = []

    def feature(g: dict[str, Any], side: str, change: str) -> dict[str, Any]:
        props = {k: g[k] for k in ("code", "community", "households", "population")}
        return {
            "type": "Feature",
            "id": f"{g['code']}:{side}",
            "properties": props | {"side": side, "change": change},
            "geometry": json.loads(g["geometry"]),
        }

    for code in sorted(set(a) | set(b)):
        if code not in b:
            feats.append(feature(a[code], "before", "removed"))
        elif code not in a:
            feats.append(feature(b[code], "after", "added"))
        elif code in moved:
            feats += [feature(a[code], "before", "changed"), feature(b[code], "after", "changed")]
    counts = {
        "added": sorted(set(b) - set(a)),
        "removed": sorted(set(a) - set(b)),
        "changed": sorted(moved),
        "unchanged": len(both) - len(moved),
    }
    return {
        "type": "FeatureCollection",
        "base": base,
        "other": other,
        "communities": sorted(communities),
        "summary": counts,
        "features": feats,
    }


def rollback(
    session: Session,
    vid: int,
    *,
    user: str,
    scope: str | None,
    note: str | None = None,
    area: str | None = None,
) -> dict[str, Any]:
    """Republish version ``vid``'s grids (those in the caller's area) as a new version, so
    history keeps growing; communities the old version did not cover stay as they are."""
    if area is not None:  # only part of the old version: one district, street or community
        if scope and not area.startswith(scope):
            raise NotFound(f"area {area} is outside your area", code="out-of-scope")
        scope = area
    status = session.execute(
        text("SELECT status FROM grid_version WHERE id = :vid"), {"vid": vid}
    ).scalar()
    _version_grids(session, vid, scope)  # 404 outside scope or unknown
    if status not in ("published", "superseded"):
        raise InvalidInput(
            f"grid version {vid} was never published ({status}); only published versions can be "
            "rolled back to",
            code="not-published",
        )
    ids = [
        int(i)
        for i in session.execute(
            text(
                "SELECT DISTINCT g.community_id FROM grid g JOIN area a ON a.id = g.community_id "
                "WHERE g.version_id = :vid AND a.code LIKE :scope"
            ),
            {"vid": vid, "scope": (scope or "").replace("%", "") + "%"},
        ).scalars()
    ]
    new = GridVersion(
        status="draft",
        created_by=user,
        note=note or f"rollback to version {vid}",
        params={"kind": "rollback", "of": vid},
    )
    session.add(new)
    session.flush()
    check_no_foreign_locks(session, ids, int(new.id))
    session.execute(
        text(
            "INSERT INTO grid (version_id, code, community_id, kind, households, population, geom)"
            " SELECT :new, code, community_id, kind, households, population, geom FROM grid "
            "WHERE version_id = :vid AND community_id = ANY(:ids)"
        ),
        {"new": new.id, "vid": vid, "ids": ids},
    )
    out = publish_version(session, int(new.id), user=user, scope=scope)
    record_audit(session, user, "grids.rollback", "grid_version", str(out), after={"of": vid})
    return {"version": out, "rolled_back_to": vid, "status": "published"}


def parse_at(value: str) -> datetime:
    """An ISO 8601 instant for as-of queries (422 naming the problem otherwise)."""
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"at={value!r} is not an ISO 8601 time", code="invalid-time") from None
    if at.tzinfo is None:
        raise InvalidInput(
            "at= needs a time zone (e.g. 2026-11-27T10:00:00+08:00)", code="invalid-time"
        )
    return at
