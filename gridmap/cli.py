"""The ``gridmap`` command line: database, imports, users and tokens, serving, the demo."""

from __future__ import annotations

import typer

from gridmap.cli_common import fail, redact
from gridmap.errors import GridmapError
from gridmap.settings import get_settings

app = typer.Typer(
    help="gridmap: grid-based community governance on PostGIS.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(
    help="The database: private PostGIS cluster or GRIDMAP_DATABASE_URL.", no_args_is_help=True
)
app.add_typer(db_app, name="db")


# -- db ------------------------------------------------------------------------------------------
@db_app.command("up")
def db_up() -> None:
    """Create (first time), start and migrate the database. Idempotent."""
    from gridmap.store.db import up

    settings = get_settings()
    try:
        url, started = up(settings)
    except GridmapError as exc:
        fail(exc)
        return
    shown = redact(url)
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
    typer.echo(f"running at {redact(url)} (PostGIS {version})")


# -- serving -------------------------------------------------------------------------------------

from gridmap.cli_batch import batch_app  # noqa: E402
from gridmap.cli_demo import demo, serve  # noqa: E402
from gridmap.cli_grid import grid_app, locate_cmd  # noqa: E402
from gridmap.cli_import import import_app  # noqa: E402
from gridmap.cli_people import (  # noqa: E402
    assign_cmd,
    audit_cmd,
    co_mediator_cmd,
    report_app,
    token_cmd,
    user_app,
)

app.add_typer(import_app, name="import")
app.add_typer(user_app, name="user")
app.add_typer(grid_app, name="grid")
app.add_typer(report_app, name="report")
app.add_typer(batch_app, name="batch")
app.command("locate")(locate_cmd)
app.command("assign")(assign_cmd)
app.command("co-mediator")(co_mediator_cmd)
app.command("audit")(audit_cmd)
app.command("token")(token_cmd)
app.command("serve")(serve)
app.command("demo")(demo)

if __name__ == "__main__":
    app()
