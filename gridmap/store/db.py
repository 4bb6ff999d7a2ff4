"""Engines, sessions and migrations. One transaction per unit of work: repositories never commit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from gridmap.errors import ServiceUnavailable
from gridmap.settings import Settings
from gridmap.store.cluster import PrivateCluster, normalize_url

__all__ = ["database_url", "make_engine", "migrate", "session_scope", "up"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def database_url(settings: Settings) -> str:
    """The configured external server, or the private cluster (which must be initialised)."""
    if settings.database_url:
        return normalize_url(settings.database_url)
    cluster = PrivateCluster(settings.data_dir, settings.pg_bin)
    if not cluster.initialized:
        raise ServiceUnavailable(
            "no database: run `gridmap db up` or set GRIDMAP_DATABASE_URL", code="database-missing"
        )
    return cluster.url()


APP_ROLE = "gridmap_app"


@lru_cache(maxsize=8)
def _engine(url: str, statement_timeout_ms: int, app_role: str | None) -> Engine:
    engine = create_engine(
        url,
        pool_size=10,
        max_overflow=20,
        # No ping before each checkout: it is a round trip on every request. After a database
        # restart the first statement on a dead connection fails (answered 503, see
        # api/errors.py) and SQLAlchemy then discards every older pooled connection.
        pool_pre_ping=False,
        connect_args={
            # short OLTP queries: JIT compilation only adds latency (measured 300+ ms on the
            # recommendation query, whose geography distance inflates the cost estimate)
            "options": f"-c statement_timeout={statement_timeout_ms} -c jit=off",
            "application_name": "gridmap",
        },
    )
    if app_role:

        @event.listens_for(engine, "connect")
        def _least_privilege(dbapi_conn: Any, _record: Any) -> None:
            # Act as the restricted role when the migration could create it (it cannot
            # rewrite the audit trail); otherwise stay the login user.
            with dbapi_conn.cursor() as cur:
                # the role is cluster-wide: act as it only where this database's migration
                # granted it privileges (a database still at an older revision has none)
                cur.execute(
                    "SELECT CASE WHEN to_regclass('public.audit_log') IS NULL THEN false "
                    "ELSE pg_has_role(current_user, r.oid, 'MEMBER') AND "
                    "has_table_privilege(r.oid, 'public.audit_log', 'INSERT') END "
                    "FROM pg_roles r WHERE r.rolname = %s",
                    (app_role,),
                )
                row = cur.fetchone()
                if row and row[0]:
                    cur.execute(f'SET ROLE "{app_role}"')
            dbapi_conn.commit()

    return engine


def make_engine(
    url: str, statement_timeout_ms: int = 15_000, app_role: str | None = APP_ROLE
) -> Engine:
    """A pooled engine per URL (cached: one pool per process and database). Sessions run as
    the least-privilege ``app_role`` when it exists; ``app_role=None`` keeps the owner (for
    migrations and maintenance)."""
    return _engine(normalize_url(url), statement_timeout_ms, app_role)


def migrate(url: str, revision: str = "head") -> None:
    """Apply Alembic migrations up to ``revision``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    command.upgrade(cfg, revision)


def up(settings: Settings) -> tuple[str, bool]:
    """Make the database reachable and migrated. Returns (url, started_a_server)."""
    if settings.database_url:
        url, started = normalize_url(settings.database_url), False
    else:
        url, started = PrivateCluster(settings.data_dir, settings.pg_bin).up()
    migrate(url)
    return url, started


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session, session.begin():
        yield session


def ping(engine: Engine) -> str:
    """PostGIS version string; raises when the database does not answer."""
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT postgis_lib_version()")).scalar_one())
