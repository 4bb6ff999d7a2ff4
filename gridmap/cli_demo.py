"""``gridmap serve`` and ``gridmap demo`` (the whole service on the Yichang scenario, from an
empty database)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from gridmap.cli_common import engine_for, fail, redact
from gridmap.cli_grid import grid_communities
from gridmap.cli_import import load_scenario
from gridmap.errors import GridmapError
from gridmap.settings import Settings, get_settings

DEMO_USERS = [
    ("admin", "admin", None),
    ("planner", "planner", "420502"),
    ("dispatcher", "dispatcher", None),
    ("leader", "leader", None),
    ("leader_xiling", "leader", "420502"),
    ("manager", "grid_manager", None),
]


# registered in gridmap.cli as `gridmap demo`
def demo(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    no_serve: Annotated[bool, typer.Option(help="prepare only, do not serve")] = False,
) -> None:
    """Start the private PostGIS, load the Yichang scenario, create demo users, serve."""
    from gridmap.store.db import session_scope, up
    from gridmap.store.users import add_user, get_user

    settings = get_settings()
    try:
        url, _ = up(settings)
        typer.echo(f"database: {redact(url)}")
        load_scenario(settings)
        _demo_grids(settings)
        _demo_staff(settings)
        logins = _demo_logins(settings)
        with session_scope(engine_for(settings)) as s:
            for name, role, area in DEMO_USERS:
                if get_user(s, name) is None:
                    add_user(s, name, role, area, logins[name], actor="demo")
    except GridmapError as exc:
        fail(exc)
        return
    typer.echo("\nDemo logins (POST /api/v1/auth/token, or `gridmap token NAME`):")
    for name, role, area in DEMO_USERS:
        typer.echo(f"  {name:14s} {logins[name]:18s} role={role:12s} scope={area or 'all'}")
    base = f"http://{host}:{port}"
    typer.echo(f"\nServing on {base}  (docs: {base}/docs)")
    typer.echo(
        f"  maps: {base}/maps/login   planner: {base}/planner?community=420502001001   "
        f"field report: {base}/report   QGIS/GDAL: OAPIF:{base}/ogc"
    )
    sys.stdout.flush()
    if not no_serve:
        serve(host=host, port=port)


def _demo_grids(settings: Settings) -> None:
    """Generate and publish the scenario's grids once."""
    from sqlalchemy import func, select

    from gridmap.store.db import session_scope
    from gridmap.store.grids import publish_version
    from gridmap.store.models import Grid

    with session_scope(engine_for(settings)) as s:
        current = s.scalar(
            select(func.count())
            .select_from(Grid)
            .where(Grid.valid_from.is_not(None), Grid.valid_to.is_(None))
        )
    if current:
        typer.echo(f"{current} published grids")
        return
    result = grid_communities(settings, user="demo")
    with session_scope(engine_for(settings)) as s:
        publish_version(s, result.version_id, user="demo")
    typer.echo(
        f"published {result.grids} grids in {result.communities} communities "
        f"(CV median {result.quality['cv_median']}, PP mean {result.quality['pp_mean']})"
    )


def _demo_staff(settings: Settings) -> None:
    """A synthetic roster in Yichang's proportions, posted optimally (once)."""
    from sqlalchemy import func, select

    from gridmap.roster_synth import synthetic_roster
    from gridmap.store.db import session_scope
    from gridmap.store.models import Person
    from gridmap.store.staff import (
        add_co_mediator,
        current_grids,
        load_roster,
        run_assignment,
    )

    with session_scope(engine_for(settings)) as s:
        if s.scalar(select(func.count()).select_from(Person)):
            return
        grids = current_grids(s).rename(columns={"lon": "x", "lat": "y"})
        roster = synthetic_roster(grids, seed=0)
        n, m = load_roster(
            s, roster.staff, roster.care_subjects, key=settings.id_key(), user="demo"
        )
        summary = run_assignment(s, user="demo")
        for district, deputy in (
            ("420502", "人大代表 王建华"),
            ("420503", "人大代表 李秀英"),
            ("420504", "人大代表 张德明"),
            ("420505", "人大代表 刘桂兰"),
        ):
            add_co_mediator(s, deputy, district, categories=None, user="demo")
    typer.echo(
        f"synthetic roster: {n} staff, {m} care subjects; {summary['postings']} postings, "
        f"quota coverage {summary['coverage']:.1%}, {summary['care_uncovered']} care "
        "subjects without a carer"
    )


def _demo_logins(settings: Settings) -> dict[str, str]:
    """Demo passwords, generated once and kept in the data folder (0600)."""
    from gridmap.security import new_password

    path = settings.data_dir / "demo-logins.json"
    logins: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for name, _, _ in DEMO_USERS:
        if name not in logins:
            logins[name] = new_password()
            changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(logins, indent=1))
        path.chmod(0o600)
    return logins


# registered in gridmap.cli as `gridmap serve`
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[int, typer.Option(help="worker processes (one per core is typical)")] = 1,
    access_log: Annotated[
        bool,
        typer.Option(
            help="one log line per request (costs ≈ 0.5 ms of CPU each; the audit trail of "
            "writes and restricted reads is kept either way)"
        ),
    ] = True,
) -> None:
    """Serve the API and pages (foreground)."""
    import uvicorn

    from api import create_app

    try:
        application = create_app(get_settings())  # fail early and clearly on a bad setup
    except GridmapError as exc:
        fail(exc)
        return
    if workers > 1:  # each worker builds its own app from the same environment
        from api.serving import run_workers

        run_workers(host, port, workers, access_log=access_log)  # TCP_NODELAY in every worker
    else:
        from api.serving import KEEP_ALIVE_S

        uvicorn.run(
            application,
            host=host,
            port=port,
            log_level="info",
            timeout_keep_alive=KEEP_ALIVE_S,
            access_log=access_log,
        )
