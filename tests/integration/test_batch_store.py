"""Dask batch through the database: re-gridding on a 2-process LocalCluster writes the same
grids, and the `gridmap batch` commands answer as the single-process ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from gridmap.batch import assign_by_district, connect, dask_map
from gridmap.roster_synth import synthetic_roster
from gridmap.settings import Settings
from gridmap.store.db import session_scope
from gridmap.store.grids import run_gridding, select_communities
from gridmap.store.staff import current_grids, load_roster, staff_inputs
from tests.helpers import COMMUNITY
from tests.integration.test_cli import run


def _rows(db: Engine, version: int) -> list[tuple[str, int, int, bytes]]:
    with db.connect() as conn:
        return [
            (r[0], r[1], r[2], bytes(r[3]))
            for r in conn.execute(
                text(
                    "SELECT code, households, population, ST_AsBinary(geom) FROM grid "
                    "WHERE version_id = :v ORDER BY code"
                ),
                {"v": version},
            )
        ]


def test_dask_gridding_writes_the_serial_grids(community: Engine) -> None:
    with session_scope(community) as s:
        chosen = select_communities(s, community=COMMUNITY)
        serial = run_gridding(s, chosen, user="planner", households_per_grid=600)
    with connect(workers=2) as client, session_scope(community) as s:
        seen: list[str] = []
        dist = run_gridding(
            s,
            chosen,
            user="planner",
            households_per_grid=600,
            progress=seen.append,
            map_jobs=dask_map(client),
        )
    assert seen == [COMMUNITY]
    assert dist.version_id != serial.version_id and dist.grids == serial.grids > 1
    assert _rows(community, dist.version_id) == _rows(community, serial.version_id)
    assert dist.quality == serial.quality


def test_batch_commands_match_the_single_process_ones(
    community: Engine, settings: Settings, tmp_path: Path
) -> None:
    grid = run(settings, "batch", "grid", "--households-per-grid", "600", "--workers", "2")
    assert grid.returncode == 0, grid.stderr
    assert "2 workers" in grid.stdout and "draft version" in grid.stdout
    assert run(settings, "grid", "publish").returncode == 0
    with community.connect() as conn:
        lo, la, hi, ha = conn.execute(
            text(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                "(SELECT ST_Extent(geom) AS e FROM grid WHERE valid_to IS NULL "
                "AND valid_from IS NOT NULL) x"
            )
        ).one()
    rng = np.random.default_rng(5)
    n = 3000
    pts = pd.DataFrame(
        {
            "id": np.arange(n),
            "lon": rng.uniform(lo - 0.002, hi + 0.002, n),
            "lat": rng.uniform(la - 0.002, ha + 0.002, n),
        }
    )
    src = tmp_path / "pts.csv"
    pts.to_csv(src, index=False)
    single = run(settings, "locate", str(src), "--out", str(tmp_path / "one.csv"))
    batch = run(
        settings,
        "batch",
        "locate",
        str(src),
        "--out",
        str(tmp_path / "two.csv"),
        "--workers",
        "2",
        "--chunk",
        "700",
    )
    assert single.returncode == 0 and batch.returncode == 0, batch.stderr
    one, two = pd.read_csv(tmp_path / "one.csv"), pd.read_csv(tmp_path / "two.csv")
    pd.testing.assert_frame_equal(one, two)
    assert set(one["status"]) == {"ok", "outside"}


def test_batch_assign_through_a_scheduler_address(community: Engine, settings: Settings) -> None:
    """The `--scheduler` path: the command joins a running cluster by its address and writes
    the postings the in-process per-district assignment computes."""
    from distributed import LocalCluster

    grid = run(settings, "batch", "grid", "--households-per-grid", "600", "--workers", "0")
    assert grid.returncode == 0 and "in-process" in grid.stdout, grid.stderr
    assert run(settings, "grid", "publish").returncode == 0
    with session_scope(community) as s:
        grids = current_grids(s).rename(columns={"lon": "x", "lat": "y"})
        roster = synthetic_roster(grids, seed=3)
        load_roster(s, roster.staff, roster.care_subjects, key=settings.id_key(), user="t")
    with session_scope(community) as s:
        grids_m, people, _ = staff_inputs(s)
    staff = people[people["role"] != "care_volunteer"].reset_index(drop=True)
    want = assign_by_district(staff, grids_m)
    with LocalCluster(n_workers=1, processes=True, dashboard_address=None) as cluster:
        res = run(settings, "batch", "assign", "--scheduler", cluster.scheduler_address)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["how"] == f"per district, dask scheduler {cluster.scheduler_address}"
    assert summary["certified_optimal"] and summary["postings"] == len(want.postings) > 0
    with community.connect() as conn:
        posted = conn.execute(
            text(
                "SELECT person_id, grid_code, role FROM posting WHERE valid_to IS NULL "
                "AND role <> 'care_volunteer'"
            )
        ).all()
    expected = zip(
        want.postings["person"], want.postings["grid"], want.postings["role"], strict=True
    )
    assert sorted((int(p), g, r) for p, g, r in posted) == sorted(
        (int(p), str(g), str(r)) for p, g, r in expected
    )
