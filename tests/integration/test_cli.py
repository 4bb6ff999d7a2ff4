"""The gridmap command line against the real test database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from sqlalchemy import Engine

from gridmap.settings import Settings
from tests.helpers import DISTRICTS, feature, snapshot, write_geojson

BOWTIE = [[[111.30, 30.70], [111.31, 30.71], [111.31, 30.70], [111.30, 30.71], [111.30, 30.70]]]


def run(
    settings: Settings, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GRIDMAP_DATABASE_URL": str(settings.database_url),
        "GRIDMAP_SECRET_KEY": str(settings.secret_key),
        "GRIDMAP_DATA_DIR": str(settings.data_dir),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "gridmap.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_db_status_with_external_url(db: Engine, settings: Settings) -> None:
    res = run(settings, "db", "status")
    assert res.returncode == 0 and "PostGIS" in res.stdout
    assert "***" in res.stdout  # the password is never printed


def test_bowtie_import_exits_nonzero_and_changes_nothing(
    db: Engine, settings: Settings, tmp_path: Path
) -> None:
    assert (
        run(
            settings, "import", "boundaries", str(DISTRICTS), "--level", "district", "--commit"
        ).returncode
        == 0
    )
    before = snapshot(db)
    path = write_geojson(
        tmp_path / "bad.geojson", [feature("420502001", "坏街道", BOWTIE, parent="420502")]
    )
    res = run(settings, "import", "boundaries", str(path), "--level", "street", "--commit")
    assert res.returncode == 1
    assert "420502001" in res.stdout and "self-intersection" in res.stdout.lower()
    assert "nothing written" in res.stdout
    assert snapshot(db) == before


def test_unreadable_file_exits_2(db: Engine, settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "x.geojson"
    path.write_text("not json at all")
    res = run(settings, "import", "boundaries", str(path), "--level", "district")
    assert res.returncode == 2 and "error" in res.stderr and "Traceback" not in res.stderr


def test_dry_run_exits_zero_and_writes_nothing(db: Engine, settings: Settings) -> None:
    before = snapshot(db)
    res = run(settings, "import", "boundaries", str(DISTRICTS), "--level", "district")
    assert res.returncode == 0 and "dry run" in res.stdout
    assert snapshot(db) == before


def test_user_and_token_work_over_http(db: Engine, settings: Settings, server: str) -> None:
    run(settings, "import", "boundaries", str(DISTRICTS), "--level", "district", "--commit")
    res = run(settings, "user", "add", "zhang", "--role", "leader", "--area", "420503")
    assert res.returncode == 0, res.stderr
    token = run(settings, "token", "zhang").stdout.strip()
    r = httpx.get(f"{server}/api/v1/areas", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and [f["id"] for f in r.json()["features"]] == ["420503"]
    assert run(settings, "token", "zhang", "--revoke").returncode == 0
    r = httpx.get(f"{server}/api/v1/areas", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    dup = run(settings, "user", "add", "zhang", "--role", "leader")
    assert dup.returncode == 2 and "already exists" in dup.stderr
