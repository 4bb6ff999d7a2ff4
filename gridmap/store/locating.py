"""Bulk point → grid with the in-memory :class:`gridmap.locate.GridIndex`, built from the
grids valid now (or at a given time) and cached until the published grids change.

Same answers as the single PostGIS lookup (covers, ties to the lowest grid code): both follow
the rule documented in :mod:`gridmap.locate`, and a test compares them point by point.
"""

from __future__ import annotations

import gc
import io
import math
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.crs import normalize_crs, to_wgs84
from gridmap.errors import InvalidInput
from gridmap.locate import GridIndex

__all__ = ["STATUS_NAMES", "grid_index", "locate_frame", "read_points"]

STATUS_NAMES = {0: "ok", 1: "outside", 2: "invalid", 3: "probable-lat-lon-swap", 4: "out-of-range"}
_CACHE: dict[Any, GridIndex] = {}
_VALID_NOW = "g.valid_from IS NOT NULL AND g.valid_to IS NULL"
_VALID_AT = "valid_from <= :at AND (valid_to IS NULL OR valid_to > :at)"


def grid_index(session: Session, at: datetime | None = None) -> GridIndex:
    """The index of the grids valid now (the one single lookups share) or at ``at``,
    rebuilt only when they change."""
    if at is None:
        return CURRENT.refresh(session).grids
    key = (
        *session.execute(
            text(
                "SELECT count(*), max(id), max(valid_from), max(valid_to) FROM grid "
                f"WHERE {_VALID_AT}"
            ),
            {"at": at},
        ).one(),
        at,
    )
    if key not in _CACHE:
        rows = session.execute(
            text(f"SELECT code, ST_AsBinary(geom) FROM grid WHERE {_VALID_AT} ORDER BY code"),
            {"at": at},
        ).all()
        geoms = shapely.from_wkb([bytes(r[1]) for r in rows]) if rows else np.empty(0, object)
        if len(_CACHE) > 4:
            _CACHE.clear()
        _CACHE[key] = GridIndex.build(np.array([r[0] for r in rows], dtype=object), geoms)
    return _CACHE[key]


class Current(NamedTuple):
    """What single lookups need: the grid index, each grid's area codes and names, and the
    district outlines (to tell a lat/lon swap from a point outside the service area)."""

    grids: GridIndex
    attrs: dict[str, dict[str, Any]]
    districts: np.ndarray


class CurrentGrids:
    """The :class:`Current` lookup data of the current grids, shared by one process's
    requests. :meth:`refresh` asks one tiny stamp query whether a version was published or
    areas re-imported since, and rebuilds only then; :meth:`recent` hands out the last one
    without a query while it was checked less than ``max_age`` seconds ago."""

    def __init__(self) -> None:
        self._entry: tuple[Any, Current] | None = None
        self._checked = -math.inf
        self._lock = threading.Lock()
        self._rechecking = False

    def invalidate(self) -> None:
        """Forget the check time (a publish in this process): the next request re-checks."""
        self._checked = -math.inf

    def recent(self, max_age: float) -> Current | None:
        entry = self._entry
        if entry is None or time.monotonic() - self._checked > max_age:
            return None
        return entry[1]

    def usable(self, max_age: float) -> tuple[Current | None, bool]:
        """(data to answer with now, whether the caller should start a background re-check).

        Stale-while-revalidate: data checked more than ``max_age`` ago is still served while
        one re-check runs beside the requests — a request never waits for the stamp query,
        which (run in a thread per waiting request) was the largest part of the lookup's p99.
        ``None`` — the caller must wait for :meth:`refresh` — when there is no data yet, after
        :meth:`invalidate` (a publish in this process), or when ``max_age`` ≤ 0 (always
        re-check, as the tests configure)."""
        entry = self._entry
        if entry is None or max_age <= 0 or self._checked == -math.inf:
            return None, False
        if time.monotonic() - self._checked <= max_age or self._rechecking:
            return entry[1], False
        self._rechecking = True  # one re-check at a time (single event-loop thread sets it)
        return entry[1], True

    def recheck(self, open_session: Callable[[], Session]) -> None:
        """The background re-check started after :meth:`usable` said so."""
        try:
            with open_session() as session:
                self.refresh(session)
        finally:
            self._rechecking = False

    def refresh(self, session: Session) -> Current:
        """The lookup data of the grids current now. One request builds it when the stamp
        changed (one build per process, not one per waiting request); while it builds, other
        requests answer from the previous grids if there are any (a province's 100,000
        grids take ≈ 50 s: lookups must not stall that long after every publish), and wait
        for the build only when there is nothing to answer from yet."""
        checked = time.monotonic()
        stamp = tuple(session.execute(_STAMP).one())
        entry = self._entry
        if entry is None or entry[0] != stamp:
            if not self._lock.acquire(blocking=entry is None):
                assert entry is not None
                return entry[1]  # being rebuilt by another request: not re-checked yet
            try:
                entry = self._entry
                if entry is None or entry[0] != stamp:
                    entry = self._entry = (stamp, _build_current(session))
                    # The index is hundreds of thousands of long-lived objects: out of the
                    # collector's sight, a full collection no longer stalls the event loop
                    # for ~100 ms in the middle of lookups (the old index is still freed by
                    # reference counting).
                    gc.freeze()
            finally:
                self._lock.release()
        self._checked = checked
        return entry[1]


_STAMP = text(
    "SELECT (SELECT max(published_at) FROM grid_version), "
    "(SELECT count(*) FROM grid_version WHERE published_at IS NOT NULL), "
    "(SELECT max(generation_id) FROM area), (SELECT count(*) FROM area)"
)


def _build_current(session: Session) -> Current:
    rows = (
        session.execute(
            text(
                "SELECT g.id AS grid_id, g.code AS grid, c.code AS community, "
                "c.name AS community_name, s.code AS street, s.name AS street_name, "
                "d.code AS district, d.name AS district_name, ST_AsBinary(g.geom) AS wkb "
                "FROM grid g JOIN area c ON c.id = g.community_id "
                "LEFT JOIN area s ON s.id = c.parent_id "
                "LEFT JOIN area d ON d.id = s.parent_id "
                f"WHERE {_VALID_NOW} ORDER BY g.code"
            )
        )
        .mappings()
        .all()
    )
    geoms = shapely.from_wkb([bytes(r["wkb"]) for r in rows]) if rows else np.empty(0)
    index = GridIndex.build(np.array([r["grid"] for r in rows], dtype=object), geoms)
    if len(geoms):  # build the metric tree now, not in racing request threads
        p = geoms[0].representative_point()
        index.near_boundary(p.x, p.y)
    attrs = {r["grid"]: {k: v for k, v in r.items() if k != "wkb"} for r in rows}
    wkbs = session.execute(
        text("SELECT ST_AsBinary(geom) FROM area WHERE kind = 'district'")
    ).scalars()
    districts = np.asarray(shapely.from_wkb([bytes(w) for w in wkbs]), dtype=object)
    shapely.prepare(districts)
    if len(districts):  # warm GEOS's lazy point locators before threads share them
        shapely.intersects_xy(districts, 0.0, 0.0)
    return Current(index, attrs, districts)


CURRENT = CurrentGrids()


def miss(swapped: bool) -> InvalidInput:
    """The 422 for a point in no grid (the same from the index and from PostGIS)."""
    if swapped:
        return InvalidInput(
            "the point is outside the service area, but swapping lon and lat "
            "puts it inside: send lon first, then lat",
            code="probable-lat-lon-swap",
        )
    return InvalidInput(
        "the point is outside every published grid of the service area",
        code="outside-service-area",
    )


def answer(current: Current, lon: float, lat: float, near_m: float = 20.0) -> dict[str, Any]:
    """The locate answer for a WGS84 point, in process; a miss raises the same 422 as the
    database path: ``probable-lat-lon-swap`` when the swapped point lies in a grid or a
    district, else ``outside-service-area``."""
    index = current.grids
    i = index.locate_xy(lon, lat)
    if i < 0:
        swapped = abs(lon) <= 90 and (
            index.locate_xy(lat, lon) >= 0
            or bool(shapely.intersects_xy(current.districts, lat, lon).any())
        )
        raise miss(swapped)
    near = index.near_xy(lon, lat, i, near_m)
    return current.attrs[str(index.codes[i])] | {
        "near_boundary": bool(near),
        "nearby_grids": near,
        "lon": round(lon, 7),
        "lat": round(lat, 7),
    }


def locate_current(
    session: Session, lon: float, lat: float, *, near_m: float = 20.0
) -> dict[str, Any]:
    """:func:`gridmap.store.incidents.locate` for the current grids, answered in process from
    the shared index (same tie rule: the lowest code, same 422s on a miss)."""
    return answer(CURRENT.refresh(session), lon, lat, near_m)


def read_points(data: bytes, content_type: str) -> pd.DataFrame:
    """Points from CSV (columns lon, lat and optionally id) or a GeoJSON FeatureCollection."""
    if "json" in content_type:
        import json

        try:
            doc = json.loads(data)
            feats = doc["features"]
            coords = [f["geometry"]["coordinates"] for f in feats]
            ids = [
                f.get("id", (f.get("properties") or {}).get("id", i)) for i, f in enumerate(feats)
            ]
            xy = np.array([[float(c[0]), float(c[1])] for c in coords], dtype=float)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise InvalidInput(
                "expected a GeoJSON FeatureCollection of Points", code="bad-geojson"
            ) from exc
        return pd.DataFrame(
            {"id": ids, "lon": xy[:, 0] if len(xy) else [], "lat": xy[:, 1] if len(xy) else []}
        )
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype={"id": str})
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            "expected CSV with columns lon, lat (and optionally id)", code="bad-csv"
        ) from exc
    cols = {c.lower().strip(): c for c in frame.columns}
    x = next((cols[c] for c in ("lon", "lng", "long", "x", "经度") if c in cols), None)
    y = next((cols[c] for c in ("lat", "y", "纬度") if c in cols), None)
    if x is None or y is None:
        raise InvalidInput(
            f"CSV needs lon and lat columns; it has {list(frame.columns)[:10]}",
            code="missing-field",
        )
    out = pd.DataFrame(
        {
            "id": frame[cols["id"]] if "id" in cols else np.arange(len(frame)),
            "lon": pd.to_numeric(frame[x], errors="coerce"),
            "lat": pd.to_numeric(frame[y], errors="coerce"),
        }
    )
    return out


def locate_frame(
    session: Session,
    points: pd.DataFrame,
    *,
    crs: str | None = "wgs84",
    at: datetime | None = None,
    max_points: int = 1_000_000,
    locator: Callable[[GridIndex, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    | None = None,
) -> pd.DataFrame:
    """``points`` (id, lon, lat in ``crs``) → id, grid, status for each, in input order.

    ``locator(index, lon, lat)`` replaces ``index.locate_status`` (e.g. the Dask path of
    :func:`gridmap.batch.locate_points`) and must answer the same."""
    if len(points) > max_points:
        raise InvalidInput(
            f"at most {max_points} points per request, got {len(points)}", code="too-many-points"
        )
    name = normalize_crs(crs)
    x, y = points["lon"].to_numpy(float), points["lat"].to_numpy(float)
    if name != "wgs84":
        ok = np.isfinite(x) & np.isfinite(y)
        lon, lat = np.full(len(x), np.nan), np.full(len(y), np.nan)
        if ok.any():
            cx, cy = to_wgs84(x[ok], y[ok], name)
            lon[ok], lat[ok] = cx, cy
    else:
        lon, lat = x, y
    index = grid_index(session, at)
    idx, status = (locator or GridIndex.locate_status)(index, lon, lat)
    grid = np.full(len(idx), None, dtype=object)
    grid[idx >= 0] = np.asarray(index.codes, dtype=object)[idx[idx >= 0]]
    return pd.DataFrame(
        {
            "id": points["id"].to_numpy(),
            "grid": grid,
            "status": [STATUS_NAMES.get(int(s), "invalid") for s in status],
        }
    )
