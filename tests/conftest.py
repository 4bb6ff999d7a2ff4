"""Shared fixtures: a real PostGIS (never mocked, never skipped) and a real HTTP server.

The database is ``GRIDMAP_TEST_DATABASE_URL`` when set (it is wiped!), else a fresh
``gridmap_test`` database on the project's private cluster, which this fixture starts.
Tests in integration/, api/ and e2e/ carry the ``db`` marker; if any of them is skipped the
run fails, so a missing PostGIS can never pass silently.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, text

from gridmap.settings import PROJECT_ROOT, Settings
from tests.helpers import COMMUNITY, add_street, random_units, xiling_block

DB_DIRS = ("integration", "api", "e2e")
KEEP_TABLES = {"spatial_ref_sys", "alembic_version"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if any(f"/tests/{d}/" in str(item.fspath) for d in DB_DIRS):
            item.add_marker(pytest.mark.db)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.skipped and item.get_closest_marker("db") is not None:
        report.outcome = "failed"
        report.longrepr = f"PostGIS test skipped ({report.longrepr}); skipping is a failure here"


@pytest.fixture(scope="session")
def test_database_url() -> str:
    from gridmap.store.cluster import PrivateCluster, normalize_url
    from gridmap.store.db import migrate

    url = os.environ.get("GRIDMAP_TEST_DATABASE_URL")
    if url:
        url = normalize_url(url)
    else:
        data_dir = Path(os.environ.get("GRIDMAP_DATA_DIR", PROJECT_ROOT / ".gridmap"))
        cluster = PrivateCluster(data_dir)
        cluster.up()
        url = cluster.ensure_database("gridmap_test", fresh=True)
    migrate(url)
    return url


@pytest.fixture(scope="session")
def settings(test_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=test_database_url,
        secret_key=secrets.token_hex(16),
        data_dir=tmp_path_factory.mktemp("gridmap-data"),
        user_cache_s=0.0,  # revocation must show at once in the tests
        locate_refresh_s=0.0,  # and a publish by another connection
        dispatch_refresh_s=0.0,  # and co-mediators added by SQL
        tile_fingerprint_s=0.0,  # and a change of the data behind the tiles
    )


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Engine:
    from gridmap.store.db import make_engine

    assert settings.database_url
    return make_engine(settings.database_url)


def wipe(engine: Engine) -> None:
    """Empty every application table (TRUNCATE: row triggers like the audit guard do not fire)."""
    with engine.begin() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            if r[0] not in KEEP_TABLES
        ]
        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="session")
def owner_engine(settings: Settings) -> Engine:
    """The schema owner (migrations, maintenance); the app runs as the restricted role."""
    from gridmap.store.db import make_engine

    assert settings.database_url
    return make_engine(settings.database_url, app_role=None)


@pytest.fixture
def db(engine: Engine, owner_engine: Engine) -> Engine:
    """An empty, migrated database (emptied by the owner: the app role may not truncate the
    audit trail)."""
    wipe(owner_engine)
    return engine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def server(settings: Settings) -> Iterator[str]:
    """The real app served by uvicorn on a loopback port; yields its base URL."""
    import uvicorn

    from api import create_app

    port = _free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def community(db: Engine) -> Engine:
    """District 西陵 (real), one street and one community (a 1.2 km block inside it), and
    400 building points with households."""
    from gridmap.store.bulk import load_household_units
    from gridmap.store.db import session_scope

    block, _ = xiling_block(db, 0.005)
    with session_scope(db) as s:
        add_street(s, block, [(COMMUNITY, "测试社区", block)])
        units = random_units(np.random.default_rng(7), block, COMMUNITY, 1500, 400)
        units.insert(0, "id", range(len(units)))
        load_household_units(s, units, source="test")
    return db
