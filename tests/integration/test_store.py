"""The private PostGIS, the schema and boundary imports, on the real database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError, ProgrammingError

from gridmap.errors import InvalidInput
from gridmap.store.db import session_scope
from gridmap.store.imports import import_boundaries
from gridmap.store.users import add_user
from tests.helpers import DISTRICTS, feature, snapshot, write_geojson

BOWTIE = [[[111.30, 30.70], [111.31, 30.71], [111.31, 30.70], [111.30, 30.71], [111.30, 30.70]]]


def test_extensions_and_schema(db: Engine) -> None:
    with db.connect() as conn:
        exts = {r[0] for r in conn.execute(text("SELECT extname FROM pg_extension"))}
        assert {"postgis", "pgrouting"} <= exts
        cols = dict(
            conn.execute(
                text(
                    "SELECT f_table_name || '.' || f_geometry_column, type || ',' || srid "
                    "FROM geometry_columns"
                )
            ).all()
        )
        assert cols["area.geom"] == "MULTIPOLYGON,4326"
        assert cols["grid.geom"] == "MULTIPOLYGON,4326"
        assert cols["incident.geom"] == "POINT,4326"
        gist = conn.execute(
            text("SELECT count(*) FROM pg_indexes WHERE indexdef LIKE '%USING gist%'")
        ).scalar_one()
        assert gist >= 8


def test_invalid_geometry_is_refused_by_the_database_itself(db: Engine) -> None:
    with pytest.raises(IntegrityError), db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO area (kind, code, name, geom) VALUES ('district', '999999', 'x', "
                "ST_Multi(ST_GeomFromText('POLYGON((0 0,1 1,1 0,0 1,0 0))', 4326)))"
            )
        )


def test_audit_log_is_append_only(db: Engine, owner_engine: Engine) -> None:
    with db.begin() as conn:
        role = conn.execute(text("SELECT current_user")).scalar_one()
        conn.execute(text("INSERT INTO audit_log (actor, action) VALUES ('t', 'test')"))
    assert role == "gridmap_app"  # the service runs with least privilege
    for sql in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        with pytest.raises(ProgrammingError, match="permission denied"), db.begin() as conn:
            conn.execute(text(sql))
    # even the schema owner cannot rewrite history row by row: the trigger refuses
    for sql in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(ProgrammingError, match="append-only"), owner_engine.begin() as conn:
            conn.execute(text(sql))
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one() == 1


def test_dry_run_writes_nothing(db: Engine) -> None:
    before = snapshot(db)
    report = import_boundaries(db, DISTRICTS, level="district")
    assert report.ok and not report.committed and report.features == 4
    assert snapshot(db) == before


def test_commit_imports_districts_as_a_generation(db: Engine) -> None:
    report = import_boundaries(db, DISTRICTS, level="district", commit=True, user="tester")
    assert report.ok and report.committed and report.generation_id
    with db.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT code, name, ST_Area(ST_Transform(geom, 4546)) / 1e6, generation_id "
                "FROM area ORDER BY code"
            )
        ).all()
        gen = conn.execute(
            text("SELECT kind, level, created_by, feature_count FROM generation")
        ).one()
        audit = conn.execute(text("SELECT actor, action FROM audit_log")).all()
    expected = {"420502": 61.6, "420503": 82.2, "420504": 532.6, "420505": 120.8}
    assert {r[0]: round(r[2], 1) for r in rows} == expected
    assert {r[3] for r in rows} == {report.generation_id}
    assert tuple(gen) == ("boundaries", "district", "tester", 4)
    assert ("tester", "import.boundaries") in [tuple(a) for a in audit]


def test_reimport_replaces_by_code_without_duplicates(db: Engine) -> None:
    import_boundaries(db, DISTRICTS, level="district", commit=True)
    second = import_boundaries(db, DISTRICTS, level="district", commit=True)
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM area")).scalar_one() == 4
        assert (
            conn.execute(text("SELECT count(DISTINCT generation_id) FROM area")).scalar_one() == 1
        )
        assert (
            conn.execute(text("SELECT max(generation_id) FROM area")).scalar_one()
            == second.generation_id
        )


def test_bowtie_file_changes_nothing(db: Engine, tmp_path: Path) -> None:
    import_boundaries(db, DISTRICTS, level="district", commit=True)
    before = snapshot(db)
    path = write_geojson(
        tmp_path / "streets.geojson",
        [
            feature("420502001", "好街道", BOWTIE, parent="420502"),
            feature(
                "420502002",
                "另一街道",
                [[[111.30, 30.70], [111.302, 30.70], [111.302, 30.702], [111.30, 30.70]]],
                parent="420502",
            ),
        ],
    )
    report = import_boundaries(db, path, level="street", commit=True)
    assert not report.ok and not report.committed
    kinds = {(p["feature"], p["kind"]) for p in report.problems}
    assert ("420502001", "self-intersection") in kinds
    assert snapshot(db) == before


def test_streets_need_their_districts(db: Engine, tmp_path: Path) -> None:
    path = write_geojson(
        tmp_path / "s.geojson",
        [
            feature(
                "420502001",
                "街道",
                [[[111.30, 30.70], [111.302, 30.70], [111.302, 30.702], [111.30, 30.70]]],
                parent="420502",
            )
        ],
    )
    before = snapshot(db)
    report = import_boundaries(db, path, level="street", commit=True)
    assert not report.ok
    assert any(p["kind"] == "unknown-parent" for p in report.problems)
    assert snapshot(db) == before


def test_unreadable_file_is_invalid_input(db: Engine, tmp_path: Path) -> None:
    bad = tmp_path / "broken.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": [')
    with pytest.raises(InvalidInput):
        import_boundaries(db, bad, level="district", commit=True)
    with pytest.raises(InvalidInput):
        import_boundaries(db, tmp_path / "missing.gpkg", level="district")
    with pytest.raises(InvalidInput):
        import_boundaries(db, DISTRICTS, level="province")


def test_user_scope_must_exist(db: Engine) -> None:
    with pytest.raises(InvalidInput), session_scope(db) as s:
        add_user(s, "someone", "leader", "420599", "password123")
    import_boundaries(db, DISTRICTS, level="district", commit=True)
    with session_scope(db) as s:
        add_user(s, "someone", "leader", "420502", "password123")
    with db.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM app_user")).scalar_one()
    assert stored.startswith("$argon2id$") and "password123" not in stored


def test_district_file_properties_round_trip(db: Engine) -> None:
    import_boundaries(db, DISTRICTS, level="district", commit=True)
    names = {
        f["properties"]["code"]: f["properties"]["name"]
        for f in json.loads(DISTRICTS.read_text(encoding="utf-8"))["features"]
    }
    with db.connect() as conn:
        stored = dict(conn.execute(text("SELECT code, name FROM area")).all())
    assert stored == names


def test_models_match_migrations(db: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from geoalchemy2 import alembic_helpers

    from gridmap.store.models import Base

    with db.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"include_object": alembic_helpers.include_object, "compare_type": True}
        )
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []
