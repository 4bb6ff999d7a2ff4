"""Fuzz the live API with schemathesis: every operation, every check, authenticated.

    .venv/bin/python scripts/fuzz_api.py --minutes 10          # the full run
    .venv/bin/python scripts/fuzz_api.py --seconds 40          # the CI run (tests/api)

It seeds a small demo-like database (four real-shaped communities in two districts, grids,
a synthetic roster with care subjects, incidents at several stages, and for every role except
admin two users scoped to different districts), serves the app on a loopback port and runs
schemathesis against the live ``/openapi.json`` in two parts:

1. as the admin (``-H "Authorization: Bearer …"``), about two thirds of the time: every
   operation reachable, all checks;
2. as the scoped users (a Web Fuzzing Commons auth file, the users of district A and B as
   *peers*), the rest of the time: all checks, and the object-level authorisation check replays
   every object one user read as the users of the other district, who must not get it.

Without ``--database-url`` a fresh database ``gridmap_fuzz`` is created on the private cluster
(``GRIDMAP_DATA_DIR``); with it, the given database (migrated here if needed) must hold no
areas yet, and is filled.
Prints schemathesis' summary line of each part and the number of 5xx answers the server gave
(from its access log); exits 1 when there was any 5xx or any check failure.

Semantic 422s (``positive_data_acceptance``): schema-valid input the API still refuses for a
stated reason — a point outside every grid, since ≥ until, a purpose of four spaces, an id
that does not exist (404) or a state change that conflicts (409) — is declared as an expected
status of that check rather than weakening the API (see ``CHECKS`` below).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

A, B = "420502", "420503"  # 西陵区, 伍家岗区
COMMUNITIES_PER_DISTRICT = 2
ROLES = ("planner", "dispatcher", "leader", "grid_manager", "volunteer")
UVICORN = [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory"]
UVICORN += ["--host", "127.0.0.1"]

# How the checks are configured, and why:
# - positive_data_acceptance: schema-valid requests the API still refuses for a stated reason
#   are expected: 404 (an id that does not exist, or lies outside the caller's scope), 409 (a
#   state conflict: an illegal transition, a mediator just taken), 422 (semantic refusals a
#   JSON schema cannot express: a point outside every grid, since >= until, a purpose of four
#   spaces), 405 (edits to a read-only OGC collection: only draft collections take them),
#   429 (login throttling), 401/403 (wrong password; a role that may not do this).
# - allow_header_conformance on the OGC items paths: ``Allow`` is per collection on purpose
#   (OGC API - Features Part 4: POST/PUT/PATCH/DELETE appear only for draft collections the
#   caller may edit), while the OpenAPI document lists every method the path has anywhere.
#   The stateful phase does not apply per-operation check settings, so there the check is off
#   for all operations (the other phases still run it everywhere else).
# Every check is enabled here rather than with ``--checks all`` on the command line: checks
# named on the command line override the per-operation and per-phase settings below.
CHECKS = """
[checks]
enabled = true

[checks.positive_data_acceptance]
expected-statuses = ["2XX", 401, 403, 404, 405, 409, 413, 422, 429]

[[operations]]
include-path-regex = "^/ogc/collections/[^/]+/items"
checks.allow_header_conformance.enabled = false

[phases.stateful.checks.allow_header_conformance]
enabled = false
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _database(url: str | None) -> str:
    from gridmap.settings import Settings
    from gridmap.store.cluster import PrivateCluster, normalize_url
    from gridmap.store.db import migrate

    if url:
        url = normalize_url(url)
    else:
        url = PrivateCluster(Settings().data_dir).ensure_database("gridmap_fuzz", fresh=True)
    migrate(url)
    return url


def _subset(full: bool = False) -> tuple[Any, Any]:
    """Streets and communities (GeoDataFrames) of the first communities of districts A and B,
    or (``full``) the demo's whole city: 20 streets, 121 communities."""
    import geopandas as gpd

    from gridmap.store.demo_data import SCENARIO

    comm = gpd.read_file(SCENARIO / "communities.geojson").sort_values("code")
    if full:
        return gpd.read_file(SCENARIO / "streets.geojson"), comm
    comm = comm[comm["code"].str[:6].isin([A, B])]
    comm = comm.groupby(comm["code"].str[:6]).head(COMMUNITIES_PER_DISTRICT)
    streets = gpd.read_file(SCENARIO / "streets.geojson")
    return streets[streets["code"].isin(comm["parent"])], comm


def seed(url: str, secret: str, tmp: Path, full: bool = False) -> dict[str, str]:
    """Fill the database; returns user name → bearer token."""
    import geopandas as gpd
    import pandas as pd

    from gridmap.errors import ConflictError
    from gridmap.roster_synth import synthetic_roster
    from gridmap.security import TokenClaims, issue_token
    from gridmap.settings import Settings
    from gridmap.store.areas import upsert_areas
    from gridmap.store.bulk import count_rows, load_household_units, load_road_edges
    from gridmap.store.db import make_engine, session_scope
    from gridmap.store.demo_data import DISTRICTS, SCENARIO, carer_in
    from gridmap.store.dispatching import dispatch
    from gridmap.store.grids import publish_version, run_gridding, select_communities
    from gridmap.store.imports import import_boundaries
    from gridmap.store.incidents import create_incident, transition
    from gridmap.store.models import Area
    from gridmap.store.staff import current_grids, load_roster, run_assignment
    from gridmap.store.users import add_user

    engine = make_engine(url)
    settings = Settings(database_url=url, secret_key=secret, data_dir=tmp)
    with session_scope(engine) as s:
        if count_rows(s, Area):
            raise SystemExit("fuzz: the database is not empty; give a fresh one")
    report = import_boundaries(engine, DISTRICTS, level="district", commit=True, user="fuzz")
    if not report.ok:
        raise SystemExit(f"fuzz: districts: {report.problems[:3]}")
    streets, comm = _subset(full)
    codes = list(comm["code"])
    units = pd.read_csv(SCENARIO / "households.csv", dtype={"community": str})
    roads = gpd.read_file(SCENARIO / "roads.geojson")
    with session_scope(engine) as s:
        # a subset does not cover its districts: loaded without the coverage check
        upsert_areas(s, streets, level="street", source="fuzz", user="fuzz")
        upsert_areas(s, comm, level="community", source="fuzz", user="fuzz")
        load_household_units(s, units[units["community"].isin(codes)], source="fuzz", user="fuzz")
        minx, miny, maxx, maxy = comm.total_bounds
        load_road_edges(s, roads.cx[minx:maxx, miny:maxy], source="fuzz", user="fuzz")
        result = run_gridding(s, select_communities(s), user="fuzz")
        publish_version(s, result.version_id, user="fuzz")
        grids = current_grids(s)
        roster = synthetic_roster(grids.rename(columns={"lon": "x", "lat": "y"}), seed=1)
        load_roster(s, roster.staff, roster.care_subjects, key=settings.id_key(), user="fuzz")
        run_assignment(s, user="fuzz")
        for i, g in enumerate(grids.itertuples()):
            inc = create_incident(
                s,
                category="邻里纠纷",
                x=g.lon,
                y=g.lat,
                description="fuzz seed",
                address="某路1号",
                contact="13800000000",
                reporter="fuzz",
            )
            if i % 3 == 0:
                continue  # left in the queue
            try:
                with s.begin_nested():
                    dispatch(s, inc["public_id"], actor="fuzz")
            except ConflictError:  # every nearby mediator already busy: left in the queue
                continue
            if i % 3 == 2:
                transition(s, inc["id"], "accepted", actor="fuzz")
        users: list[tuple[str, str, str | None, int | None]] = [("admin", "admin", None, None)]
        for tag, area in (("a", A), ("b", B)):
            for role in ROLES:
                person = carer_in(s, area) if role == "volunteer" else None
                users.append((f"{role}_{tag}", role, area, person))
        for name, role, area, person in users:
            add_user(s, name, role, area, None, actor="fuzz", person_id=person)
    return {
        name: issue_token(
            TokenClaims(name, role, area, 0), secret, settings.token_audience, 24 * 60
        )
        for name, role, area, _ in users
    }


def serve(url: str, secret: str, tmp: Path, port: int) -> subprocess.Popen[bytes]:
    """The app under uvicorn on 127.0.0.1:port; access log and tracebacks to tmp/server.log."""
    env = {
        **os.environ,
        "GRIDMAP_DATABASE_URL": url,
        "GRIDMAP_SECRET_KEY": secret,
        "GRIDMAP_DATA_DIR": str(tmp),
    }
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        [*UVICORN, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"fuzz: server exited: {(tmp / 'server.log').read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("fuzz: server did not start")


def schemathesis(
    base: str, tmp: Path, seconds: int, name: str, *, header: str | None, wfc: list[str] | None
) -> tuple[int, str]:
    """One schemathesis run; returns (exit code, summary line)."""
    config = tmp / f"{name}.toml"
    text = CHECKS
    if wfc is not None:
        text += f'\n[auth.wfc]\npath = "{tmp / "wfc.json"}"\npeers = {json.dumps(wfc)}\n'
    config.write_text(text)
    cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run"]
    cmd += [f"{base}/openapi.json", "--max-time", str(seconds)]
    # one worker: with two, schemathesis' coverage phase hit CPython's "AST constructor
    # recursion depth mismatch" (regex compilation in threads), an error of the tool
    cmd += ["--workers", "1", "--request-timeout", "60", "--no-color"]
    cmd += ["--report", "junit", "--report-junit-path", str(tmp / f"{name}.xml")]
    cmd += ["--generation-database", "none"]
    if header:
        cmd += ["-H", header]
    shown = [
        c if not c.startswith("Authorization") else "Authorization: Bearer <admin>" for c in cmd
    ]
    print("$ " + " ".join(["schemathesis", *shown[3:]]))
    out = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
    (tmp / f"{name}.out").write_text(out.stdout + out.stderr)
    lines = [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]
    summary = next(
        (ln for ln in reversed(lines) if re.search(r"\b(passed|failed|errors?)\b.* in ", ln)),
        lines[-1] if lines else "(no output)",
    )
    return out.returncode, summary


def server_errors(tmp: Path) -> list[str]:
    """Access-log lines of 5xx answers."""
    log = (tmp / "server.log").read_text(errors="replace")
    return [ln for ln in log.splitlines() if re.search(r'" 5\d\d\b', ln)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="total fuzzing time")
    ap.add_argument("--seconds", type=float, help="total fuzzing time (overrides --minutes)")
    ap.add_argument("--database-url", help="an empty database to fill (default: gridmap_fuzz)")
    ap.add_argument("--port", type=int, default=0, help="loopback port (default: any free)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, reports)")
    ap.add_argument(
        "--full",
        action="store_true",
        help="seed the demo's whole city (121 communities, ~1,120 grids) instead of 4 communities",
    )
    args = ap.parse_args(argv)
    total = int(args.seconds if args.seconds is not None else args.minutes * 60)
    tmp = Path(tempfile.mkdtemp(prefix="gridmap-fuzz-"))
    secret = secrets.token_hex(32)
    url = _database(args.database_url)
    t0 = time.monotonic()
    tokens = seed(url, secret, tmp, full=args.full)
    print(f"fuzz: seeded in {time.monotonic() - t0:.0f} s; work folder {tmp}")
    wfc = [
        {"name": n, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {t}"}]}
        for n, t in tokens.items()
        if n != "admin"
    ]
    (tmp / "wfc.json").write_text(json.dumps({"auth": wfc}))
    port = args.port or _free_port()
    proc = serve(url, secret, tmp, port)
    base = f"http://127.0.0.1:{port}"
    failed = False
    try:
        admin_s = max(10, total * 2 // 3)
        code, line = schemathesis(
            base, tmp, admin_s, "admin", header=f"Authorization: Bearer {tokens['admin']}", wfc=None
        )
        print(f"schemathesis (admin, {admin_s} s): {line}")
        failed |= code != 0
        peers = [w["name"] for w in wfc]
        code, line = schemathesis(
            base, tmp, max(10, total - admin_s), "peers", header=None, wfc=peers
        )
        print(f"schemathesis (scoped peers, {max(10, total - admin_s)} s): {line}")
        failed |= code != 0
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    errors = server_errors(tmp)
    print(f"server errors (5xx): {len(errors)}")
    for ln in errors[:20]:
        print("  " + ln)
    if failed or errors:
        print(f"fuzz: see {tmp} (admin.out, peers.out, server.log)")
    elif not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed or errors else 0


if __name__ == "__main__":
    sys.exit(main())
