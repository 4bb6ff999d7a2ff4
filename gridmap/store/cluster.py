"""The private PostgreSQL/PostGIS cluster that gridmap runs by default.

It lives in ``<data_dir>/pg`` (an ignored folder of the project), listens only on 127.0.0.1 and a
Unix socket inside that folder, and uses a random password stored beside it (mode 0600). When the
process runs as root, the server runs as the ``postgres`` system user (PostgreSQL refuses root).
``GRIDMAP_DATABASE_URL`` bypasses all of this: that server is used and nothing is started.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from gridmap.errors import ServiceUnavailable

__all__ = ["PrivateCluster", "find_pg_bin", "normalize_url"]

DB_NAME = "gridmap"
DB_USER = "gridmap"
REQUIRED_EXTENSIONS = ("postgis", "pgrouting")


def normalize_url(url: str) -> str:
    """SQLAlchemy URL with the psycopg 3 driver, whatever spelling the operator used."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def find_pg_bin(explicit: Path | None = None) -> Path:
    """Directory of the PostgreSQL server binaries (highest installed version)."""
    if explicit:
        return explicit
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise ServiceUnavailable(
        "PostgreSQL server binaries not found; run scripts/setup.sh (installs "
        "postgresql-15-postgis-3 and postgresql-15-pgrouting)",
        code="postgres-missing",
    )


def _free_port(preferred: int = 54329) -> int:
    for port in [preferred, 0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise ServiceUnavailable("no free TCP port on 127.0.0.1", code="no-port")


@dataclass
class PrivateCluster:
    """A PostgreSQL cluster owned by this project checkout."""

    data_dir: Path
    pg_bin: Path | None = None

    @property
    def root(self) -> Path:
        return self.data_dir / "pg"

    @property
    def pgdata(self) -> Path:
        return self.root / "data"

    @property
    def state_file(self) -> Path:
        return self.data_dir / "db.json"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists() and self.state_file.exists()

    def state(self) -> dict[str, str | int]:
        return dict(json.loads(self.state_file.read_text()))

    def url(self, dbname: str = DB_NAME) -> str:
        st = self.state()
        return f"postgresql+psycopg://{DB_USER}:{st['password']}@127.0.0.1:{st['port']}/{dbname}"

    def _conninfo(self, dbname: str) -> str:
        st = self.state()
        return (
            f"host=127.0.0.1 port={st['port']} user={DB_USER} password={st['password']} "
            f"dbname={dbname} connect_timeout=5"
        )

    # -- running server commands as the right user -------------------------------------------
    def _as_owner(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        if os.geteuid() == 0:
            args = ["runuser", "-u", "postgres", "--", *args]
        return subprocess.run(args, capture_output=True, text=True, check=False)

    def _bin(self, name: str) -> str:
        return str(find_pg_bin(self.pg_bin) / name)

    def _check_extensions(self) -> None:
        bindir = find_pg_bin(self.pg_bin)
        share = Path("/usr/share/postgresql") / bindir.parent.name / "extension"
        missing = [e for e in REQUIRED_EXTENSIONS if not (share / f"{e}.control").exists()]
        if share.parent.exists() and missing:
            raise ServiceUnavailable(
                f"PostgreSQL extensions missing: {', '.join(missing)}; run scripts/setup.sh",
                code="postgres-extension-missing",
            )

    def init(self) -> None:
        """Create the cluster (first time only)."""
        self._check_extensions()
        self.root.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(24)
        port = _free_port()
        pwfile = self.root / "pwfile"
        pwfile.write_text(password + "\n")
        os.chmod(pwfile, 0o600)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for path in [self.root, pwfile]:
                os.chown(path, pw.pw_uid, pw.pw_gid)
        res = self._as_owner(
            [
                self._bin("initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                DB_USER,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        )
        pwfile.unlink(missing_ok=True)
        if res.returncode != 0:
            raise ServiceUnavailable(
                f"initdb failed: {res.stderr.strip() or res.stdout.strip()}", code="initdb-failed"
            )
        conf = self.pgdata / "postgresql.auto.conf"
        with conf.open("a") as fh:
            fh.write(
                f"listen_addresses = '127.0.0.1'\nport = {port}\n"
                f"unix_socket_directories = '{self.root}'\n"
                "shared_buffers = '256MB'\nmax_connections = 200\n"
                "work_mem = '32MB'\nlog_min_messages = warning\n"
            )
        self.state_file.write_text(json.dumps({"port": port, "password": password}))
        os.chmod(self.state_file, 0o600)

    def running(self) -> bool:
        if not self.initialized:
            return False
        res = self._as_owner([self._bin("pg_ctl"), "status", "-D", str(self.pgdata)])
        return res.returncode == 0

    def start(self) -> None:
        res = self._as_owner(
            [
                self._bin("pg_ctl"),
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(self.pgdata),
                "-l",
                str(self.log_file),
            ]
        )
        if res.returncode != 0:
            tail = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
            raise ServiceUnavailable(
                f"could not start PostgreSQL: {res.stderr.strip()}\n{tail}",
                code="postgres-start-failed",
            )

    def stop(self) -> bool:
        """Stop the server; False when it was not running."""
        if not self.running():
            return False
        self._as_owner([self._bin("pg_ctl"), "stop", "-m", "fast", "-w", "-D", str(self.pgdata)])
        return True

    def ensure_database(self, dbname: str = DB_NAME, *, fresh: bool = False) -> str:
        """Create ``dbname`` if absent (drop it first when ``fresh``); return its URL."""
        with psycopg.connect(self._conninfo("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)
            ).fetchone()
            if exists and fresh:
                conn.execute(
                    sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(dbname))
                )
                exists = None
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        return self.url(dbname)

    def up(self) -> tuple[str, bool]:
        """Init and start as needed. Returns (url, started_now)."""
        if not self.initialized:
            if self.pgdata.exists() and any(self.pgdata.iterdir()):
                raise ServiceUnavailable(
                    f"{self.pgdata} exists but is not a gridmap cluster; "
                    "remove it or set GRIDMAP_DATA_DIR",
                    code="cluster-broken",
                )
            self.init()
        started = False
        if not self.running():
            self.start()
            started = True
        return self.ensure_database(DB_NAME), started
