"""Roster import, optimal postings, care links and the shortage report on the real database."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import openpyxl
import pytest
from sqlalchemy import Engine, text

from gridmap.errors import InvalidInput
from gridmap.roster_synth import synthetic_roster
from gridmap.security import TokenClaims, issue_token
from gridmap.settings import Settings
from gridmap.store.db import session_scope
from gridmap.store.grids import publish_version, run_gridding, select_communities
from gridmap.store.staff import current_grids, load_roster, run_assignment
from gridmap.store.users import add_user


@pytest.fixture
def staffed(community: Engine, settings: Settings) -> Engine:
    with session_scope(community) as s:
        result = run_gridding(s, select_communities(s), user="t", n_grids=8)
        publish_version(s, result.version_id, user="t")
        grids = current_grids(s).rename(columns={"lon": "x", "lat": "y"})
        roster = synthetic_roster(grids, seed=3)
        load_roster(s, roster.staff, roster.care_subjects, key=settings.id_key(), user="t")
    return community


def test_assignment_respects_quotas_and_capacities(staffed: Engine) -> None:
    with session_scope(staffed) as s:
        summary = run_assignment(s, user="t")
    assert summary["certified_optimal"] is True
    with staffed.connect() as conn:
        per_grid = conn.execute(
            text(
                "SELECT grid_code, role, count(*) FROM posting WHERE valid_to IS NULL GROUP BY 1, 2"
            )
        ).all()
        per_person = conn.execute(
            text(
                "SELECT p.roles, count(*) FROM posting po JOIN person p ON p.id = po.person_id "
                "WHERE po.valid_to IS NULL GROUP BY p.id, p.roles"
            )
        ).all()
        loads = (
            conn.execute(
                text(
                    "SELECT count(*) FROM care_subject WHERE volunteer_id IS NOT NULL "
                    "GROUP BY volunteer_id"
                )
            )
            .scalars()
            .all()
        )
        stored = conn.execute(
            text("SELECT id_number_masked, id_number_hash, id_number_enc FROM person LIMIT 1")
        ).one()
    maxima = {"grid_manager": 1, "mediator": 2, "publicity": 2}
    for _grid, role, n in per_grid:
        assert n <= maxima.get(role, 99)
    capacity = {
        "grid_manager": 1,
        "mediator": 1,
        "legal_professional": 3,
        "publicity": 2,
        "legal_aid": 3,
        "care_volunteer": 1,
    }
    for role, n in per_person:
        assert n <= capacity[role]
    assert loads and max(loads) <= 5
    assert "*" in stored[0] and len(stored[1]) == 64 and stored[2] is not None


def test_rerun_moves_nobody(staffed: Engine) -> None:
    with session_scope(staffed) as s:
        run_assignment(s, user="t")
    with staffed.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM posting")).scalar_one()
    with session_scope(staffed) as s:
        again = run_assignment(s, user="t")
    with staffed.connect() as conn:
        after = conn.execute(text("SELECT count(*) FROM posting")).scalar_one()
    assert again["moves"] == 0 and after == before


def test_shortage_report_api(staffed: Engine, server: str, settings: Settings) -> None:
    with session_scope(staffed) as s:
        run_assignment(s, user="t")
        add_user(s, "lead", "leader", "420502", None)
        add_user(s, "disp", "dispatcher", None, None)
    hdr = {
        "Authorization": "Bearer "
        + issue_token(
            TokenClaims("lead", "leader", "420502", 0),
            settings.signing_key(),
            settings.token_audience,
            5,
        )
    }
    r = httpx.get(f"{server}/api/v1/reports/shortage", params={"level": "grid"}, headers=hdr)
    assert r.status_code == 200
    rows = r.json()["rows"]
    assert len(rows) == 8 and all("grid_manager_met" in row for row in rows)
    with staffed.connect() as conn:
        managers = dict(
            conn.execute(
                text(
                    "SELECT grid_code, count(*) FROM posting WHERE role = 'grid_manager' AND "
                    "valid_to IS NULL GROUP BY 1"
                )
            ).all()
        )
    for row in rows:
        assert row["grid_manager_count"] == managers.get(
            row["grid"] if "grid" in row else row["code"], 0
        )
    csv = httpx.get(f"{server}/api/v1/reports/shortage", params={"format": "csv"}, headers=hdr)
    assert csv.status_code == 200 and "district" in csv.text.splitlines()[0]
    xlsx = httpx.get(f"{server}/api/v1/reports/shortage", params={"format": "xlsx"}, headers=hdr)
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None and sheet.max_row == 2  # header + one district
    disp = {
        "Authorization": "Bearer "
        + issue_token(
            TokenClaims("disp", "dispatcher", None, 0),
            settings.signing_key(),
            settings.token_audience,
            5,
        )
    }
    assert httpx.get(f"{server}/api/v1/reports/shortage", headers=disp).status_code == 403
    assert "身份证" not in r.text and "id_number" not in r.text


def test_road_distance_costs(staffed: Engine) -> None:
    import geopandas as gpd
    import numpy as np
    import shapely

    from gridmap.store.bulk import load_road_edges

    with staffed.connect() as conn:
        minx, miny, maxx, maxy = conn.execute(
            text(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT "
                "ST_Extent(geom) AS e FROM area WHERE kind = 'community') x"
            )
        ).one()
    xs, ys = np.linspace(minx, maxx, 7), np.linspace(miny, maxy, 7)
    lines, src, tgt = [], [], []
    node = {(i, j): 1 + 7 * i + j for i in range(7) for j in range(7)}  # a street lattice
    for i in range(7):
        for j in range(7):
            for di, dj in ((1, 0), (0, 1)):
                if i + di < 7 and j + dj < 7:
                    lines.append(shapely.LineString([(xs[i], ys[j]), (xs[i + di], ys[j + dj])]))
                    src.append(node[(i, j)])
                    tgt.append(node[(i + di, j + dj)])
    roads = gpd.GeoDataFrame({"source": src, "target": tgt}, geometry=lines, crs=4326)
    with session_scope(staffed) as s:
        straight = run_assignment(s, user="t", use_roads=False)
        load_road_edges(s, roads, source="test")
    with session_scope(staffed) as s:
        road = run_assignment(s, user="t", keep_margin_m=0)
    assert straight["cost"] == "straight_line_m" and road["cost"] == "road_m"
    # a lattice route is never shorter than the straight line
    assert road["total_cost_m"] >= straight["total_cost_m"]
    assert road["certified_optimal"]


def test_quotas_from_configuration(staffed: Engine, tmp_path: Path) -> None:
    from gridmap.staffing import Quotas

    path = tmp_path / "quotas.json"
    path.write_text('{"mediator": {"min": 1, "max": 1}, "publicity": {"min": 0, "max": 1}}')
    quotas = Quotas.from_config(Settings(quotas_file=path).quotas_config())
    with session_scope(staffed) as s:
        run_assignment(s, user="t", quotas=quotas)
    with staffed.connect() as conn:
        most = dict(
            conn.execute(
                text(
                    "SELECT role, max(n) FROM (SELECT grid_code, role, count(*) AS n FROM posting "
                    "WHERE valid_to IS NULL GROUP BY 1, 2) x GROUP BY role"
                )
            ).all()
        )
    assert most["mediator"] == 1 and most.get("publicity", 0) <= 1
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(InvalidInput):
        Settings(quotas_file=bad).quotas_config()
