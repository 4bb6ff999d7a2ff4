"""``gridmap import``: boundaries, roads, the synthetic scenario and staff rosters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gridmap.cli_common import engine_for, fail
from gridmap.errors import GridmapError, InvalidInput
from gridmap.settings import Settings, get_settings

import_app = typer.Typer(help="Load boundaries and other data.", no_args_is_help=True)


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
            engine_for(settings),
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
        fail(exc)
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
        with session_scope(engine_for(get_settings())) as s:
            n = load_road_edges(s, roads, source=file.name, user="cli")
    except GridmapError as exc:
        fail(exc)
        return
    typer.echo(f"loaded {n} road edges")


@import_app.command("scenario")
def import_scenario(
    reload: Annotated[bool, typer.Option(help="load again even if areas exist")] = False,
) -> None:
    """Load the Yichang scenario: 4 real districts, synthetic streets, communities, households,
    roads."""
    try:
        load_scenario(get_settings(), reload=reload)
    except GridmapError as exc:
        fail(exc)


def load_scenario(settings: Settings, *, reload: bool = False) -> None:
    from gridmap.store.demo_data import load_scenario

    load_scenario(engine_for(settings), reload=reload, say=typer.echo)


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
        fail(exc)
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
    with session_scope(engine_for(settings)) as s:
        n, m = load_roster(
            s,
            pd.DataFrame(staff.rows),
            pd.DataFrame(subjects.rows) if subjects else None,
            key=settings.id_key(),
            user=user,
        )
    typer.echo(f"imported {n} staff and {m} care subjects")
