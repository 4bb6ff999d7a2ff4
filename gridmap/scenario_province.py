"""A synthetic province: the Yichang scenario generator run with a different seed per city and
the cities laid out side by side.

Why tiling: the city generator (:func:`gridmap.scenario.generate_scenario`) is realistic at
city scale (centres, towers, villages, roads, power-diagram streets and communities) and takes
seconds; a province of ≈ 36 such cities gives the sizes the scaling work needs (≈ 4,400
communities, ≈ 10 million households, ≈ 1 million household units, ≈ 430,000 road edges)
without a second generator to keep correct. Each city is generated with its own seed (different
streets, communities, units and roads on the same four real district outlines), shifted east
and north by whole tile widths, and recoded: city ``k`` (1-based) replaces ``4205`` with
``42kk`` in every area code, so codes stay unique and keep their hierarchy (district = first 6
digits). Unit and road ids are offset per city.

Incidents: :func:`incident_points` draws a year of them at household units (weighted by
households, jittered ≈ 20 m), as reports cluster where people live.

Examples
--------
>>> tile_offsets(4, columns=2)
[(0, 0), (1, 0), (0, 1), (1, 1)]
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridmap.scenario import Scenario, ScenarioConfig, generate_scenario

__all__ = [
    "city_code",
    "city_tile",
    "incident_histories",
    "incident_points",
    "merge_tiles",
    "tile_offsets",
]

CITY_PREFIX = "4205"  # the generator's codes: 42 湖北, 05 宜昌
MARGIN_DEG = 0.02  # gap between neighbouring cities


def tile_offsets(n: int, columns: int | None = None) -> list[tuple[int, int]]:
    """(column, row) of ``n`` cities on a near-square layout."""
    cols = columns or int(np.ceil(np.sqrt(n)))
    return [(k % cols, k // cols) for k in range(n)]


def city_code(k: int) -> str:
    """The 4-digit prefix of city ``k`` (1-based): 4201 … 4299."""
    if not 1 <= k <= 99:
        raise ValueError(f"city number must be 1–99, got {k}")
    return f"42{k:02d}"


def _recode(values: pd.Series, prefix: str) -> pd.Series:
    s = values.astype(str)
    return s.where(~s.str.startswith(CITY_PREFIX), prefix + s.str[len(CITY_PREFIX) :])


def _shift(gdf: gpd.GeoDataFrame, dx: float, dy: float) -> gpd.GeoDataFrame:
    out = gdf.copy()
    out["geometry"] = shapely.transform(
        np.asarray(gdf.geometry.values, dtype=object), lambda c: c + np.array([dx, dy])
    )
    return out.set_geometry("geometry", crs=gdf.crs)


def city_tile(
    districts: gpd.GeoDataFrame, k: int, col: int, row: int, seed: int, scale: float = 1.0
) -> tuple[gpd.GeoDataFrame, Scenario]:
    """City ``k`` (1-based) at tile (col, row): its districts and generated layers, shifted and
    recoded."""
    sc = generate_scenario(districts, ScenarioConfig(seed=seed, scale=scale))
    minx, miny, maxx, maxy = districts.total_bounds
    dx, dy = col * (maxx - minx + MARGIN_DEG), row * (maxy - miny + MARGIN_DEG)
    prefix = city_code(k)
    d = _shift(districts, dx, dy)
    d["code"], d["parent"] = _recode(d["code"], prefix), prefix
    streets, comms = _shift(sc.streets, dx, dy), _shift(sc.communities, dx, dy)
    for layer in (streets, comms):
        layer["code"], layer["parent"] = (
            _recode(layer["code"], prefix),
            _recode(layer["parent"], prefix),
        )
        if "name" in layer:
            layer["name"] = layer["name"].astype(str) + f"·{k}"
    hh = sc.households.copy()
    hh["community"] = _recode(hh["community"], prefix)
    hh["id"] = hh["id"].astype(np.int64) + k * 10_000_000
    hh["lon"], hh["lat"] = hh["lon"] + dx, hh["lat"] + dy
    if "geometry" in hh:
        hh = _shift(hh, dx, dy)
    roads = _shift(sc.roads, dx, dy)
    for col_name in ("id", "source", "target"):
        roads[col_name] = roads[col_name].astype(np.int64) + k * 10_000_000
    return d, Scenario(streets, comms, hh, roads)


def merge_tiles(
    tiles: list[tuple[gpd.GeoDataFrame, Scenario]],
) -> tuple[gpd.GeoDataFrame, Scenario]:
    """One province from its cities (rows in city order)."""

    def cat(frames: list[Any]) -> Any:
        out = pd.concat(frames, ignore_index=True)
        return (
            gpd.GeoDataFrame(out, geometry="geometry", crs=frames[0].crs)
            if "geometry" in out
            else out
        )

    districts = cat([d for d, _ in tiles])
    parts = [sc for _, sc in tiles]
    return districts, Scenario(
        cat([p.streets for p in parts]),
        cat([p.communities for p in parts]),
        cat([p.households for p in parts]),
        cat([p.roads for p in parts]),
    )


def incident_points(
    households: pd.DataFrame, n: int, seed: int = 0, jitter_m: float = 20.0
) -> pd.DataFrame:
    """``n`` incidents over a year at household units (weighted by households), jittered."""
    rng = np.random.default_rng(seed)
    w = households["households"].to_numpy(float)
    pick = rng.choice(len(households), size=n, p=w / w.sum())
    lat = households["lat"].to_numpy(float)[pick]
    dlat = jitter_m / 110_574.0
    dlon = jitter_m / (111_320.0 * np.cos(np.radians(lat)))
    start = np.datetime64("2026-01-01T00:00:00")
    seconds = np.sort(rng.integers(0, 365 * 86_400, n))
    return pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "lon": np.round(households["lon"].to_numpy(float)[pick] + rng.normal(0, dlon), 6),
            "lat": np.round(lat + rng.normal(0, dlat), 6),
            "reported_at": (start + seconds.astype("timedelta64[s]")).astype(str),
        }
    )


# (status path after "reported", share): how the year's incidents ended
_PATHS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("dispatched", "accepted", "on_site", "resolved", "closed"), 0.78),
    (("dispatched", "accepted", "on_site", "failed", "closed"), 0.10),
    (("dispatched", "accepted", "on_site", "escalated", "closed"), 0.05),
    (("cancelled", "closed"), 0.07),
)
_STEP_MINUTES = {  # uniform delay range before each status
    "dispatched": (2, 60),
    "accepted": (2, 30),
    "on_site": (10, 120),
    "resolved": (30, 240),
    "failed": (30, 240),
    "escalated": (30, 240),
    "cancelled": (5, 600),
    "closed": (600, 4320),
}
_CATEGORIES = (
    ("neighbour", 0.34),
    ("marriage_family", 0.22),
    ("property_management", 0.14),
    ("land_contract", 0.06),
    ("homestead", 0.05),
    ("demolition_compensation", 0.04),
    ("labour", 0.09),
    ("other", 0.06),
)


def incident_histories(
    incidents: pd.DataFrame, seed: int = 0, now: str = "2027-01-01T00:00:00"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Categories, statuses and lifecycle events for :func:`incident_points`' incidents.

    Each incident follows one path of legal transitions (:data:`gridmap.lifecycle.TRANSITIONS`)
    with random delays; steps after ``now`` are cut, so the last days' incidents are still
    open. Returns the incidents with ``category``, ``status`` and ``outcome`` added, and the
    events (``incident`` = row position, ``at``, ``from_status``, ``to_status``) for
    :func:`gridmap.store.bulk.load_incidents`.

    >>> inc = pd.DataFrame({"reported_at": ["2026-03-01T10:00:00"] * 3})
    >>> out, ev = incident_histories(inc, seed=1)
    >>> sorted(ev.groupby("incident").size().index.tolist())
    [0, 1, 2]
    """
    rng = np.random.default_rng(seed)
    n = len(incidents)
    start = pd.to_datetime(incidents["reported_at"]).to_numpy("datetime64[s]")
    end = np.datetime64(now, "s")
    cats, cw = zip(*_CATEGORIES, strict=True)
    path_of = rng.choice(len(_PATHS), size=n, p=[w for _, w in _PATHS])
    status = np.full(n, "reported", dtype=object)
    outcome = np.full(n, None, dtype=object)
    pos, at, frm, to = [np.arange(n)], [start], [np.full(n, None, dtype=object)], [status.copy()]
    for k, (path, _) in enumerate(_PATHS):
        rows = np.flatnonzero(path_of == k)
        t, prev = start[rows], np.full(len(rows), "reported", dtype=object)
        live = np.ones(len(rows), dtype=bool)
        for step in path:
            lo, hi = _STEP_MINUTES[step]
            t = t + (rng.uniform(lo, hi, len(rows)) * 60).astype("timedelta64[s]")
            live &= t <= end
            if not live.any():
                break
            pos.append(rows[live])
            at.append(t[live])
            frm.append(prev[live])
            to.append(np.full(int(live.sum()), step, dtype=object))
            status[rows[live]] = step
            if step in ("resolved", "failed"):
                outcome[rows[live]] = "success" if step == "resolved" else "failure"
            prev = np.full(len(rows), step, dtype=object)
    out = incidents.copy()
    out["category"] = rng.choice(np.array(cats, dtype=object), size=n, p=cw)
    out["status"], out["outcome"] = status, outcome
    events = pd.DataFrame(
        {
            "incident": np.concatenate(pos),
            "at": np.concatenate(at),
            "from_status": np.concatenate(frm),
            "to_status": np.concatenate(to),
        }
    )
    return out, events.sort_values(["incident", "at"], kind="stable").reset_index(drop=True)
