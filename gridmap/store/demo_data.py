"""Load the shipped Yichang scenario: 4 real districts, synthetic streets, communities,
household units and roads (``data/``). Used by ``gridmap demo`` and the tests."""

from __future__ import annotations

from collections.abc import Callable

import geopandas as gpd
import pandas as pd
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from gridmap.errors import GridmapError
from gridmap.settings import PROJECT_ROOT
from gridmap.store.bulk import count_rows, load_household_units, load_road_edges
from gridmap.store.db import session_scope
from gridmap.store.imports import import_boundaries
from gridmap.store.models import Area

__all__ = ["DISTRICTS", "SCENARIO", "carer_in", "load_scenario"]

SCENARIO = PROJECT_ROOT / "data" / "scenario"
DISTRICTS = PROJECT_ROOT / "data" / "boundaries" / "yichang_districts.geojson"


def load_scenario(
    engine: Engine, *, reload: bool = False, say: Callable[[str], None] = print
) -> bool:
    """Load everything unless areas exist already (``reload`` forces). True when loaded."""
    with session_scope(engine) as s:
        existing = count_rows(s, Area)
    if existing and not reload:
        say(f"scenario already loaded ({existing} areas); use --reload to load again")
        return False
    steps = [
        (DISTRICTS, "district", False),
        (SCENARIO / "streets.geojson", "street", True),
        (SCENARIO / "communities.geojson", "community", True),
    ]
    for path, level, synthetic in steps:
        report = import_boundaries(
            engine, path, level=level, commit=True, user="demo", synthetic=synthetic
        )
        if not report.ok:
            raise GridmapError(f"{path.name} failed validation", details=report.problems)
        say(f"loaded {report.features:4d} {level:9s} from {path.relative_to(PROJECT_ROOT)}")
    hh_path = next(
        (p for p in (SCENARIO / "households.csv", SCENARIO / "households.csv.gz") if p.exists()),
        None,
    )
    if hh_path is not None:
        units = pd.read_csv(hh_path, dtype={"community": str})
        with session_scope(engine) as s:
            n = load_household_units(s, units, source=hh_path.name, user="demo")
        say(f"loaded {n} household units ({int(units['households'].sum())} households)")
    roads_path = SCENARIO / "roads.geojson"
    if roads_path.exists():
        roads = gpd.read_file(roads_path)
        with session_scope(engine) as s:
            n = load_road_edges(s, roads, source=roads_path.name, user="demo")
        say(f"loaded {n} road edges")
    return True


def carer_in(session: Session, prefix: str) -> int | None:
    """A person caring for at least one care subject under ``prefix`` (the demo and the fuzz
    seed link a volunteer account to them)."""
    return session.execute(
        text(
            "SELECT min(volunteer_id) FROM care_subject "
            "WHERE volunteer_id IS NOT NULL AND grid_code LIKE :p || '%'"
        ),
        {"p": prefix},
    ).scalar()
