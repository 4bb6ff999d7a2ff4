"""The ``gridmap`` command line: database, imports, users and tokens, serving, the demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from gridmap.errors import GridmapError, InvalidInput
from gridmap.settings import Settings, get_settings

app = typer.Typer(
    help="gridmap: grid-based community governance on PostGIS.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(
    help="The database: private PostGIS cluster or GRIDMAP_DATABASE_URL.", no_args_is_help=True
)
import_app = typer.Typer(help="Load boundaries and other data.", no_args_is_help=True)
user_app = typer.Typer(help="Application users.", no_args_is_help=True)
grid_app = typer.Typer(
    help="Split communities into grids (a draft) and publish them.", invoke_without_command=True
)
app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
app.add_typer(user_app, name="user")
app.add_typer(grid_app, name="grid")
report_app = typer.Typer(
    help="Staffing shortage report (default) and the supervision report.",
    invoke_without_command=True,
)
app.add_typer(report_app, name="report")

DEMO_USERS = [
    ("admin", "admin", None),
    ("planner", "planner", "420502"),
    ("dispatcher", "dispatcher", None),
    ("leader", "leader", None),
    ("leader_xiling", "leader", "420502"),
    ("manager", "grid_manager", None),
]


def _fail(exc: GridmapError) -> None:
    typer.secho(f"error: {exc.message}", fg="red", err=True)
    for d in exc.details[:50]:
        typer.echo(f"  - {d.get('message', d)}", err=True)
    raise typer.Exit(2)


def _engine(settings: Settings) -> Any:
    from gridmap.store.db import database_url, make_engine

    return make_engine(database_url(settings), settings.statement_timeout_ms)


# -- db ------------------------------------------------------------------------------------------
@db_app.command("up")
def db_up() -> None:
    """Create (first time), start and migrate the database. Idempotent."""
    from gridmap.store.db import up

    settings = get_settings()
    try:
        url, started = up(settings)
    except GridmapError as exc:
        _fail(exc)
        return
    shown = _redact(url)
    if settings.database_url:
        typer.echo(f"using external database {shown} (migrated)")
    elif started:
        typer.echo(f"started private PostGIS at {shown}")
    else:
        typer.echo(f"private PostGIS already running at {shown}")


@db_app.command("down")
def db_down() -> None:
    """Stop the private cluster (nothing to do for an external database)."""
    from gridmap.store.cluster import PrivateCluster

    settings = get_settings()
    if settings.database_url:
        typer.echo("external database in use: nothing to stop")
        return
    stopped = PrivateCluster(settings.data_dir, settings.pg_bin).stop()
    typer.echo("stopped" if stopped else "not running")


@db_app.command("status")
def db_status() -> None:
    """Where the database is and whether it answers; exit 1 when it does not."""
    from gridmap.store.cluster import PrivateCluster
    from gridmap.store.db import database_url, make_engine, ping

    settings = get_settings()
    if not settings.database_url:
        cluster = PrivateCluster(settings.data_dir, settings.pg_bin)
        if not cluster.initialized or not cluster.running():
            typer.echo(
                f"private cluster in {cluster.root}: "
                f"{'stopped' if cluster.initialized else 'not created'}"
            )
            raise typer.Exit(1)
    try:
        url = database_url(settings)
        version = ping(make_engine(url))
    except Exception as exc:
        typer.echo(f"database not answering: {exc}")
        raise typer.Exit(1) from exc
    typer.echo(f"running at {_redact(url)} (PostGIS {version})")


def _redact(url: str) -> str:
    if "@" in url and ":" in url.split("@")[0]:
        head, tail = url.rsplit("@", 1)
        return head.rsplit(":", 1)[0] + ":***@" + tail
    return url


# -- import --------------------------------------------------------------------------------------
@import_app.command("boundaries")
def import_boundaries_cmd(
    file: Annotated[Path, typer.Argument(help="GeoJSON, GeoPackage, .shp or zipped Shapefile")],
    level: Annotated[str, typer.Option(help="district | street | community")],
    crs: Annotated[str | None, typer.Option(help="override: EPSG:n, gcj02, bd09, wgs84")] = None,
    encoding: Annotated[str | None, typer.Option(help="attribute encoding, e.g. gbk")] = None,
    layer: Annotated[str | None, typer.Option(help="layer name (GeoPackage)")] = None,
    code_field: Annotated[str | None, typer.Option(help="column holding the code")] = None,
    name_field: Annotated[str | None, typer.Option(help="column holding the name")] = None,
    parent_field: Annotated[str | None, typer.Option(help="column holding the parent")] = None,
    commit: Annotated[bool, typer.Option(help="write to the database (default: dry run)")] = False,
    repair: Annotated[bool, typer.Option(help="apply make_valid to invalid features")] = False,
    synthetic: Annotated[bool, typer.Option(help="mark the areas as synthetic")] = False,
    user: Annotated[str, typer.Option(help="who is importing (audit)")] = "cli",
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Validate a boundary file and, with --commit, load it as one generation.

    Exit 0: valid (and committed with --commit); 1: problems found, nothing written; 2: unusable
    input (unreadable file, unknown field, no database).
    """
    from gridmap.boundaries import FieldMap
    from gridmap.store.imports import import_boundaries

    settings = get_settings()
    try:
        report = import_boundaries(
            _engine(settings),
            file,
            level=level,
            crs=crs,
            encoding=encoding,
            layer=layer,
            fields=FieldMap(code=code_field, name=name_field, parent=parent_field),
            commit=commit,
            repair=repair,
            user=user,
            synthetic=synthetic,
            **settings.geometry_caps(),
        )
    except GridmapError as exc:
        _fail(exc)
        return
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=1))
    else:
        typer.echo(f"{report.source}: {report.features} {level} feature(s)")
        for r in report.repairs:
            typer.echo(f"  repaired {r}")
        for p in report.problems:
            typer.secho(f"  ✗ [{p['kind']}] {p['message']}", fg="red")
        if report.ok:
            done = (
                f"committed as generation {report.generation_id}"
                if report.committed
                else "dry run: nothing written (use --commit)"
            )
            typer.echo(f"  ✓ valid; {done}")
        else:
            typer.secho(f"  {len(report.problems)} problem(s); nothing written", fg="red")
    if not report.ok:
        raise typer.Exit(1)


@import_app.command("roads")
def import_roads(
    file: Annotated[
        Path,
        typer.Argument(help="OpenStreetMap .osm.pbf, or GeoJSON edges with source/target node ids"),
    ],
    network_type: Annotated[
        str, typer.Option(help="driving | walking | cycling | all")
    ] = "driving",
    commit: Annotated[bool, typer.Option(help="replace road_edge (default: dry run)")] = False,
) -> None:
    """Load a road network for dispatch routing (pgRouting edges: cost in seconds, one-way
    streets as negative reverse cost)."""
    import geopandas as gpd

    from gridmap.store.bulk import load_road_edges
    from gridmap.store.db import session_scope

    try:
        if not file.exists():
            raise InvalidInput(f"file not found: {file}", code="file-not-found")
        if file.name.endswith(".pbf"):
            from gridmap.osm_roads import read_osm_roads

            roads = read_osm_roads(file, network_type=network_type)
        else:
            try:
                roads = gpd.read_file(file)
            except Exception as exc:  # unreadable vector file
                raise InvalidInput(f"cannot read {file}: {exc}", code="unreadable-file") from exc
        if roads.empty:
            raise InvalidInput(f"{file} holds no road edges", code="no-roads")
        oneway = int((~roads["reverse_ok"]).sum()) if "reverse_ok" in roads.columns else 0
        typer.echo(
            f"{file.name}: {len(roads)} edges, {oneway} one-way, "
            f"{roads['length_m'].sum() / 1000:.1f} km"
            if "length_m" in roads.columns
            else f"{file.name}: {len(roads)} edges"
        )
        if not commit:
            typer.echo("dry run: nothing written (use --commit)")
            return
        with session_scope(_engine(get_settings())) as s:
            n = load_road_edges(s, roads, source=file.name, user="cli")
    except GridmapError as exc:
        _fail(exc)
        return
    typer.echo(f"loaded {n} road edges")


@import_app.command("scenario")
def import_scenario(
    reload: Annotated[bool, typer.Option(help="load again even if areas exist")] = False,
) -> None:
    """Load the Yichang scenario: 4 real districts, synthetic streets, communities, households,
    roads."""
    try:
        _load_scenario(get_settings(), reload=reload)
    except GridmapError as exc:
        _fail(exc)


def _load_scenario(settings: Settings, *, reload: bool = False) -> None:
    from gridmap.store.demo_data import load_scenario

    load_scenario(_engine(settings), reload=reload, say=typer.echo)


# -- grids ---------------------------------------------------------------------------------------
@grid_app.callback()
def grid(
    ctx: typer.Context,
    community: Annotated[str | None, typer.Option(help="one community code")] = None,
    district: Annotated[str | None, typer.Option(help="every community of a district")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every community")] = False,
    households_per_grid: Annotated[
        float | None, typer.Option(help="target households per grid (default 250)")
    ] = None,
    grids: Annotated[int | None, typer.Option(help="exact number of grids (one community)")] = None,
    user: Annotated[str, typer.Option(help="who is gridding (audit)")] = "cli",
) -> None:
    """Grid the chosen communities into a new draft version (see `gridmap grid publish`)."""
    if ctx.invoked_subcommand:
        return
    if sum([community is not None, district is not None, all_]) != 1:
        typer.secho(
            "error: name exactly one of --community, --district or --all", fg="red", err=True
        )
        raise typer.Exit(2)
    try:
        result = _grid(
            get_settings(),
            community=community,
            district=district,
            user=user,
            households_per_grid=households_per_grid,
            n_grids=grids,
        )
    except GridmapError as exc:
        _fail(exc)
        return
    q = result.quality
    typer.echo(
        f"draft version {result.version_id}: {result.grids} grids in "
        f"{result.communities} communities; CV median {q['cv_median']} max "
        f"{q['cv_max']}, Polsby-Popper mean {q['pp_mean']}, road alignment "
        f"{q['road_alignment_mean']}"
    )
    typer.echo(f"publish with: gridmap grid publish {result.version_id}")


def _grid(
    settings: Settings,
    *,
    community: str | None = None,
    district: str | None = None,
    user: str = "cli",
    households_per_grid: float | None = None,
    n_grids: int | None = None,
) -> Any:
    from gridmap.store.db import session_scope
    from gridmap.store.grids import run_gridding, select_communities

    with session_scope(_engine(settings)) as s:
        chosen = select_communities(s, community=community, district=district)
        with typer.progressbar(length=len(chosen), label="gridding", file=sys.stderr) as bar:
            return run_gridding(
                s,
                chosen,
                user=user,
                households_per_grid=households_per_grid,
                n_grids=n_grids,
                progress=lambda _code: bar.update(1),
            )


@grid_app.command("publish")
def grid_publish(
    version: Annotated[int | None, typer.Argument(help="draft version (default: latest)")] = None,
    user: Annotated[str, typer.Option(help="who is publishing (audit)")] = "cli",
) -> None:
    """Make a draft the current grids of its communities."""
    from gridmap.store.db import session_scope
    from gridmap.store.history import publish_draft

    try:
        with session_scope(_engine(get_settings())) as s:
            vid = publish_draft(s, version, user=user, scope=None)
    except GridmapError as exc:
        _fail(exc)
        return
    typer.echo(f"published grid version {vid}")


# -- locate --------------------------------------------------------------------------------------
@app.command("locate")
def locate_cmd(
    file: Annotated[Path, typer.Argument(help="CSV (lon,lat[,id]) or GeoJSON points")],
    crs: Annotated[str, typer.Option(help="wgs84 | gcj02 | bd09 | EPSG:n")] = "wgs84",
    out: Annotated[Path | None, typer.Option(help="write CSV here (default: stdout)")] = None,
) -> None:
    """Locate many points to their grids (same rule as the API; ties: lowest grid code)."""
    from gridmap.store.db import session_scope
    from gridmap.store.locating import locate_frame, read_points

    try:
        if not file.exists():
            raise InvalidInput(f"file not found: {file}", code="file-not-found")
        points = read_points(
            file.read_bytes(), "json" if file.suffix in (".json", ".geojson") else "csv"
        )
        with session_scope(_engine(get_settings())) as s:
            result = locate_frame(s, points, crs=crs)
    except GridmapError as exc:
        _fail(exc)
        return
    if out:
        result.to_csv(out, index=False)
        counts = result["status"].value_counts().to_dict()
        typer.echo(f"wrote {len(result)} rows to {out}: {counts}")
    else:
        typer.echo(result.to_csv(index=False), nl=False)


# -- staffing ------------------------------------------------------------------------------------
@import_app.command("roster")
def import_roster(
    file: Annotated[Path, typer.Argument(help="staff roster: .xlsx or .csv (UTF-8 or GBK)")],
    care: Annotated[Path | None, typer.Option(help="care-subject roster (.xlsx/.csv)")] = None,
    encoding: Annotated[str | None, typer.Option(help="CSV encoding, e.g. gbk")] = None,
    coord_sys: Annotated[str | None, typer.Option(help="wgs84 | gcj02 | bd09")] = None,
    commit: Annotated[bool, typer.Option(help="write (default: dry run)")] = False,
    user: Annotated[str, typer.Option(help="who is importing (audit)")] = "cli",
) -> None:
    """Check a roster row by row; with --commit import it all or nothing."""
    import pandas as pd

    from gridmap.rosters import read_roster
    from gridmap.store.db import session_scope
    from gridmap.store.staff import load_roster

    settings = get_settings()
    try:
        staff = read_roster(file, kind="staff", encoding=encoding, coord_sys=coord_sys)
        subjects = (
            read_roster(care, kind="care_subjects", encoding=encoding, coord_sys=coord_sys)
            if care
            else None
        )
    except GridmapError as exc:
        _fail(exc)
        return
    typer.echo(staff.summary())
    if subjects is not None:
        typer.echo(subjects.summary())
    if not staff.ok or (subjects is not None and not subjects.ok):
        typer.secho("problems found: nothing written", fg="red")
        raise typer.Exit(1)
    if not commit:
        typer.echo("dry run: nothing written (use --commit)")
        return
    with session_scope(_engine(settings)) as s:
        n, m = load_roster(
            s,
            pd.DataFrame(staff.rows),
            pd.DataFrame(subjects.rows) if subjects else None,
            key=settings.id_key(),
            user=user,
        )
    typer.echo(f"imported {n} staff and {m} care subjects")


@app.command("assign")
def assign_cmd(
    keep_margin_m: Annotated[
        float, typer.Option(help="move a person only if it saves more metres than this")
    ] = 500.0,
    user: Annotated[str, typer.Option(help="who is assigning (audit)")] = "cli",
) -> None:
    """Post staff to grids and volunteers to care subjects, optimally (min-cost flow)."""
    from gridmap.staffing import Quotas
    from gridmap.store.db import session_scope
    from gridmap.store.staff import run_assignment

    settings = get_settings()
    try:
        quotas = Quotas.from_config(settings.quotas_config())
        with session_scope(_engine(settings)) as s:
            summary = run_assignment(s, user=user, keep_margin_m=keep_margin_m, quotas=quotas)
    except GridmapError as exc:
        _fail(exc)
        return
    typer.echo(json.dumps(summary, ensure_ascii=False, indent=1))


@app.command("co-mediator")
def co_mediator_cmd(
    name: str,
    area: Annotated[str, typer.Option(help="area code they serve (district/street/community)")],
    categories: Annotated[
        str | None, typer.Option(help="comma-separated services, e.g. 婚姻家庭,邻里纠纷")
    ] = None,
    phone: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Register an invited co-mediator (e.g. a local people's congress deputy)."""
    from gridmap.store.db import session_scope
    from gridmap.store.staff import add_co_mediator

    try:
        with session_scope(_engine(get_settings())) as s:
            pid = add_co_mediator(
                s,
                name,
                area,
                phone=phone,
                user="cli",
                categories=categories.split(",") if categories else None,
            )
    except GridmapError as exc:
        _fail(exc)
        return
    typer.echo(f"co-mediator {name} registered (person {pid}) for {area}")


@report_app.callback()
def report_cmd(
    ctx: typer.Context,
    level: Annotated[str, typer.Option(help="grid | community | street | district")] = "district",
    area: Annotated[str | None, typer.Option(help="limit to an area code")] = None,
    out: Annotated[Path | None, typer.Option(help="write .csv, .xlsx or .json")] = None,
) -> None:
    """Staffing shortage and compliance report (quotas, 1:5 care ratio)."""
    if ctx.invoked_subcommand:
        return
    from gridmap.store.db import session_scope
    from gridmap.store.staff import shortage

    try:
        with session_scope(_engine(get_settings())) as s:
            frame = shortage(s, level=level, scope=area)
    except GridmapError as exc:
        _fail(exc)
        return
    if out is None:
        typer.echo(frame.to_string(index=False))
    elif out.suffix == ".csv":
        frame.to_csv(out, index=False, encoding="utf-8-sig")
    elif out.suffix == ".xlsx":
        frame.to_excel(out, index=False)
    elif out.suffix == ".json":
        out.write_text(frame.to_json(orient="records", force_ascii=False), encoding="utf-8")
    else:
        typer.secho("error: --out must end in .csv, .xlsx or .json", fg="red", err=True)
        raise typer.Exit(2)
    if out is not None:
        typer.echo(f"wrote {out}")


@report_app.command("supervision")
def report_supervision(
    area: Annotated[str, typer.Option(help="area code (default: whole city)")] = "",
    since: Annotated[str | None, typer.Option(help="ISO date/time (default: 30 days ago)")] = None,
    until: Annotated[str | None, typer.Option(help="ISO date/time (default: now)")] = None,
) -> None:
    """Per grid manager: actions, incidents handled, response times, open caseload (JSON,
    with the same small-count suppression as the API)."""
    from datetime import datetime

    from gridmap.store.db import session_scope
    from gridmap.store.supervision import supervision_figures
    from gridmap.supervision import supervision_row, window

    settings = get_settings()
    try:
        start, end = window(
            datetime.fromisoformat(since) if since else None,
            datetime.fromisoformat(until) if until else None,
        )
    except ValueError:
        typer.secho("error: --since/--until must be ISO dates", fg="red", err=True)
        raise typer.Exit(2) from None
    except GridmapError as exc:
        _fail(exc)
        return
    with session_scope(_engine(settings)) as s:
        rows = supervision_figures(s, area, start, end)
    out = [supervision_row(r, k=settings.small_count_k) for r in rows]
    typer.echo(json.dumps(out, ensure_ascii=False, indent=1))


@app.command("audit")
def audit_cmd(
    actor: Annotated[str | None, typer.Option(help="only this user")] = None,
    action: Annotated[str | None, typer.Option(help="action prefix, e.g. incident.")] = None,
    since: Annotated[str | None, typer.Option(help="ISO date/time")] = None,
    limit: Annotated[int, typer.Option()] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Query the audit trail (append-only): who did what when."""
    from datetime import datetime

    from gridmap.store.audit import query_audit
    from gridmap.store.db import session_scope

    try:
        start = datetime.fromisoformat(since) if since else None
    except ValueError:
        typer.secho(f"error: --since {since!r} is not an ISO date", fg="red", err=True)
        raise typer.Exit(2) from None
    with session_scope(_engine(get_settings())) as s:
        rows = query_audit(s, actor=actor, action=action, since=start, limit=limit)
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=1, default=str))
        return
    for r in rows:
        what = f"{r['object_type'] or ''}:{r['object_id'] or ''}"
        why = f"  purpose={r['purpose']}" if r["purpose"] else ""
        typer.echo(f"{r['at'][:19]}  {r['actor']:<12} {r['action']:<22} {what}{why}")


# -- users ---------------------------------------------------------------------------------------
@user_app.command("add")
def user_add(
    name: str,
    role: Annotated[
        str, typer.Option(help="admin|planner|dispatcher|leader|grid_manager|volunteer")
    ],
    area: Annotated[str | None, typer.Option(help="area code of the user's scope")] = None,
    password: Annotated[
        str | None,
        typer.Option(help="password for POST /api/v1/auth/token (default: generated and printed)"),
    ] = None,
    person: Annotated[
        int | None,
        typer.Option(help="roster person id behind the account (volunteers: own care subjects)"),
    ] = None,
) -> None:
    """Create a user with a role and an area scope."""
    from gridmap.security import new_password
    from gridmap.store.db import session_scope
    from gridmap.store.users import add_user

    pw = password or new_password()
    try:
        with session_scope(_engine(get_settings())) as s:
            add_user(s, name, role, area, pw, person_id=person)
    except GridmapError as exc:
        _fail(exc)
    typer.echo(f"user {name} ({role}, scope {area or 'all'}) created; password: {pw}")


@app.command("token")
def token_cmd(
    name: str,
    ttl_minutes: Annotated[
        int | None, typer.Option(help="lifetime (default from settings)")
    ] = None,
    revoke: Annotated[bool, typer.Option(help="revoke all earlier tokens first")] = False,
) -> None:
    """Print a bearer token for user NAME (for scripts)."""
    from gridmap.security import TokenClaims, issue_token
    from gridmap.store.db import session_scope
    from gridmap.store.users import get_user, revoke_tokens

    settings = get_settings()
    with session_scope(_engine(settings)) as s:
        if revoke:
            try:
                revoke_tokens(s, name)
            except GridmapError as exc:
                _fail(exc)
        user = get_user(s, name)
        if user is None:
            typer.secho(f"error: no user {name!r}", fg="red", err=True)
            raise typer.Exit(2)
        claims = TokenClaims(user.name, user.role, user.area_code, user.token_version)
    typer.echo(
        issue_token(
            claims,
            settings.signing_key(),
            settings.token_audience,
            ttl_minutes or settings.token_ttl_minutes,
        )
    )


# -- serving -------------------------------------------------------------------------------------
@app.command("serve")
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
        _fail(exc)
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


@app.command("demo")
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
        typer.echo(f"database: {_redact(url)}")
        _load_scenario(settings)
        _demo_grids(settings)
        _demo_staff(settings)
        logins = _demo_logins(settings)
        with session_scope(_engine(settings)) as s:
            for name, role, area in DEMO_USERS:
                if get_user(s, name) is None:
                    add_user(s, name, role, area, logins[name], actor="demo")
    except GridmapError as exc:
        _fail(exc)
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

    with session_scope(_engine(settings)) as s:
        current = s.scalar(
            select(func.count())
            .select_from(Grid)
            .where(Grid.valid_from.is_not(None), Grid.valid_to.is_(None))
        )
    if current:
        typer.echo(f"{current} published grids")
        return
    result = _grid(settings, user="demo")
    with session_scope(_engine(settings)) as s:
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

    with session_scope(_engine(settings)) as s:
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


from gridmap.cli_batch import batch_app  # noqa: E402  (its commands import this module lazily)

app.add_typer(batch_app, name="batch")

if __name__ == "__main__":
    app()
