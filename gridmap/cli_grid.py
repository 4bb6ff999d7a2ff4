"""``gridmap grid`` (draft grids for communities, publish) and ``gridmap locate`` (bulk)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from gridmap.cli_common import Prefer, engine_for, fail
from gridmap.errors import GridmapError, InvalidInput
from gridmap.settings import Settings, get_settings

grid_app = typer.Typer(
    help="Split communities into grids (a draft) and publish them.", invoke_without_command=True
)


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
    prefer: Prefer = None,
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
        result = grid_communities(
            get_settings(),
            community=community,
            district=district,
            user=user,
            households_per_grid=households_per_grid,
            n_grids=grids,
            prefer=prefer,
        )
    except GridmapError as exc:
        fail(exc)
        return
    q = result.quality
    typer.echo(
        f"draft version {result.version_id} (prefer {prefer or 'balance'}): {result.grids} grids "
        f"in {result.communities} communities; CV median {q['cv_median']} max "
        f"{q['cv_max']}, Polsby-Popper mean {q['pp_mean']}, road alignment "
        f"{q['road_alignment_mean']}"
    )
    typer.echo(f"publish with: gridmap grid publish {result.version_id}")


def grid_communities(
    settings: Settings,
    *,
    community: str | None = None,
    district: str | None = None,
    user: str = "cli",
    households_per_grid: float | None = None,
    n_grids: int | None = None,
    prefer: str | None = None,
) -> Any:
    from gridmap.store.db import session_scope
    from gridmap.store.grids import run_gridding, select_communities

    with session_scope(engine_for(settings)) as s:
        chosen = select_communities(s, community=community, district=district)
        with typer.progressbar(length=len(chosen), label="gridding", file=sys.stderr) as bar:
            return run_gridding(
                s,
                chosen,
                user=user,
                households_per_grid=households_per_grid,
                n_grids=n_grids,
                prefer=prefer,
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
        with session_scope(engine_for(get_settings())) as s:
            vid = publish_draft(s, version, user=user, scope=None)
    except GridmapError as exc:
        fail(exc)
        return
    typer.echo(f"published grid version {vid}")


# -- locate --------------------------------------------------------------------------------------
# registered in gridmap.cli as `gridmap locate`
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
        with session_scope(engine_for(get_settings())) as s:
            result = locate_frame(s, points, crs=crs)
    except GridmapError as exc:
        fail(exc)
        return
    if out:
        result.to_csv(out, index=False)
        counts = result["status"].value_counts().to_dict()
        typer.echo(f"wrote {len(result)} rows to {out}: {counts}")
    else:
        typer.echo(result.to_csv(index=False), nl=False)
