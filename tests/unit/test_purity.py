"""Pure domain modules must not pull in the web framework, the ORM or Folium."""

from __future__ import annotations

import subprocess
import sys

import pytest

PURE = [
    "gridmap.crs",
    "gridmap.errors",
    "gridmap.boundaries",
    "gridmap.boundary_io",
    "gridmap.topology",
    "gridmap.permissions",
    "gridmap.security",
    "gridmap.staffing",
    "gridmap.staffing_model",
    "gridmap.staffing_report",
    "gridmap.rosters",
    "gridmap.idnumbers",
    "gridmap.roster_synth",
    "gridmap.dispatch",
    "gridmap.roads",
    "gridmap.lifecycle",
    "gridmap.locate",
    "gridmap.locate_raster",
    "gridmap.gridding",
    "gridmap.gridding_prefs",
    "gridmap.gridding_jobs",
    "gridmap.batch",
    "gridmap.scenario",
    "gridmap.scenario_base",
    "gridmap.scenario_roads",
    "gridmap.scenario_households",
    "gridmap.scenario_power",
    "gridmap.scenario_partition",
    "gridmap.gridding_balance",
    "gridmap.scenario_province",
    "gridmap.gridding_lloyd",
    "gridmap.gridding_polish",
    "gridmap.gridding_regroup",
    "gridmap.disclosure",
    "gridmap.supervision",
    "gridmap.stats",
    "gridmap.render",
    "gridmap.editing",
    "gridmap.edit_checks",
    "gridmap.edit_noding",
    "gridmap.geojson_in",
    "gridmap.osm_roads",
    "gridmap.exports",
]
FORBIDDEN = ["fastapi", "starlette", "sqlalchemy", "geoalchemy2", "folium"]


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_nothing_forbidden(module: str) -> None:
    code = (
        f"import sys, {module}; bad = [m for m in {FORBIDDEN!r} if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()}"
