"""CLI side of issue #8: volunteer accounts linked to a person, caps on boundary imports,
the supervision report."""

from __future__ import annotations

import json
from pathlib import Path

import shapely
from sqlalchemy import Engine, text

from gridmap.settings import Settings
from gridmap.store.db import session_scope
from tests.helpers import DISTRICTS, feature, snapshot, write_geojson
from tests.integration.test_cli import run


def test_user_add_links_a_person(db: Engine, settings: Settings) -> None:
    assert run(settings, "import", "boundaries", str(DISTRICTS), "--level", "district",
               "--commit").returncode == 0  # fmt: skip
    with session_scope(db) as s:
        pid = s.execute(
            text(
                "INSERT INTO person (name, roles) VALUES ('志愿者', 'care_volunteer') RETURNING id"
            )
        ).scalar_one()
    res = run(settings, "user", "add", "vol1", "--role", "volunteer", "--person", str(pid))
    assert res.returncode == 0, res.stderr
    missing = run(settings, "user", "add", "vol2", "--role", "volunteer", "--person", "999999")
    assert missing.returncode == 2 and "no person 999999" in missing.stderr
    with db.connect() as conn:
        got = conn.execute(text("SELECT name, person_id FROM app_user ORDER BY name")).all()
    assert [tuple(r) for r in got] == [("vol1", pid)]


def test_boundary_import_caps_vertices_and_rings(
    db: Engine, settings: Settings, tmp_path: Path
) -> None:
    assert run(settings, "import", "boundaries", str(DISTRICTS), "--level", "district",
               "--commit").returncode == 0  # fmt: skip
    before = snapshot(db)
    ring = shapely.Point(111.30, 30.70).buffer(0.004, quad_segs=64)  # 257 vertices
    path = write_geojson(
        tmp_path / "dense.geojson",
        [feature("420502001", "密街道", [list(map(list, ring.exterior.coords))], "420502")],
    )
    env_caps = {"GRIDMAP_MAX_VERTICES": "100"}
    res = run(settings, "import", "boundaries", str(path), "--level", "street", "--commit",
              env=env_caps)  # fmt: skip
    assert res.returncode == 1
    assert "too-many-vertices" in res.stdout and "257 vertices" in res.stdout
    assert "nothing written" in res.stdout
    assert snapshot(db) == before


def test_report_supervision_cli(db: Engine, settings: Settings) -> None:
    assert run(settings, "import", "boundaries", str(DISTRICTS), "--level", "district",
               "--commit").returncode == 0  # fmt: skip
    assert run(settings, "user", "add", "gm", "--role", "grid_manager", "--area",
               "420502").returncode == 0  # fmt: skip
    res = run(settings, "report", "supervision", "--area", "420502")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert rows[0]["grid_manager"] == "gm" and rows[0]["open_caseload"] == "0"
    bad = run(settings, "report", "supervision", "--since", "2026-02-01", "--until", "2026-01-01")
    assert bad.returncode == 2 and "since must be earlier" in bad.stderr
    shortage = run(settings, "report", "--level", "district")  # still the shortage report
    assert shortage.returncode == 2 and "no published grids" in shortage.stderr
