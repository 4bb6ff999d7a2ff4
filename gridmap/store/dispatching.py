"""Recommendation inputs from PostGIS (candidates, grid adjacency, road graph) and the
dispatch transaction with Idempotency-Key replay.

Adjacency and the road graph are rebuilt only when the published grids or the road edges change
(cached per process by a cheap version key); ranking itself is the pure ``gridmap.dispatch``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from typing import Any

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.dispatch import HOLDS_MEDIATOR, Recommendation, RoadGraph, grid_adjacency, recommend
from gridmap.errors import ConflictError, InvalidInput
from gridmap.store.incidents import OPEN_CASE, claim, get_incident

__all__ = ["dispatch", "recommend_for", "request_hash"]

_ADJ: dict[Any, tuple[dict[str, set[str]], dict[str, str]]] = {}
_GRAPH: dict[Any, RoadGraph | None] = {}


_INVITED: dict[Any, list[dict[str, Any]]] = {}
_STAMPS = text(
    # one round trip for every cache: the current grids change only by a publish (tiny table),
    # a road import adds edges (new ids) under a new generation, co-mediators are few
    "SELECT (SELECT max(published_at) FROM grid_version), "
    "(SELECT count(*) FROM grid_version WHERE published_at IS NOT NULL), "
    "(SELECT max(id) FROM road_edge), (SELECT min(id) FROM road_edge), "
    "(SELECT max(id) FROM generation), "
    "(SELECT count(*) FROM co_mediator), (SELECT max(id) FROM co_mediator)"
)


_CHECKED: list[Any] = [-math.inf, None]  # [monotonic time of the last stamp query, stamps]


def invalidate() -> None:
    """Re-read the stamps on the next recommendation (a publish in this process)."""
    _CHECKED[0] = -math.inf


def _stamps(session: Session, max_age: float = 0.0) -> tuple[Any, Any, Any]:
    """(grids, roads, co-mediators) version keys of the per-process caches, queried again
    when older than ``max_age`` seconds (one round trip fewer for most recommendations: on a
    busy two-core machine every round trip waits for the database process to be scheduled)."""
    now = time.monotonic()
    if now - _CHECKED[0] > max_age:
        r = session.execute(_STAMPS).one()
        _CHECKED[:] = [now, ((r[0], r[1]), (r[2], r[3], r[4]), (r[5], r[6]))]
    return _CHECKED[1]  # type: ignore[no-any-return]


def _adjacency(session: Session, key: Any = None) -> tuple[dict[str, set[str]], dict[str, str]]:
    key = _stamps(session)[0] if key is None else key
    if key not in _ADJ:
        rows = session.execute(
            text(
                "SELECT g.code, a.code, ST_AsBinary(g.geom) FROM grid g JOIN area a "
                "ON a.id = g.community_id WHERE g.valid_from IS NOT NULL AND g.valid_to IS NULL "
                "ORDER BY g.code"
            )
        ).all()
        codes = np.array([r[0] for r in rows], dtype=object)
        geoms = shapely.from_wkb([bytes(r[2]) for r in rows]) if rows else np.empty(0, object)
        adjacency = grid_adjacency(codes, geoms) if len(rows) else {}
        _ADJ.clear()
        _ADJ[key] = (
            {str(k): set(map(str, v)) for k, v in adjacency.items()},
            {str(r[0]): str(r[1]) for r in rows},
        )
    return _ADJ[key]


def _graph(session: Session, key: Any = None) -> RoadGraph | None:
    key = _stamps(session)[1] if key is None else key
    if key not in _GRAPH:
        rows = session.execute(
            text("SELECT source, target, cost, reverse_cost, ST_AsBinary(geom) FROM road_edge")
        ).all()
        graph = None
        if rows:
            arr = list(zip(*rows, strict=True))
            graph = RoadGraph.from_edges(
                arr[0],
                arr[1],
                arr[2],
                arr[3],
                geometry=shapely.from_wkb([bytes(w) for w in arr[4]]),
            )
        _GRAPH.clear()
        _GRAPH[key] = graph
    return _GRAPH[key]


def _candidates(
    session: Session, lon: float, lat: float, radius_m: float, grids: list[str] | None = None
) -> list[dict[str, Any]]:
    """Mediators within the radius (all of them, or only those whose posting is one of
    ``grids``) with status, open caseload and position."""
    rows = (
        session.execute(
            text(f"""
        SELECT * FROM (
        SELECT p.id AS person_id, p.name,
               (SELECT po.grid_code FROM posting po WHERE po.person_id = p.id
                  AND po.role = 'mediator' AND po.valid_to IS NULL
                ORDER BY po.id LIMIT 1) AS grid, p.roles,
               ST_X(coalesce(p.position, p.home)) AS lon, ST_Y(coalesce(p.position, p.home)) AS lat,
               CASE WHEN EXISTS (SELECT 1 FROM dispatch_assignment a WHERE a.person_id = p.id
                                 AND a.status = ANY(:hold)) THEN 'busy' ELSE p.status END
                 AS status,
               (SELECT count(*) FROM incident i WHERE i.mediator_id = p.id
                  AND i.status = ANY(:open)) AS open_cases,
               p.caseload_cap,
               CASE WHEN p.position IS NULL THEN now() ELSE p.position_at END AS position_at
        FROM person p
        WHERE p.roles LIKE '%mediator%' AND coalesce(p.position, p.home) IS NOT NULL
          {
                "AND p.id IN (SELECT person_id FROM posting WHERE role = 'mediator' AND "
                "valid_to IS NULL AND grid_code = ANY(:grids))"
                if grids is not None
                else ""
            }
          AND ST_DWithin(coalesce(p.position, p.home)::geography,
                         ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :r)
        ) c {"WHERE c.grid = ANY(:grids)" if grids is not None else ""}
        ORDER BY c.person_id"""),
            {
                "hold": list(HOLDS_MEDIATOR),
                "open": list(OPEN_CASE),
                "lon": lon,
                "lat": lat,
                "r": radius_m * 1.2,
                "grids": grids or [],
            },
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]


def _invited(session: Session, key: Any = None) -> list[dict[str, Any]]:
    key = _stamps(session)[2] if key is None else key
    if key in _INVITED:
        return _INVITED[key]
    rows = (
        session.execute(
            text(
                "SELECT c.person_id, p.name, c.area_code, c.categories FROM co_mediator c "
                "JOIN person p ON p.id = c.person_id ORDER BY c.person_id"
            )
        )
        .mappings()
        .all()
    )
    _INVITED.clear()
    _INVITED[key] = [dict(r) for r in rows]
    return _INVITED[key]


def recommend_for(
    session: Session,
    incident: dict[str, Any],
    *,
    max_radius_m: float = 5000.0,
    limit: int = 5,
    max_age: float = 0.0,
) -> Recommendation:
    """Ranked mediators for a stored incident, with reasons, skips and invited co-mediators.

    Ranking is by tier first (own grid ▸ adjacent ▸ same community ▸ nearest by road), so when
    the mediators posted to the incident's grid, its neighbours and its community already fill
    ``limit`` places, no one farther can enter the list: those few are ranked alone (their
    skips are the ones reported). Only otherwise is every mediator in the radius examined.
    Grid adjacency, roads and co-mediators may be up to ``max_age`` seconds old.
    """
    grids_key, roads_key, invited_key = _stamps(session, max_age)
    adjacency, community_of = _adjacency(session, grids_key)
    graph, invited = _graph(session, roads_key), _invited(session, invited_key)
    lon, lat, grid = incident["lon"], incident["lat"], incident["grid_code"]
    where = {
        "grid": grid,
        "lon": lon,
        "lat": lat,
        "category": incident["service_code"] or incident["category"],
    }

    def rank(candidates: list[dict[str, Any]]) -> Recommendation:
        return recommend(
            where,
            candidates,
            adjacency=adjacency,
            community_of=community_of,
            graph=graph,
            max_radius_m=max_radius_m,
            limit=limit,
            invited=invited,
        )

    if grid:
        home = community_of.get(grid)
        near = {grid, *adjacency.get(grid, ())} | {
            g for g, c in community_of.items() if home is not None and c == home
        }
        first = rank(_candidates(session, lon, lat, max_radius_m, sorted(near)))
        if len(first.candidates) >= limit:
            return first
    return rank(_candidates(session, lon, lat, max_radius_m))


def request_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _replay(session: Session, key: str | None, actor: str, digest: str) -> dict[str, Any] | None:
    """Reserve ``key`` for this request, or return the answer of the request that used it."""
    if not key:
        return None
    if len(key) > 128:
        raise InvalidInput("Idempotency-Key is longer than 128 characters", code="bad-key")
    reserved = session.execute(
        text(
            "INSERT INTO idempotency_key (key, actor, request_hash, status_code, response) "
            "VALUES (:k, :a, :h, 0, '{}') ON CONFLICT DO NOTHING RETURNING key"
        ),
        {"k": key, "a": actor, "h": digest},
    ).first()
    if reserved:
        return None
    row = session.execute(
        text(
            "SELECT request_hash, status_code, response FROM idempotency_key WHERE key = :k AND "
            "actor = :a"
        ),
        {"k": key, "a": actor},
    ).one()
    if row.request_hash != digest:
        raise InvalidInput(
            "this Idempotency-Key was used for a different request", code="idempotency-key-reused"
        )
    return dict(row.response)


def dispatch(
    session: Session,
    ref: str,
    *,
    actor: str,
    person_id: int | None = None,
    reassign: bool = False,
    idempotency_key: str | None = None,
    scope: str | None = None,
    max_age: float = 0.0,
) -> dict[str, Any]:
    """Send a mediator: the named one, or the best recommended one still free (reference data
    up to ``max_age`` seconds old, see :func:`recommend_for`)."""
    inc = get_incident(session, ref, scope=scope)
    digest = request_hash({"incident": inc["id"], "person": person_id, "reassign": reassign})
    replayed = _replay(session, idempotency_key, actor, digest)
    if replayed is not None:
        return {**replayed, "replayed": True}
    result: dict[str, Any] | None = None
    if person_id is not None:
        result = claim(
            session, inc["id"], person_id, actor=actor, reason="NAMED", reassign=reassign
        )
    else:
        rec = recommend_for(session, inc, max_age=max_age)
        for cand in rec.candidates:
            try:
                with session.begin_nested():
                    result = claim(
                        session,
                        inc["id"],
                        int(cand.person_id),
                        actor=actor,
                        reason=cand.reason,
                        reassign=reassign,
                    )
                break
            except ConflictError as exc:
                if exc.code not in (
                    "mediator-taken",
                    "mediator-unavailable",
                    "mediator-over-capacity",
                ):
                    raise
        if result is None:
            raise ConflictError(
                "no mediator could be dispatched",
                code=(rec.shortfall or "ALL_BUSY").lower().replace("_", "-"),
                details=[{"shortfall": rec.shortfall or "ALL_BUSY"}],
            )
    if idempotency_key:
        session.execute(
            text(
                "UPDATE idempotency_key SET status_code = 200, response = CAST(:r AS jsonb) "
                "WHERE key = :k AND actor = :a"
            ),
            {"r": json.dumps(result, default=str), "k": idempotency_key, "a": actor},
        )
    return result
