"""What every ``gridmap`` command shares: clear failures and the database engine."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from gridmap.errors import GridmapError
from gridmap.settings import Settings

# the gridding preference (gridmap.gridding_prefs), for `gridmap grid` and `gridmap batch grid`
Prefer = Annotated[
    str | None,
    typer.Option(
        help="where targets conflict: balance (default: the compromise, ~70 % of edges on "
        "roads), streets (edges on roads first) or compact (roads ignored: roundest, most "
        "even); see docs/gridding.md"
    ),
]


def fail(exc: GridmapError) -> None:
    """Print a domain error (and its details) and exit with status 2."""
    typer.secho(f"error: {exc.message}", fg="red", err=True)
    for d in exc.details[:50]:
        typer.echo(f"  - {d.get('message', d)}", err=True)
    raise typer.Exit(2)


def engine_for(settings: Settings) -> Any:
    from gridmap.store.db import database_url, make_engine

    return make_engine(database_url(settings), settings.statement_timeout_ms)


def redact(url: str) -> str:
    """A database URL with its password hidden."""
    if "@" in url and ":" in url.split("@")[0]:
        head, tail = url.rsplit("@", 1)
        return head.rsplit(":", 1)[0] + ":***@" + tail
    return url
