"""Staff and users from the command line: assignment, co-mediators, reports, the audit
trail, accounts and tokens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gridmap.cli_common import engine_for, fail
from gridmap.errors import GridmapError
from gridmap.settings import get_settings

user_app = typer.Typer(help="Application users.", no_args_is_help=True)
report_app = typer.Typer(
    help="Staffing shortage report (default) and the supervision report.",
    invoke_without_command=True,
)


# registered in gridmap.cli as `gridmap assign`
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
        with session_scope(engine_for(settings)) as s:
            summary = run_assignment(s, user=user, keep_margin_m=keep_margin_m, quotas=quotas)
    except GridmapError as exc:
        fail(exc)
        return
    typer.echo(json.dumps(summary, ensure_ascii=False, indent=1))


# registered in gridmap.cli as `gridmap co-mediator`
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
        with session_scope(engine_for(get_settings())) as s:
            pid = add_co_mediator(
                s,
                name,
                area,
                phone=phone,
                user="cli",
                categories=categories.split(",") if categories else None,
            )
    except GridmapError as exc:
        fail(exc)
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
        with session_scope(engine_for(get_settings())) as s:
            frame = shortage(s, level=level, scope=area)
    except GridmapError as exc:
        fail(exc)
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
        fail(exc)
        return
    with session_scope(engine_for(settings)) as s:
        rows = supervision_figures(s, area, start, end)
    out = [supervision_row(r, k=settings.small_count_k) for r in rows]
    typer.echo(json.dumps(out, ensure_ascii=False, indent=1))


# registered in gridmap.cli as `gridmap audit`
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
    with session_scope(engine_for(get_settings())) as s:
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
        with session_scope(engine_for(get_settings())) as s:
            add_user(s, name, role, area, pw, person_id=person)
    except GridmapError as exc:
        fail(exc)
    typer.echo(f"user {name} ({role}, scope {area or 'all'}) created; password: {pw}")


# registered in gridmap.cli as `gridmap token`
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
    with session_scope(engine_for(settings)) as s:
        if revoke:
            try:
                revoke_tokens(s, name)
            except GridmapError as exc:
                fail(exc)
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
