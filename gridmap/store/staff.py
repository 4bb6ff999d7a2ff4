"""Staff, postings and care links in PostGIS around the pure solver in ``gridmap.staffing``.

Identity numbers are stored only as a keyed hash (uniqueness), AES-GCM ciphertext and a masked
form. A roster import is all or nothing; an assignment run closes moved postings and opens new
ones in one transaction, so the posting history stays complete.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import shapely
from scipy.sparse.csgraph import dijkstra
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.crs import from_wgs84, metric_crs_for
from gridmap.errors import InvalidInput, NotFound
from gridmap.idnumbers import encrypt_id_number, protect_id_number
from gridmap.roads import RoadGraph
from gridmap.staffing import (
    Assignment,
    Quotas,
    aggregate_report,
    assign_care,
    assign_staff,
    shortage_report,
)
from gridmap.store.areas import record_audit

__all__ = [
    "current_grids",
    "load_roster",
    "run_assignment",
    "save_staff_postings",
    "shortage",
    "staff_inputs",
]

CASELOAD_CAP = {"mediator": 3}


def load_roster(
    session: Session,
    staff: pd.DataFrame,
    care: pd.DataFrame | None,
    *,
    key: bytes,
    user: str,
    replace: bool = False,
) -> tuple[int, int]:
    """Insert people (name, role, id_number, phone, community, lon, lat) and care subjects
    (code, category, grid, lon, lat). ``replace`` empties staff tables first."""
    if replace:
        session.execute(
            text(
                "DELETE FROM co_mediator; DELETE FROM posting; "
                "UPDATE care_subject SET volunteer_id = NULL; "
                "DELETE FROM care_subject; DELETE FROM dispatch_assignment; "
                "UPDATE incident SET mediator_id = NULL; DELETE FROM person"
            )
        )
    communities: dict[str, int] = dict(
        session.execute(text("SELECT code, id FROM area WHERE kind = 'community'")).all()
    )
    rows = []
    for rec in staff.to_dict("records"):
        idn = rec.get("id_number")
        digest, masked = protect_id_number(str(idn), key) if idn else (None, None)
        rows.append(
            {
                "name": str(rec["name"]),
                "roles": str(rec["role"]),
                "phone": rec.get("phone"),
                "hash": digest,
                "enc": encrypt_id_number(str(idn), key).encode() if idn else None,
                "masked": masked,
                "community": communities.get(str(rec.get("community"))),
                "cap": CASELOAD_CAP.get(str(rec["role"]), 5),
                "lon": _num(rec.get("lon")),
                "lat": _num(rec.get("lat")),
            }
        )
    insert = text(
        "INSERT INTO person (name, roles, phone, id_number_hash, id_number_enc, "
        "id_number_masked, community_id, caseload_cap, home) VALUES (:name, :roles, "
        ":phone, :hash, :enc, :masked, :community, :cap, CASE WHEN :lon IS NULL THEN NULL "
        "ELSE ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) END) RETURNING id"
    )
    postings = []
    for row, rec in zip(rows, staff.to_dict("records"), strict=True):
        pid = session.execute(insert, row).scalar_one()
        grid = rec.get("grid")
        if isinstance(grid, str) and grid:  # the roster already names a grid: keep it
            postings.append({"p": pid, "g": grid, "r": row["roles"]})
    if postings:
        session.execute(
            text("INSERT INTO posting (person_id, grid_code, role) VALUES (:p, :g, :r)"),
            postings,
        )
    n_care = 0
    if care is not None and len(care):
        subjects = [
            {
                "code": str(r["code"]),
                "cat": str(r["category"]),
                "grid": None if pd.isna(r.get("grid")) else str(r["grid"]),
                "lon": _num(r.get("lon")),
                "lat": _num(r.get("lat")),
            }
            for r in care.to_dict("records")
        ]
        session.execute(
            text(
                "INSERT INTO care_subject (code, category, grid_code, geom) VALUES (:code, :cat, "
                ":grid, CASE WHEN :lon IS NULL THEN NULL ELSE ST_SetSRID(ST_MakePoint(:lon, :lat), "
                "4326) END)"
            ),
            subjects,
        )
        n_care = len(subjects)
    record_audit(
        session,
        user,
        "roster.import",
        "person",
        None,
        after={"people": len(rows), "care_subjects": n_care},
    )
    return len(rows), n_care


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def current_grids(session: Session, prefix: str | None = None) -> pd.DataFrame:
    """Current grids (those whose code starts with ``prefix``, when given): code, households,
    lon/lat of a point on the surface. Raises NotFound only when nothing is published at all."""
    like = (prefix or "").replace("%", "").replace("_", r"\_") + "%"
    rows = session.execute(
        text(
            "SELECT code, households, ST_X(p), ST_Y(p) FROM (SELECT code, households, "
            "ST_PointOnSurface(geom) AS p FROM grid WHERE valid_from IS NOT NULL "
            "AND valid_to IS NULL AND code LIKE :like) g ORDER BY code"
        ),
        {"like": like},
    ).all()
    if not rows and (
        not prefix
        or session.execute(
            text("SELECT 1 FROM grid WHERE valid_from IS NOT NULL AND valid_to IS NULL LIMIT 1")
        ).first()
        is None
    ):
        raise NotFound(
            "no published grids: run `gridmap grid --all` and publish first", code="no-grids"
        )
    return pd.DataFrame(rows, columns=["code", "households", "lon", "lat"])


def road_costs(session: Session, people: pd.DataFrame, grids: pd.DataFrame) -> np.ndarray | None:
    """Home → grid road distance in metres (people × grids), or None without a road network.

    Each end is snapped to its nearest road node (the snap distance is added); pairs the network
    cannot join fall back to 1.5 × the straight line, so nobody becomes unassignable.
    """
    rows = session.execute(
        text("SELECT source, target, length_m, ST_AsBinary(geom) FROM road_edge")
    ).all()
    if not rows:
        return None
    src, tgt, length, wkb = zip(*rows, strict=True)
    graph = RoadGraph.from_edges(
        src, tgt, length, length, geometry=shapely.from_wkb([bytes(w) for w in wkb])
    )
    p_node, p_snap = graph.nearest_node(
        people["lon"].to_numpy(float), people["lat"].to_numpy(float)
    )
    g_node, g_snap = graph.nearest_node(grids["lon"].to_numpy(float), grids["lat"].to_numpy(float))
    p_pos = np.searchsorted(graph.node_ids, p_node)
    g_unique, g_inv = np.unique(np.searchsorted(graph.node_ids, g_node), return_inverse=True)
    dist = dijkstra(graph.csr, directed=False, indices=g_unique)  # grids × nodes
    cost = dist[g_inv][:, p_pos].T + p_snap[:, None] + g_snap[None, :]
    straight = np.hypot(
        people["x"].to_numpy()[:, None] - grids["x"].to_numpy()[None, :],
        people["y"].to_numpy()[:, None] - grids["y"].to_numpy()[None, :],
    )
    return np.where(np.isfinite(cost), cost, 1.5 * straight)


def _metric(df: pd.DataFrame, crs: str) -> pd.DataFrame:
    x, y = from_wgs84(df["lon"].to_numpy(float), df["lat"].to_numpy(float), crs)
    return df.assign(x=x, y=y)


def staff_inputs(session: Session) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Current grids and people with homes (lon/lat and metric x/y, current grids), and the
    metric CRS: the inputs of an assignment."""
    grids_ll = current_grids(session)
    crs = metric_crs_for(float(grids_ll["lon"].mean()), float(grids_ll["lat"].mean()))
    grids = _metric(grids_ll, crs)
    people = pd.DataFrame(
        session.execute(
            text("""
        SELECT p.id, p.roles AS role, ST_X(p.home) AS lon, ST_Y(p.home) AS lat,
               (SELECT array_agg(po.grid_code ORDER BY po.grid_code) FROM posting po
                  WHERE po.person_id = p.id AND po.valid_to IS NULL) AS current_grid
        FROM person p WHERE p.home IS NOT NULL ORDER BY p.id""")
        )
        .mappings()
        .all(),
        columns=["id", "role", "lon", "lat", "current_grid"],
    )
    if people.empty:
        raise InvalidInput("no staff with a home location: import a roster first", code="no-staff")
    people = _metric(people, crs)
    return grids, people, crs


def _figures(result: Assignment) -> dict[str, Any]:
    """What every assignment summary reports of the result (moves, gaps, cost, optimality)."""
    return {
        "moves": len(result.moves),
        "unfilled_minimum_slots": int(result.unfilled["missing"].sum())
        if len(result.unfilled)
        else 0,
        "coverage": round(result.coverage, 4),
        "total_cost_m": round(result.total_cost_m),
        "certified_optimal": bool(result.certified),
    }


def save_staff_postings(
    session: Session, staff: pd.DataFrame, result: Assignment, *, user: str, how: str
) -> dict[str, Any]:
    """Write a staff assignment computed elsewhere (e.g. per district on Dask) and audit it."""
    _write_postings(session, result.postings, roles=sorted(set(staff["role"])))
    summary = {
        "people": len(staff),
        "postings": len(result.postings),
        **_figures(result),
        "cost": "straight_line_m",
        "how": how,
    }
    record_audit(session, user, "staff.assign", "posting", None, after=summary)
    return summary


def run_assignment(
    session: Session,
    *,
    user: str,
    quotas: Quotas | None = None,
    keep_margin_m: float = 500.0,
    use_roads: bool = True,
) -> dict[str, Any]:
    """Optimal postings for every person and care links for every subject; reports moves.

    Cost is home → grid road distance when a road network is loaded, else straight-line metres
    in the local CRS.
    """
    grids, people, crs = staff_inputs(session)
    staff = people[people["role"] != "care_volunteer"].reset_index(drop=True)
    cost = road_costs(session, staff, grids) if use_roads else None
    result = assign_staff(staff, grids, quotas, keep_margin_m=keep_margin_m, cost_matrix=cost)
    _write_postings(session, result.postings, roles=sorted(set(staff["role"])))
    vols = people[people["role"] == "care_volunteer"]
    home_grid: dict[int, str] = dict(
        session.execute(
            text(
                "SELECT p.id, (SELECT g.code FROM grid g WHERE g.valid_from IS NOT NULL AND "
                "g.valid_to IS NULL AND ST_Intersects(g.geom, p.home) ORDER BY g.code LIMIT 1) "
                "FROM person p WHERE p.roles = 'care_volunteer' AND p.home IS NOT NULL"
            )
        ).all()
    )
    vols = vols.assign(
        current_grid=vols["current_grid"].map(lambda g: g[0] if isinstance(g, list) and g else None)
    )
    vol_grid = vols.set_index("id")["current_grid"].fillna(
        vols.set_index("id").index.to_series().map(home_grid)
    )
    missing = [
        {"p": int(i), "g": g}
        for i, g in vol_grid.items()
        if pd.notna(g) and pd.isna(vols.set_index("id").at[i, "current_grid"])
    ]
    if missing:  # a volunteer serves the grid they live in
        session.execute(
            text(
                "INSERT INTO posting (person_id, grid_code, role) VALUES (:p, :g, 'care_volunteer')"
            ),
            missing,
        )
    subjects = pd.DataFrame(
        session.execute(
            text(
                "SELECT id, grid_code AS grid, ST_X(geom) AS lon, ST_Y(geom) AS lat, "
                "volunteer_id AS current_volunteer FROM care_subject WHERE geom IS NOT NULL "
                "ORDER BY id"
            )
        )
        .mappings()
        .all(),
        columns=["id", "grid", "lon", "lat", "current_volunteer"],
    )
    care = None
    if len(subjects):
        v = vols.assign(grid=vols["id"].map(vol_grid)).dropna(subset=["grid"])
        care = assign_care(_metric(subjects, crs), v, quotas, keep_margin_m=keep_margin_m)
        links = care.links
        session.execute(
            text("UPDATE care_subject SET volunteer_id = :v WHERE id = :s"),
            [
                {"v": None if pd.isna(v_) else int(v_), "s": int(s_)}
                for s_, v_ in zip(links["subject"], links["volunteer"], strict=True)
            ],
        )
    summary = {
        "grids": len(grids),
        "people": len(people),
        "postings": len(result.postings) + int(vol_grid.notna().sum()),
        **_figures(result),
        "cost": "road_m" if cost is not None else "straight_line_m",
        "moved": result.moves.to_dict(orient="records")[:200],
        "care_subjects": len(subjects),
        "care_uncovered": 0 if care is None else len(care.uncovered),
    }
    record_audit(session, user, "staff.assign", "posting", None, after=summary)
    return summary


def _write_postings(session: Session, postings: pd.DataFrame, roles: list[str]) -> None:
    """Close postings of ``roles`` that changed, open the new ones (unchanged ones stay)."""
    current = pd.DataFrame(
        session.execute(
            text(
                "SELECT id, person_id, grid_code, role FROM posting WHERE valid_to IS NULL "
                "AND role = ANY(:roles)"
            ),
            {"roles": roles},
        )
        .mappings()
        .all(),
        columns=["id", "person_id", "grid_code", "role"],
    )
    want = {
        (int(p), str(g), str(r))
        for p, g, r in zip(postings["person"], postings["grid"], postings["role"], strict=True)
    }
    have = {(int(p), str(g), str(r)): int(i) for i, p, g, r in current.itertuples(index=False)}
    close = [{"i": i} for k, i in have.items() if k not in want]
    opened = [{"p": p, "g": g, "r": r} for p, g, r in sorted(want - set(have))]
    if close:
        session.execute(text("UPDATE posting SET valid_to = now() WHERE id = :i"), close)
    if opened:
        session.execute(
            text("INSERT INTO posting (person_id, grid_code, role) VALUES (:p, :g, :r)"), opened
        )


def shortage(
    session: Session, *, level: str = "grid", scope: str | None = None, quotas: Quotas | None = None
) -> pd.DataFrame:
    """Quota status per grid, or rolled up per community, street or district."""
    grids = current_grids(session, scope)  # filtered in SQL: a city of a province, not all
    postings = pd.DataFrame(
        session.execute(
            text(
                "SELECT person_id AS person, role, grid_code AS grid FROM posting "
                "WHERE valid_to IS NULL"
            )
        )
        .mappings()
        .all(),
        columns=["person", "role", "grid"],
    )
    links = pd.DataFrame(
        session.execute(
            text(
                "SELECT c.id AS subject, c.grid_code AS grid, c.volunteer_id AS volunteer FROM "
                "care_subject c"
            )
        )
        .mappings()
        .all(),
        columns=["subject", "grid", "volunteer"],
    )
    vols = postings[postings["role"] == "care_volunteer"].rename(columns={"person": "id"})
    per_grid = shortage_report(grids, postings, links, quotas, volunteers=vols[["id", "grid"]])
    if level == "grid":
        return per_grid
    if level not in ("community", "street", "district"):
        raise InvalidInput(f"unknown level {level!r}", code="unknown-level")
    return aggregate_report(per_grid, level=level)


def add_co_mediator(
    session: Session,
    name: str,
    area: str,
    *,
    categories: list[str] | None,
    phone: str | None = None,
    user: str,
) -> int:
    """Register an invited co-mediator (e.g. a people's congress deputy) for an area."""
    from gridmap.lifecycle import service_code

    if session.execute(text("SELECT 1 FROM area WHERE code = :c"), {"c": area}).first() is None:
        raise InvalidInput(f"unknown area code {area!r}", code="unknown-area")
    cats = ",".join(service_code(c) for c in categories) if categories else None
    pid = session.execute(
        text(
            "INSERT INTO person (name, roles, status, phone) VALUES (:n, 'co_mediator', "
            "'available', :p) RETURNING id"
        ),
        {"n": name, "p": phone},
    ).scalar_one()
    session.execute(
        text("INSERT INTO co_mediator (person_id, area_code, categories) VALUES (:p, :a, :c)"),
        {"p": pid, "a": area, "c": cats},
    )
    record_audit(
        session,
        user,
        "co_mediator.add",
        "person",
        str(pid),
        after={"area": area, "categories": cats},
    )
    return int(pid)
