"""Dispatch core (pure): explainable mediator ranking by road cost.

A dispatcher must be able to say *why* someone was proposed or passed over, so every ranked
person carries a reason code and every excluded person a skip code; an empty answer carries a
shortfall code. Road costs come from :class:`~gridmap.roads.RoadGraph` (pgRouting semantics).
The road graph and grid adjacency (:mod:`gridmap.roads`) and the incident lifecycle and
Open311 services (:mod:`gridmap.lifecycle`) are re-exported here.

Examples
--------
>>> g = RoadGraph.from_edges([1, 2], [2, 3], [5.0, 7.0], [-1.0, 7.0])
>>> g.travel_times(1, [3, 2]).tolist(), g.travel_times(3, [1]).tolist()
([12.0, 5.0], [inf])
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from gridmap.crs import from_wgs84, metric_crs_for
from gridmap.errors import InvalidInput
from gridmap.lifecycle import (
    ASSIGNMENT_TRANSITIONS,
    CO_MEDIATION_CATEGORIES,
    FREES_MEDIATOR,
    HOLDS_MEDIATOR,
    SERVICES,
    TRANSITIONS,
    Service,
    check_transition,
    frees_mediator,
    open311_status,
    service_code,
)
from gridmap.roads import RoadGraph, grid_adjacency

__all__ = [
    "ASSIGNMENT_TRANSITIONS",
    "CO_MEDIATION_CATEGORIES",
    "FREES_MEDIATOR",
    "HOLDS_MEDIATOR",
    "REASONS",
    "SERVICES",
    "TRANSITIONS",
    "Candidate",
    "Invitee",
    "Recommendation",
    "RoadGraph",
    "Service",
    "Skipped",
    "check_transition",
    "frees_mediator",
    "grid_adjacency",
    "open311_status",
    "recommend",
    "service_code",
]


# ------------------------------------------------------------------------------ ranking

REASONS = ("OWN_GRID", "ADJACENT_GRID", "SAME_COMMUNITY", "NEAREST_ETA")  # tier order


@dataclass(frozen=True)
class Candidate:
    """A proposed mediator; ``eta`` is road cost (graph units) or ``None`` without a graph."""

    person_id: Any
    name: str
    grid: str | None
    reason: str
    open_cases: int
    caseload_cap: int | None
    distance_m: float
    eta: float | None


@dataclass(frozen=True)
class Skipped:
    """A person passed over, with the first rule that excluded them."""

    person_id: Any
    name: str
    grid: str | None
    code: str
    detail: str


@dataclass(frozen=True)
class Invitee:
    """A co-mediator invited (not dispatched) because their area covers the incident grid."""

    person_id: Any
    name: str
    area_code: str


@dataclass(frozen=True)
class Recommendation:
    """Ranked candidates, who was skipped and why, invited co-mediators, and the shortfall code
    (``None`` unless nobody could be proposed)."""

    grid: str | None
    category: str
    candidates: tuple[Candidate, ...]
    skipped: tuple[Skipped, ...]
    invited: tuple[Invitee, ...]
    shortfall: str | None
    cost_kind: str  # "road" or "straight_line"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _roles(v: Any) -> set[str]:
    if isinstance(v, str):
        return {r.strip() for r in v.split(",") if r.strip()}
    return {str(r) for r in v} if isinstance(v, Iterable) else set()


def _missing(v: Any) -> bool:
    return v is None or (not isinstance(v, str | Iterable) and bool(pd.isna(v)))


def _number(v: Any) -> float:
    """A count or cap as float (NaN when missing or not a number), as ``pd.to_numeric``."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float | np.integer | np.floating):
        return float(v)
    try:
        return float(str(v)) if v is not None else math.nan
    except ValueError:
        return math.nan


def _utc(v: Any) -> datetime | None:
    """A position time as an aware UTC datetime (no zone = UTC), ``None`` when missing."""
    if _missing(v):  # None, NaN, NaT (which is also a datetime)
        return None
    if isinstance(v, datetime) and not isinstance(v, pd.Timestamp):
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
    try:
        ts = pd.Timestamp(v)
    except (ValueError, TypeError):
        return None
    if ts is pd.NaT:
        return None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()  # type: ignore[no-any-return]


def _rows(candidates: pd.DataFrame | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Candidate rows as mappings: the store passes rows; a DataFrame is accepted too."""
    if isinstance(candidates, pd.DataFrame):
        return candidates.to_dict("records")  # type: ignore[return-value]
    return list(candidates)


def _skip(
    r: Mapping[str, Any],
    dist: float,
    roles: set[str],
    now: datetime,
    stale: timedelta,
    radius: float,
) -> tuple[str, str]:
    """(skip code, human-readable detail) of one person, first rule wins; ('', '') when
    eligible."""
    status = str(r.get("status", ""))
    n, cap = _number(r.get("open_cases")), _number(r.get("caseload_cap"))
    n = 0.0 if math.isnan(n) else n
    if not roles & _roles(r.get("roles", "")):
        return "ROLE_MISMATCH", f"roles {r.get('roles', '')!r}"
    if status == "busy":
        return "BUSY", "status busy"
    if status != "available":
        return "OFF_DUTY", f"status {status!r}"
    if not math.isnan(cap) and n >= cap:
        return "OVER_CAPACITY", f"{n:.0f} open cases, cap {cap:.0f}"
    seen = _utc(r.get("position_at"))
    if seen is None or now - seen > stale or not math.isfinite(dist):
        return "STALE_POSITION", f"position at {pd.Timestamp(seen) if seen else 'NaT'}"
    if dist > radius:
        return "OUT_OF_RADIUS", f"{dist:.0f} m > {radius:.0f} m"
    return "", ""


def _shortfall(codes: set[str]) -> str:
    rest = codes - {"ROLE_MISMATCH"}
    if not rest:
        return "NO_CANDIDATES"
    if rest & {"OUT_OF_RADIUS", "UNREACHABLE"}:
        return "OUTSIDE_RADIUS"  # someone is available, but too far: widen the radius
    if "STALE_POSITION" in rest:
        return "STALE_POSITIONS"
    if rest == {"OFF_DUTY"}:
        return "ALL_OFF_DUTY"
    return "ALL_BUSY" if rest <= {"BUSY", "OVER_CAPACITY"} else "NONE_AVAILABLE"


def recommend(
    incident: Mapping[str, Any],
    candidates: pd.DataFrame | Sequence[Mapping[str, Any]],
    *,
    adjacency: Mapping[str, Iterable[str]],
    community_of: Mapping[str, str],
    graph: RoadGraph | None = None,
    now: datetime | None = None,
    stale_after: timedelta = timedelta(minutes=30),
    max_radius_m: float = 5000.0,
    limit: int = 5,
    invited: pd.DataFrame | Sequence[Mapping[str, Any]] | None = None,
    eligible_roles: Iterable[str] = ("mediator",),
) -> Recommendation:
    """Rank mediators for an incident (``grid``, ``lon``, ``lat``, ``category``).

    Tiers: ``OWN_GRID`` ▸ ``ADJACENT_GRID`` ▸ ``SAME_COMMUNITY`` ▸ ``NEAREST_ETA``; within a
    tier lower ``open_cases`` first, then shorter road cost (mediator → incident; straight-line
    metres without a graph), then ``person_id``. Skip codes, first rule wins: ``ROLE_MISMATCH``,
    ``BUSY``, ``OFF_DUTY``, ``OVER_CAPACITY`` (open_cases ≥ caseload_cap), ``STALE_POSITION``
    (older than ``stale_after`` or missing), ``OUT_OF_RADIUS`` (straight line >
    ``max_radius_m``), ``UNREACHABLE`` (no road path). Shortfall (nobody proposed):
    ``NO_CANDIDATES`` (no eligible role), ``OUTSIDE_RADIUS`` (someone free but too far),
    ``STALE_POSITIONS``, ``ALL_OFF_DUTY``, ``ALL_BUSY`` (busy or at cap), ``NONE_AVAILABLE``
    (a mix). Timestamps without a zone are UTC. A person listed for several grids is ranked
    once, at their best tier.
    """
    lon, lat = float(incident["lon"]), float(incident["lat"])
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise InvalidInput("incident position must be finite", code="non-finite-coordinate")
    grid = None if _missing(incident.get("grid")) else str(incident["grid"])
    category = service_code(str(incident.get("category", "other")))
    roles = set(eligible_roles)
    now_utc = _utc(now) or datetime.now(UTC)
    near = {str(g) for g in adjacency.get(grid, ())} if grid else set()
    community = community_of.get(grid) if grid else None
    crs = graph.metric_crs if graph is not None and graph.metric_crs else metric_crs_for(lon, lat)
    rows = _rows(candidates)
    plon = np.array([_number(r.get("lon")) for r in rows], dtype=float)
    plat = np.array([_number(r.get("lat")) for r in rows], dtype=float)
    (ix, iy), (px, py) = from_wgs84(lon, lat, crs), from_wgs84(plon, plat, crs)
    dist = np.hypot(np.asarray(px) - ix, np.asarray(py) - iy)
    dist[~np.isfinite(dist)] = np.inf
    pids = [r["person_id"] for r in rows]
    names = [str(r.get("name", "")) for r in rows]
    grids = [None if _missing(r.get("grid")) else str(r["grid"]) for r in rows]
    n_open = [int(x) if not math.isnan(x := _number(r.get("open_cases"))) else 0 for r in rows]
    caps = [None if _missing(r.get("caseload_cap")) else int(r["caseload_cap"]) for r in rows]
    skipped: dict[Any, Skipped] = {}
    eligible: list[int] = []
    for k, r in enumerate(rows):
        code, detail = _skip(r, float(dist[k]), roles, now_utc, stale_after, max_radius_m)
        if code:
            skipped.setdefault(pids[k], Skipped(pids[k], names[k], grids[k], code, detail))
        else:
            eligible.append(k)
    ok = np.array(eligible, dtype=np.int64)
    cost = dist.copy()
    if graph is not None and len(ok):
        inode = graph.nearest_node(lon, lat)[0][0]
        cost[ok] = graph.travel_times(inode, graph.nearest_node(plon[ok], plat[ok])[0], toward=True)

    def tier(k: int) -> int:
        same = community is not None and community_of.get(grids[k] or "") == community
        return 0 if grid and grids[k] == grid else 1 if grids[k] in near else 2 if same else 3

    out: dict[Any, Candidate] = {}
    for k in sorted(ok.tolist(), key=lambda k: (tier(k), n_open[k], cost[k], str(pids[k]))):
        if not math.isfinite(cost[k]):
            why = "no road path to the incident"
            skipped.setdefault(pids[k], Skipped(pids[k], names[k], grids[k], "UNREACHABLE", why))
        elif pids[k] not in out:
            eta = None if graph is None else float(cost[k])
            d, reason = round(float(dist[k]), 1), REASONS[tier(k)]
            out[pids[k]] = Candidate(
                pids[k], names[k], grids[k], reason, n_open[k], caps[k], d, eta
            )
    skips = tuple(s for p, s in skipped.items() if p not in out)
    best = tuple(out.values())[:limit]
    short = None if best else _shortfall({s.code for s in skips})
    kind = "straight_line" if graph is None else "road"
    inv = _invite(category, grid, invited)
    return Recommendation(grid, category, best, skips, inv, short, kind)


def _invite(
    category: str, grid: str | None, invited: pd.DataFrame | Sequence[Mapping[str, Any]] | None
) -> tuple[Invitee, ...]:
    """Co-mediators whose area code is a prefix of the grid code (longest = most local first);
    an optional ``categories`` column (comma-separated, empty = all) narrows what they serve."""
    if invited is None or grid is None or category not in CO_MEDIATION_CATEGORIES:
        return ()
    found = []
    for r in _rows(invited):
        area, cats = str(r["area_code"] if "area_code" in r else r["area"]), r.get("categories")
        serves = {service_code(c) for c in _roles("" if _missing(cats) else cats)}
        if grid.startswith(area) and (not serves or category in serves):
            found.append(
                (-len(area), str(r["person_id"]), Invitee(r["person_id"], r["name"], area))
            )
    return tuple(f[2] for f in sorted(found, key=lambda f: f[:2]))
