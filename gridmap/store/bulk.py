"""Bulk loads: household units and road edges (executemany of WKB, pipelined by psycopg:
≈ 70,000 rows/s here), historical incidents with their lifecycle events (COPY).

The caller validates; these functions only write, inside the caller's transaction.
"""

from __future__ import annotations

import io

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from gridmap.errors import InvalidInput
from gridmap.lifecycle import TRANSITIONS, service_code
from gridmap.store.areas import record_audit
from gridmap.store.locating import grid_index
from gridmap.store.models import INCIDENT_STATUS, Area, Generation, HouseholdUnit, RoadEdge

__all__ = ["load_household_units", "load_incidents", "load_road_edges"]


def _generation(session: Session, kind: str, source: str, user: str, count: int) -> int:
    gen = Generation(kind=kind, source=source, created_by=user, feature_count=count)
    session.add(gen)
    session.flush()
    return int(gen.id)


def load_household_units(
    session: Session, units: pd.DataFrame, *, source: str, user: str = "cli", replace: bool = True
) -> int:
    """Load building points (columns id, community, lon, lat, households, residents).

    Community codes must exist. With ``replace`` the existing units are replaced. Returns the
    number of units written.
    """
    required = {"id", "community", "lon", "lat", "households", "residents"}
    missing = required - set(units.columns)
    if missing:
        raise InvalidInput(
            f"household units lack columns: {', '.join(sorted(missing))}", code="missing-field"
        )
    lon, lat = units["lon"].to_numpy(float), units["lat"].to_numpy(float)
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise InvalidInput(
            "household units have non-finite coordinates", code="non-finite-coordinate"
        )
    if (np.abs(lon) > 180).any() or (np.abs(lat) > 90).any():
        raise InvalidInput(
            "household unit coordinates out of range (lon/lat swapped?)",
            code="coordinate-out-of-range",
        )
    ids = dict(session.execute(select(Area.code, Area.id).where(Area.kind == "community")).all())
    codes = units["community"].astype(str)
    unknown = sorted(set(codes) - set(ids))
    if unknown:
        raise InvalidInput(
            f"unknown community codes: {', '.join(unknown[:10])}", code="unknown-parent"
        )
    gen = _generation(session, "households", source, user, len(units))
    if replace:
        session.execute(delete(HouseholdUnit))
    wkb = shapely.to_wkb(shapely.points(lon, lat))
    rows = [
        {
            "ext_id": str(i),
            "community_id": ids[c],
            "households": int(h),
            "residents": int(r),
            "generation_id": gen,
            "wkb": w,
        }
        for i, c, h, r, w in zip(
            units["id"], codes, units["households"], units["residents"], wkb, strict=True
        )
    ]
    session.execute(
        text(
            "INSERT INTO household_unit (ext_id, community_id, households, residents, "
            "generation_id, geom) VALUES (:ext_id, :community_id, :households, :residents, "
            ":generation_id, ST_GeomFromWKB(:wkb, 4326))"
        ),
        rows,
    )
    record_audit(
        session,
        user,
        "import.households",
        "generation",
        str(gen),
        after={"units": len(rows), "source": source},
    )
    return len(rows)


def load_road_edges(
    session: Session,
    roads: gpd.GeoDataFrame,
    *,
    source: str,
    user: str = "cli",
    replace: bool = True,
) -> int:
    """Load road edges (LineStrings with source, target node ids; length and speed give cost)."""
    if roads.crs is not None and roads.crs.to_epsg() != 4326:
        roads = roads.to_crs(4326)
    for col in ("source", "target"):
        if col not in roads.columns:
            raise InvalidInput(f"road edges lack column {col!r}", code="missing-field")
    gen = _generation(session, "roads", source, user, len(roads))
    if replace:
        session.execute(delete(RoadEdge))
    length = (
        roads["length_m"].to_numpy(float)
        if "length_m" in roads.columns
        else roads.to_crs(roads.estimate_utm_crs()).length.to_numpy()
    )
    speed_kmh = (
        roads["maxspeed_kmh"].fillna(30).to_numpy(float)
        if "maxspeed_kmh" in roads.columns
        else np.full(len(roads), 30.0)
    )
    cost = length / (np.maximum(speed_kmh, 5.0) / 3.6)  # seconds
    # pgRouting convention: a negative reverse cost means one-way (no travel target → source)
    reverse = (
        np.where(roads["reverse_ok"].fillna(True).to_numpy(bool), cost, -1.0)
        if "reverse_ok" in roads.columns
        else cost
    )
    cls = roads["class"] if "class" in roads.columns else pd.Series([None] * len(roads))
    rows = [
        {
            "source": int(s),
            "target": int(t),
            "cost": float(c),
            "reverse_cost": float(rc),
            "length_m": float(ln),
            "road_class": k,
            "generation_id": gen,
            "wkb": w,
        }
        for s, t, c, rc, ln, k, w in zip(
            roads["source"],
            roads["target"],
            cost,
            reverse,
            length,
            cls,
            shapely.to_wkb(roads.geometry.values),
            strict=True,
        )
    ]
    session.execute(
        text(
            "INSERT INTO road_edge (source, target, cost, reverse_cost, length_m, road_class, "
            "generation_id, geom) VALUES (:source, :target, :cost, :reverse_cost, :length_m, "
            ":road_class, :generation_id, ST_GeomFromWKB(:wkb, 4326))"
        ),
        rows,
    )
    record_audit(
        session,
        user,
        "import.roads",
        "generation",
        str(gen),
        after={"edges": len(rows), "source": source},
    )
    return len(rows)


_INCIDENT_COLUMNS = (
    "id, public_id, category, service_code, status, outcome, reported_x, reported_y, "
    "reported_crs, grid_id, grid_code, reported_by, created_at, updated_at, geom"
)


def load_incidents(
    session: Session,
    incidents: pd.DataFrame,
    events: pd.DataFrame | None = None,
    *,
    source: str,
    user: str = "cli",
) -> dict[str, int]:
    """Load historical incidents (e.g. a year from a previous system) in bulk, with COPY.

    ``incidents``: ``lon``, ``lat`` (WGS84), ``reported_at`` and ``category`` (service code
    or name); optional ``status`` (default ``reported``) and ``outcome``. Each point is
    located to the *current* grids with the in-memory index (same rule as a single lookup);
    points outside every grid keep no grid. ``events``: ``incident`` (row position in
    ``incidents``), ``at``, ``from_status``, ``to_status``, optional ``actor``; every
    incident without events gets its ``reported`` event. Ids and public ids
    (``GMyyyymmdd`` + id, as at intake) come from the table's sequence. Returns counts
    (incidents, events, located)."""
    n = len(incidents)
    missing = {"lon", "lat", "reported_at", "category"} - set(incidents.columns)
    if missing:
        raise InvalidInput(
            f"incidents lack columns: {', '.join(sorted(missing))}", code="missing-field"
        )
    lon, lat = incidents["lon"].to_numpy(float), incidents["lat"].to_numpy(float)
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise InvalidInput("incidents have non-finite coordinates", code="non-finite-coordinate")
    codes = {c: service_code(str(c)) for c in incidents["category"].unique()}
    category = incidents["category"].map(codes)
    status = (
        incidents["status"].astype(str)
        if "status" in incidents
        else pd.Series(["reported"] * n, index=incidents.index)
    )
    bad = sorted(set(status) - set(INCIDENT_STATUS))
    if bad:
        raise InvalidInput(f"unknown incident status {bad[0]!r}", code="unknown-status")
    at = pd.to_datetime(incidents["reported_at"], utc=True)
    if events is None or not len(events):
        events = pd.DataFrame({"incident": np.arange(n), "at": at, "to_status": "reported"})
        events["from_status"] = None
    ev = events.copy()
    ev["at"] = pd.to_datetime(ev["at"], utc=True)
    ev_pos = ev["incident"].to_numpy(np.int64)
    if len(ev) and (ev_pos.min() < 0 or ev_pos.max() >= n):
        raise InvalidInput("events refer to incidents not in the load", code="unknown-incident")
    legal = {(a, b) for a, bs in TRANSITIONS.items() for b in bs} | {(None, "reported")}
    frm = [None if pd.isna(v) else str(v) for v in ev["from_status"]]
    pairs = set(zip(frm, ev["to_status"].astype(str), strict=True))
    illegal = sorted(pairs - legal, key=str)
    if illegal:
        raise InvalidInput(f"illegal transition {illegal[0]!r}", code="illegal-transition")
    index = grid_index(session)
    idx, _ = index.locate_status(lon, lat)
    grid_codes = np.where(idx >= 0, np.asarray(index.codes, dtype=object)[np.maximum(idx, 0)], None)
    ids: dict[str, int] = {
        str(c): int(i)
        for c, i in session.execute(
            text("SELECT code, id FROM grid WHERE valid_from IS NOT NULL AND valid_to IS NULL")
        )
    }
    grid_ids = [ids.get(str(c)) if c is not None else None for c in grid_codes]
    inc_id = np.array(  # ids from the table's own sequence: no clash with intake meanwhile
        session.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence('incident', 'id')) "
                "FROM generate_series(1, :n)"
            ),
            {"n": n},
        )
        .scalars()
        .all(),
        dtype=np.int64,
    )
    last = ev.groupby("incident")["at"].max().reindex(range(n))
    updated = last.where(last.notna(), at.reset_index(drop=True)).to_numpy()
    created = at.to_numpy()
    public = [f"GM{d:%Y%m%d}{i:06d}" for d, i in zip(at.dt.tz_convert(None), inc_id, strict=True)]
    points = shapely.set_srid(shapely.points(lon, lat), 4326)
    geom = shapely.to_wkb(points, hex=True, include_srid=True)
    outcome = incidents["outcome"] if "outcome" in incidents else pd.Series([None] * n)
    frame = pd.DataFrame(
        {
            "id": inc_id,
            "public_id": public,
            "category": category.to_numpy(),
            "service_code": category.to_numpy(),
            "status": status.to_numpy(),
            "outcome": outcome.to_numpy(),
            "x": lon,
            "y": lat,
            "crs": "wgs84",
            "grid_id": pd.array(grid_ids, dtype="Int64"),
            "grid_code": grid_codes,
            "by": user,
            "created": created,
            "updated": updated,
            "geom": geom,
        }
    )
    _copy(session, f"incident ({_INCIDENT_COLUMNS})", frame)
    ev_frame = pd.DataFrame(
        {
            "incident_id": inc_id[ev_pos],
            "actor": ev["actor"].to_numpy() if "actor" in ev else user,
            "at": ev["at"].to_numpy(),
            "from_status": ev["from_status"].to_numpy(),
            "to_status": ev["to_status"].to_numpy(),
        }
    )
    _copy(session, "incident_event (incident_id, actor, at, from_status, to_status)", ev_frame)
    counts = {"incidents": n, "events": len(ev_frame), "located": int((idx >= 0).sum())}
    record_audit(
        session, user, "import.incidents", "incident", None, after={**counts, "source": source}
    )
    return counts


def _copy(session: Session, target: str, frame: pd.DataFrame) -> None:
    """COPY ``frame`` (columns in ``target``'s order; None/NaN/NaT → NULL) into ``target``."""
    buf = io.StringIO()
    frame.to_csv(buf, index=False, header=False, date_format="%Y-%m-%d %H:%M:%S%z")
    raw = session.connection().connection.driver_connection
    assert raw is not None  # a live psycopg connection inside the caller's transaction
    with raw.cursor() as cur, cur.copy(f"COPY {target} FROM STDIN (FORMAT csv)") as copy:
        copy.write(buf.getvalue())


def count_rows(session: Session, model: type) -> int:
    return int(session.execute(select(func.count()).select_from(model)).scalar_one())
