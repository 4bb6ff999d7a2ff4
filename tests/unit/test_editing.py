"""Property tests of planner edits: any sequence of edits keeps the community partitioned.

Edits that are partitions by construction (split by a line, split into N, merge, delete,
replace one outline, create) may produce grids in pieces (validation refuses those), but never
an overlap, a gap or a grid outside the community — checked here independently of
:func:`gridmap.edit_checks.validate`, by areas.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridmap import editing
from gridmap.edit_checks import validate
from gridmap.errors import GridmapError
from gridmap.gridding import grid_community

CRS = "EPSG:4546"
X0, Y0 = 528_000.0, 3_397_000.0
NEVER = {"sibling-overlap", "coverage-gap", "outside-parent", "invalid-geometry"}


def _community(draw: st.DrawFn) -> shapely.Polygon:
    w, h = draw(st.floats(300, 900)), draw(st.floats(300, 900))
    shape = shapely.box(X0, Y0, X0 + w, Y0 + h)
    if draw(st.booleans()):  # concave: a notch out of one corner
        f = draw(st.floats(0.2, 0.45))
        shape = shape.difference(shapely.box(X0 + w * (1 - f), Y0 + h * (1 - f), X0 + w, Y0 + h))
    if draw(st.booleans()):  # a hole (a park, a lake)
        c = shape.representative_point()
        shape = shape.difference(shapely.Point(c.x, c.y).buffer(min(w, h) * 0.08))
    return shape


@st.composite
def scenes(draw: st.DrawFn) -> tuple[shapely.Polygon, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    community = _community(draw)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    minx, miny, maxx, maxy = community.bounds
    pts = shapely.points(rng.uniform(minx, maxx, 400), rng.uniform(miny, maxy, 400))
    pts = pts[shapely.contains_properly(community, pts)][:150]
    units = gpd.GeoDataFrame(
        {
            "id": np.arange(1, len(pts) + 1),
            "households": rng.integers(5, 60, len(pts)),
            "residents": rng.integers(10, 150, len(pts)),
        },
        geometry=list(pts),
        crs=CRS,
    )
    n = draw(st.integers(3, 6))
    g = grid_community(community, units[["households", "residents", "geometry"]], n_grids=n)
    grids = gpd.GeoDataFrame(
        {"code": [f"420502001001{s:03d}" for s in g["seq"]]}, geometry=list(g.geometry), crs=CRS
    )
    return community, units, grids


def _assert_partition(community: shapely.Polygon, grids: gpd.GeoDataFrame) -> None:
    geoms = list(grids.geometry)
    union = shapely.union_all(geoms)
    assert abs(union.area - community.area) < 1.0  # no gap, nothing outside
    assert sum(g.area for g in geoms) - union.area < 0.05  # no overlap
    assert shapely.difference(union, community.buffer(0.5)).area < 0.01
    assert len(set(grids["code"])) == len(grids)


def _one_edit(
    data: st.DataObject, community: shapely.Polygon, units: gpd.GeoDataFrame, g: gpd.GeoDataFrame
) -> editing.Edit:
    codes = sorted(g["code"])
    taken = set(codes)
    op = data.draw(st.sampled_from(["line", "n", "merge", "delete", "replace", "create"]))
    code = data.draw(st.sampled_from(codes))
    geom = g.geometry[g["code"] == code].iloc[0]
    minx, miny, maxx, maxy = geom.bounds
    if op == "line":
        t = data.draw(st.floats(0.1, 0.9))
        x = minx + t * (maxx - minx)
        line = shapely.LineString([(x, miny - 5), (x + data.draw(st.floats(-50, 50)), maxy + 5)])
        return editing.split_by_line(g, code, line, units, taken, "420502001001")
    if op == "n":
        return editing.split_into(
            g, code, data.draw(st.integers(2, 3)), units, taken, "420502001001"
        )
    if op == "merge":
        near = [c for c in codes if c != code and g.geometry[g["code"] == c].iloc[0].touches(geom)]
        other = data.draw(st.sampled_from(near)) if near else codes[0]
        return editing.merge(g, [code, other], units)
    if op == "delete":
        return editing.delete(g, code)
    box = shapely.box(
        minx + data.draw(st.floats(-80, 80)),
        miny + data.draw(st.floats(-80, 80)),
        maxx + data.draw(st.floats(-80, 80)),
        maxy + data.draw(st.floats(-80, 80)),
    )
    if op == "replace":
        return editing.replace_one(g, code, box, community)
    return editing.create(
        g,
        box.buffer(-0.3 * min(box.bounds[2] - box.bounds[0], 100)),
        community,
        taken,
        "420502001001",
    )


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(scene=scenes(), data=st.data())
def test_edit_sequences_keep_the_partition(scene, data) -> None:  # type: ignore[no-untyped-def]
    community, units, grids = scene
    _assert_partition(community, grids)
    for _ in range(data.draw(st.integers(1, 4))):
        try:
            edit = _one_edit(data, community, units, grids)
        except GridmapError:
            continue  # refused up front (not adjacent, line misses, last grid…): nothing changed
        problems = validate(edit.grids, community, "420502001001", units)
        assert not {p.kind for p in problems} & NEVER, [p.message for p in problems]
        _assert_partition(community, edit.grids)
        assert set(edit.touched) <= set(grids["code"]) | set(edit.grids["code"])
        if not problems:
            grids = edit.grids  # what the store would accept and write


@settings(max_examples=15, deadline=None, derandomize=True)
@given(scene=scenes(), dx=st.floats(2, 30), dy=st.floats(-30, 30))
def test_validation_catches_a_moved_grid(scene, dx, dy) -> None:  # type: ignore[no-untyped-def]
    community, units, grids = scene
    assert validate(grids, community, "420502001001", units) == []
    moved = grids.copy()
    moved.loc[0, "geometry"] = shapely.affinity.translate(moved.geometry.iloc[0], dx, dy)
    kinds = {p.kind for p in validate(moved, community, "420502001001", units)}
    assert kinds & {"sibling-overlap", "coverage-gap", "outside-parent"}


def test_split_keeps_the_code_on_the_bulk_and_never_reuses_codes() -> None:
    g = gpd.GeoDataFrame(
        {"code": ["c001", "c002"]},
        geometry=[shapely.box(0, 0, 100, 100), shapely.box(100, 0, 200, 100)],
        crs=CRS,
    )
    units = gpd.GeoDataFrame(
        {"id": [1, 2, 3], "households": [50, 40, 5], "residents": [1, 1, 1]},
        geometry=[shapely.Point(10, 50), shapely.Point(20, 50), shapely.Point(90, 50)],
        crs=CRS,
    )
    e = editing.split_by_line(
        g, "c001", shapely.LineString([(60, -1), (60, 101)]), units, {"c001", "c002", "c007"}, "c"
    )
    assert e.created == ["c008"]  # after the highest code ever used, never a retired one
    kept = e.grids.geometry[e.grids["code"] == "c001"].iloc[0]
    assert kept.covers(shapely.Point(10, 50))  # the 90 households stay with the old code
    with pytest.raises(GridmapError):
        editing.merge(e.grids, ["c001"], units)  # a merge needs two grids
