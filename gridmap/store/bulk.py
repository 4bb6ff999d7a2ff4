"""Bulk loads of household units and road edges (COPY-speed via executemany of WKB).

The caller validates; these functions only write, inside the caller's transaction.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from gridmap.errors import InvalidInput
from gridmap.store.areas import record_audit
from gridmap.store.models import Area, Generation, HouseholdUnit, RoadEdge

__all__ = ["load_household_units", "load_road_edges"]


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


def count_rows(session: Session, model: type) -> int:
    return int(session.execute(select(func.count()).select_from(model)).scalar_one())
