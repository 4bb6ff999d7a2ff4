"""SQL for the map pages, the dashboard and the vector tiles, always within a code prefix
(the caller's scope, or an area inside it).

Nothing here returns care-subject rows: only counts per grid leave the database, and the
pages publish them only through :mod:`gridmap.disclosure`. Staff positions go to dispatchers
only (their live position, else their grid's point: never a home address).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from datetime import datetime
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from gridmap.dispatch import HOLDS_MEDIATOR, SERVICES
from gridmap.staffing_model import STAFF_ROLES, Quotas

__all__ = [
    "GRID_MIN_ZOOM",
    "OPEN_STATUSES",
    "TILES",
    "TileCache",
    "area_frame",
    "coverage_version",
    "dispatch_snapshot",
    "extent",
    "grid_count",
    "grid_frame",
    "incident_frame",
    "incident_heat",
    "mvt_tile",
    "recent_coverage_version",
    "render_tile",
    "tile_bounds",
    "tiles_covering",
    "warm_tiles",
]

log = logging.getLogger(__name__)
CURRENT = "g.valid_from IS NOT NULL AND g.valid_to IS NULL"
OPEN_STATUSES = ("reported", "dispatched", "accepted", "on_site", "escalated")
_NAMES = {s.code: s.name for s in SERVICES}


def _like(prefix: str | None) -> str:
    return (prefix or "").replace("%", "").replace("_", r"\_") + "%"


def _frame(rows: Sequence[Any], columns: list[str]) -> gpd.GeoDataFrame:
    geoms = shapely.from_wkb([bytes(r[-1]) for r in rows]) if rows else []
    data = {c: [r[i] for r in rows] for i, c in enumerate(columns)}
    return gpd.GeoDataFrame(data, geometry=list(geoms), crs=4326)


def coverage_version(session: Session) -> str:
    """A cheap fingerprint of everything the coverage page shows (grids, open postings, care
    links, areas): equal fingerprints, equal pages."""
    return str(
        session.execute(
            text("""
        SELECT concat_ws('|',
          (SELECT count(*) || ':' || coalesce(max(id), 0) || ':'
                  || coalesce(max(valid_from)::text, '')
             FROM grid WHERE valid_from IS NOT NULL AND valid_to IS NULL),
          (SELECT count(*) || ':' || coalesce(max(id), 0) FROM posting WHERE valid_to IS NULL),
          (SELECT count(*) || ':' || coalesce(max(id), 0) || ':'
                  || coalesce(sum(hashtext(coalesce(grid_code, '') || coalesce(volunteer_id, 0))),
                              0)
             FROM care_subject),
          (SELECT count(*) || ':' || coalesce(max(id), 0) || ':' || coalesce(max(generation_id), 0)
             FROM area))""")
        ).scalar_one()
    )


_FINGERPRINTS: dict[str, tuple[float, str]] = {}  # database → (when asked, fingerprint)


def recent_coverage_version(session: Session, max_age: float) -> str:
    """:func:`coverage_version`, asked again only when the last answer for this database is
    older than ``max_age`` seconds (0: always ask). Tiles use it: the fingerprint costs a
    count over all current grids, ≈ 30 ms at 100,000 grids, more than a cached tile."""
    if max_age <= 0:
        return coverage_version(session)
    database = str(getattr(session.get_bind(), "url", ""))
    now = time.monotonic()
    hit = _FINGERPRINTS.get(database)
    if hit is not None and now - hit[0] < max_age:
        return hit[1]
    version = coverage_version(session)
    _FINGERPRINTS[database] = (now, version)
    return version


def grid_count(session: Session, prefix: str | None) -> int:
    """Current grids whose code starts with ``prefix``."""
    return int(
        session.execute(
            text(f"SELECT count(*) FROM grid g WHERE {CURRENT} AND g.code LIKE :p"),
            {"p": _like(prefix)},
        ).scalar_one()
    )


def extent(session: Session, prefix: str | None) -> tuple[float, float, float, float] | None:
    """Bounding box (minx, miny, maxx, maxy) of the current grids under ``prefix``."""
    row = session.execute(
        text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(g.geom) "
            f"AS e FROM grid g WHERE {CURRENT} AND g.code LIKE :p) x"
        ),
        {"p": _like(prefix)},
    ).one()
    return None if row[0] is None else (row[0], row[1], row[2], row[3])


def grid_frame(session: Session, prefix: str | None) -> gpd.GeoDataFrame:
    """Current grids under ``prefix``: code, households, geometry (WGS84)."""
    rows = session.execute(
        text(
            f"SELECT g.code, g.households, ST_AsBinary(g.geom) FROM grid g WHERE {CURRENT} "
            "AND g.code LIKE :p ORDER BY g.code"
        ),
        {"p": _like(prefix)},
    ).all()
    return _frame(rows, ["code", "households"])


def area_frame(
    session: Session, prefix: str | None, *, context: str | None = None
) -> gpd.GeoDataFrame:
    """Districts, streets and communities under ``prefix``, plus the areas whose code is a
    prefix of ``context`` (the outlines around a zoomed-in area)."""
    rows = session.execute(
        text(
            "SELECT a.code, a.name, a.kind, ST_AsBinary(a.geom) FROM area a "
            "WHERE a.kind IN ('district', 'street', 'community') AND (a.code LIKE :p "
            "OR (:ctx <> '' AND :ctx LIKE a.code || '%')) ORDER BY a.code"
        ),
        {"p": _like(prefix), "ctx": context or ""},
    ).all()
    return _frame(rows, ["code", "name", "kind"])


def dispatch_snapshot(session: Session, scope: str | None) -> dict[str, Any]:
    """Open incidents (no text, no contact) and mediators with their current state."""
    incidents = (
        session.execute(
            text(
                "SELECT i.public_id AS id, i.service_code AS category, i.status, i.grid_code AS "
                "grid, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, i.created_at FROM incident i "
                "WHERE i.status = ANY(:open) AND i.geom IS NOT NULL AND i.grid_code LIKE :p "
                "ORDER BY i.created_at DESC, i.id DESC LIMIT 500"
            ),
            {"open": list(OPEN_STATUSES), "p": _like(scope)},
        )
        .mappings()
        .all()
    )
    mediators = (
        session.execute(
            text(f"""
        SELECT p.id, p.name, po.grid_code AS grid,
               CASE WHEN EXISTS (SELECT 1 FROM dispatch_assignment a WHERE a.person_id = p.id
                                 AND a.status = ANY(:hold)) THEN 'busy' ELSE p.status END AS status,
               ST_X(at.pt) AS lon, ST_Y(at.pt) AS lat, p.position IS NOT NULL AS live
        FROM person p
        JOIN posting po ON po.person_id = p.id AND po.role = 'mediator' AND po.valid_to IS NULL
        LEFT JOIN grid g ON g.code = po.grid_code AND {CURRENT}
        -- the point once per row (a point on the grid's surface for those without a live
        -- position: most of them; computing it for x and y apart doubled the query)
        CROSS JOIN LATERAL (SELECT coalesce(p.position, ST_PointOnSurface(g.geom)) AS pt) at
        WHERE po.grid_code LIKE :p AND at.pt IS NOT NULL
        ORDER BY p.id"""),
            {"hold": list(HOLDS_MEDIATOR), "p": _like(scope)},
        )
        .mappings()
        .all()
    )
    out_inc = [
        {
            **{k: v for k, v in r.items() if k != "created_at"},
            "category_name": _NAMES.get(r["category"], r["category"]),
            "created_at": r["created_at"].isoformat(timespec="seconds"),
        }
        for r in incidents
    ]
    return {"incidents": out_inc, "mediators": [dict(r) for r in mediators]}


def incident_frame(
    session: Session,
    scope: str | None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    category: str | None = None,
) -> pd.DataFrame:
    """One row per incident: grid_code, category, status, outcome, seconds from report to the
    first dispatch and to the first on-site event (from ``incident_event``). One join grouped
    by incident, so the planner hashes the events for a province (1,000,000 incidents: 5 s
    against 9 s with a lookup per incident) and looks them up for a city."""
    rows = session.execute(
        text("""
        SELECT i.grid_code, i.service_code AS category, i.status, i.outcome,
               extract(epoch FROM min(e.at) FILTER (WHERE e.to_status = 'dispatched')
                                  - i.created_at)::float8 AS dispatch_s,
               extract(epoch FROM min(e.at) FILTER (WHERE e.to_status = 'on_site')
                                  - i.created_at)::float8 AS onsite_s
        FROM incident i
        LEFT JOIN incident_event e ON e.incident_id = i.id
                                  AND e.to_status IN ('dispatched', 'on_site')
        WHERE i.grid_code LIKE :p
          AND (CAST(:start AS timestamptz) IS NULL OR i.created_at >= :start)
          AND (CAST(:end AS timestamptz) IS NULL OR i.created_at < :end)
          AND (CAST(:cat AS text) IS NULL OR i.service_code = :cat)
        GROUP BY i.id"""),
        {"p": _like(scope), "start": start, "end": end, "cat": category},
    ).all()
    cols = ["grid_code", "category", "status", "outcome", "dispatch_s", "onsite_s"]
    frame = pd.DataFrame([tuple(r) for r in rows], columns=cols)
    for c in ("dispatch_s", "onsite_s"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    return frame


def incident_heat(
    session: Session,
    scope: str | None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    category: str | None = None,
    k: int = 11,
) -> pd.DataFrame:
    """Incidents per current grid under ``scope`` (no incident point leaves the database):
    code, n, the grid's representative point (lon, lat: ``ST_PointOnSurface``) and the heat
    weight there. Weights get the small-count suppression of the published counts: a grid
    with 1 … k-1 incidents weighs 0 (it would otherwise stand out as a lone hot point that
    pins an incident down); zero and k or more are kept as they are."""
    rows = session.execute(
        text(f"""
        SELECT g.code, coalesce(c.n, 0) AS n,
               ST_X(ST_PointOnSurface(g.geom)) AS lon, ST_Y(ST_PointOnSurface(g.geom)) AS lat
        FROM grid g
        LEFT JOIN (SELECT i.grid_code, count(*) AS n FROM incident i
                   WHERE i.grid_code LIKE :p
                     AND (CAST(:start AS timestamptz) IS NULL OR i.created_at >= :start)
                     AND (CAST(:end AS timestamptz) IS NULL OR i.created_at < :end)
                     AND (CAST(:cat AS text) IS NULL OR i.service_code = :cat)
                   GROUP BY i.grid_code) c ON c.grid_code = g.code
        WHERE {CURRENT} AND g.code LIKE :p
        ORDER BY g.code"""),
        {"p": _like(scope), "start": start, "end": end, "cat": category},
    ).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=["code", "n", "lon", "lat"])
    frame["n"] = frame["n"].astype(int)
    frame["weight"] = frame["n"].where((frame["n"] == 0) | (frame["n"] >= max(k, 1)), 0)
    return frame


def _met_sql(quotas: Quotas) -> str:
    """SQL condition: every role's count within its quota (ints from the config only)."""
    parts = []
    for role in STAFF_ROLES:
        q = quotas.role(role)
        col = f"pc.{role}"
        parts.append(f"{col} >= {int(q.min)}")
        if q.max is not None:
            parts.append(f"{col} <= {int(q.max)}")
    return " AND ".join(parts)


class TileCache:
    """Least-recently-used tiles, bounded by bytes; keys carry the data fingerprint, so a
    change of grids, postings, care links or areas makes new keys and old tiles age out."""

    def __init__(self, max_bytes: int = 64 << 20):
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: Hashable, data: bytes) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes += len(data) - (len(old) if old is not None else 0)
            self._items[key] = data
            while self._bytes > self.max_bytes and self._items:
                self._bytes -= len(self._items.popitem(last=False)[1])

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)


TILES = TileCache()
# Warmed in the background when a scope is first seen with a fingerprint: the low zooms, where
# one tile holds most of a city's grids (≈ 20 ms of ST_AsMVTGeom each); at most WARM_MAX tiles
# per zoom, so a province-wide scope warms only the zooms with few tiles.
WARM_ZOOMS: tuple[int, ...] = (10, 11, 12)
# Below this zoom the grids layer is empty (the area outlines still show): a z8 tile over a
# province holds ≈ 24,000 grids of 1–3 pixels each, up to 1.7 MB (docs/scaling.md)
GRID_MIN_ZOOM = 10
WARM_MAX = 64
_WARMED: OrderedDict[Hashable, None] = OrderedDict()
_WARM_LOCK = threading.Lock()


def mvt_tile(
    session: Session,
    layer: str,
    z: int,
    x: int,
    y: int,
    prefix: str | None,
    quotas: Quotas | None = None,
    *,
    cache: TileCache | None = TILES,
    warm: bool = True,
    fingerprint_max_age: float = 0.0,
) -> bytes:
    """One Mapbox vector tile of ``grids`` (code, hh, staff counts, st and cs status indices as
    on the coverage map; no care counts) or ``areas`` (code, name, kind), under ``prefix``.

    Tiles are kept in ``cache`` keyed by (layer, z, x, y, prefix, quotas, data fingerprint);
    the first tile of a new (prefix, quotas, fingerprint) starts a background thread that
    renders the low-zoom tiles of that scope (``WARM_ZOOMS``) into the cache. The fingerprint
    may be up to ``fingerprint_max_age`` seconds old (:func:`recent_coverage_version`)."""
    quotas = quotas or Quotas()
    if cache is None:
        return render_tile(session, layer, z, x, y, prefix, quotas)
    bind = session.get_bind()
    database = str(getattr(bind, "url", ""))  # one process may serve several databases (tests)
    group = (database, prefix or "", quotas, recent_coverage_version(session, fingerprint_max_age))
    key = (layer, z, x, y, group)
    data = cache.get(key)
    if data is None:
        data = render_tile(session, layer, z, x, y, prefix, quotas)
        cache.put(key, data)
    if warm:
        _warm_later(bind, group, cache)
    return data


Group = tuple[str, str, Quotas, str]  # database, prefix, quotas, data fingerprint


def _warm_later(bind: Any, group: Group, cache: TileCache) -> None:
    with _WARM_LOCK:
        if group in _WARMED:
            return
        _WARMED[group] = None
        while len(_WARMED) > 64:
            _WARMED.popitem(last=False)
    if not isinstance(bind, Engine):
        return
    threading.Thread(
        target=warm_tiles, args=(bind, group, cache), name="gridmap-tile-warm", daemon=True
    ).start()


def warm_tiles(engine: Engine, group: Group, cache: TileCache = TILES) -> int:
    """Render the ``WARM_ZOOMS`` tiles of both layers covering the grids of ``group``'s prefix
    into ``cache`` (one short transaction per tile); returns how many were rendered."""
    _, prefix, quotas, version = group
    done = 0
    try:
        with Session(engine) as session:
            box = extent(session, prefix)
        if box is None:
            return 0
        for z in WARM_ZOOMS:
            cells = tiles_covering(box, z)
            if len(cells) > WARM_MAX:
                continue
            for x, y in cells:
                for layer in ("grids", "areas"):
                    key = (layer, z, x, y, group)
                    if cache.get(key) is not None:
                        continue
                    with Session(engine) as session:
                        if coverage_version(session) != version:
                            return done  # the data changed meanwhile: new keys, new warm-up
                        cache.put(key, render_tile(session, layer, z, x, y, prefix, quotas))
                    done += 1
    except Exception:  # a background nicety: the request path renders on a miss anyway
        log.warning("tile warm-up failed", exc_info=True)
    return done


def tiles_covering(box: Sequence[float], z: int) -> list[tuple[int, int]]:
    """Web-mercator tiles (x, y) at zoom ``z`` covering ``box`` (minx, miny, maxx, maxy)."""
    n = 2**z

    def tile_xy(lon: float, lat: float) -> tuple[int, int]:
        y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
        return min(n - 1, max(0, int((lon + 180) / 360 * n))), min(n - 1, max(0, int(y)))

    x0, y0 = tile_xy(box[0], box[3])
    x1, y1 = tile_xy(box[2], box[1])
    return [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def render_tile(
    session: Session,
    layer: str,
    z: int,
    x: int,
    y: int,
    prefix: str | None,
    quotas: Quotas,
) -> bytes:
    """:func:`mvt_tile` without the cache: one ``ST_AsMVT`` query (none for grids below
    ``GRID_MIN_ZOOM``: an empty tile)."""
    if layer == "grids" and z < GRID_MIN_ZOOM:
        return b""
    env = "ST_TileEnvelope(:z, :x, :y)"
    geom = f"ST_AsMVTGeom(ST_Transform(g.geom, 3857), {env}, 4096, 64, true)"
    # the tile (plus its 64/4096 buffer) in lon/lat, computed here: a prepared statement's
    # generic plan would otherwise transform the envelope once per candidate row
    bbox = "ST_MakeEnvelope(:w, :s, :e, :n, 4326)"
    if layer == "areas":
        sql = f"""
        SELECT ST_AsMVT(t.*, 'areas', 4096, 'geom') FROM (
          SELECT g.code, g.name, g.kind, {geom} AS geom FROM area g
          WHERE g.kind IN ('district', 'street', 'community') AND g.code LIKE :p
            AND g.geom && {bbox}) t WHERE t.geom IS NOT NULL"""
    else:
        counts = ", ".join(
            f"count(*) FILTER (WHERE po.role = '{r}') AS {r}"
            for r in (*STAFF_ROLES, "care_volunteer")
        )
        sql = f"""
        SELECT ST_AsMVT(t.*, 'grids', 4096, 'geom') FROM (
          SELECT g.code, g.households AS hh, pc.grid_manager AS gm, pc.mediator AS me,
                 pc.legal_professional AS lp, pc.publicity AS pu, pc.legal_aid AS la,
                 pc.care_volunteer AS vo,
                 CASE WHEN pc.grid_manager = 0 THEN 2 WHEN {_met_sql(quotas)} THEN 0
                      ELSE 1 END AS st,
                 CASE WHEN cc.n = 0 THEN 2
                      WHEN (cc.n + {int(quotas.care_ratio) - 1}) / {int(quotas.care_ratio)}
                           > pc.care_volunteer THEN 1 ELSE 0 END AS cs,
                 {geom} AS geom
          FROM grid g
          CROSS JOIN LATERAL (SELECT {counts} FROM posting po
                              WHERE po.grid_code = g.code AND po.valid_to IS NULL) pc
          CROSS JOIN LATERAL (SELECT count(*) AS n FROM care_subject c
                              WHERE c.grid_code = g.code) cc
          WHERE {CURRENT} AND g.code LIKE :p AND g.geom && {bbox}
        ) t WHERE t.geom IS NOT NULL"""
    w, south, e, n = tile_bounds(z, x, y, buffer=64 / 4096)
    params = {"z": z, "x": x, "y": y, "p": _like(prefix), "w": w, "s": south, "e": e, "n": n}
    tile = session.execute(text(sql), params).scalar_one()
    return bytes(tile or b"")


def tile_bounds(z: int, x: int, y: int, buffer: float = 0.0) -> tuple[float, float, float, float]:
    """(west, south, east, north) in degrees of web-mercator tile z/x/y, widened by ``buffer``
    (a fraction of the tile) on every side."""
    n = 2.0**z

    def lon(t: float) -> float:
        return t / n * 360.0 - 180.0

    def lat(t: float) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * t / n))))

    return lon(x - buffer), lat(y + 1 + buffer), lon(x + 1 + buffer), lat(y - buffer)
