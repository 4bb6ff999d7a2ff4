"""Pure parts of issue #8: the supervision row's suppression, the report window, the size caps
of boundary imports."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime

import geopandas as gpd
import pytest
import shapely

import gridmap.supervision
from gridmap.boundaries import size_problems
from gridmap.errors import InvalidInput
from gridmap.supervision import supervision_row, window


def test_doctests() -> None:
    assert doctest.testmod(gridmap.supervision).failed == 0


def test_small_counts_and_their_times_are_withheld() -> None:
    row = {
        "name": "gm",
        "scope": "420502",
        "actions": 3,
        "incident_actions": 1,
        "handled": 0,
        "reported": 10,
        "responded": 10,
        "median_min": 12.0,
        "p90_min": 30.0,
        "open_caseload": None,
    }
    out = supervision_row(row, k=11)
    assert out["handled"] == "0" and out["reported"] == "<11" and out["open_caseload"] == "0"
    assert out["median_response_min"] is None and out["p90_response_min"] is None
    assert out["actions"] == 3  # the manager's own work is what supervision is for
    shown = supervision_row({**row, "responded": 11, "reported": 11}, k=11)
    assert shown["median_response_min"] == 12.0 and shown["responded"] == "11"


def test_window() -> None:
    start, end = window(None, None)
    assert (end - start).days == 30 and end.tzinfo is not None
    naive = window(datetime(2026, 1, 1), datetime(2026, 2, 1))
    assert naive[0] == datetime(2026, 1, 1, tzinfo=UTC)
    assert window(None, datetime(1, 1, 2, tzinfo=UTC))[0].year == 1  # no overflow
    with pytest.raises(InvalidInput, match="earlier"):
        window(datetime(2026, 2, 1), datetime(2026, 1, 1, tzinfo=UTC))


def test_size_problems() -> None:
    dense = shapely.Point(0, 0).buffer(1, quad_segs=100)
    holes = shapely.MultiPolygon([shapely.box(i, 0, i + 0.5, 1) for i in range(4)])
    frame = gpd.GeoDataFrame({"code": ["a", "b", None]}, geometry=[dense, holes, None])
    got = [(p.kind, p.feature) for p in size_problems(frame, max_vertices=300, max_rings=3)]
    assert got == [("too-many-vertices", "a"), ("too-many-rings", "b")]


@pytest.mark.parametrize("target", [5e-324, 0.5, float("inf")])
def test_gridding_target_below_one_household_is_refused(target: float) -> None:
    """Found by fuzzing POST /api/v1/gridding: 5e-324 households per grid overflowed to an
    infinite number of grids (a 500)."""
    import pandas as pd

    from gridmap.gridding import grid_community

    units = pd.DataFrame({"x": [10.0], "y": [10.0], "households": [5], "residents": [9]})
    with pytest.raises(InvalidInput, match="at least 1"):
        grid_community(shapely.box(0, 0, 100, 100), units, households_per_grid=target)
