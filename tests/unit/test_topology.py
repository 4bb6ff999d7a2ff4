"""Partition checks (gridmap.topology): overlaps, gaps, containment, geometry problems."""

from __future__ import annotations

import itertools
import json
import warnings

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely import affinity

from gridmap.crs import from_wgs84, transform_geometry
from gridmap.errors import InvalidInput
from gridmap.topology import (
    PROBLEM_KINDS,
    Problem,
    check_geometry,
    check_partition,
    gaps,
    outside_parent,
    overlaps,
)

METRIC = "EPSG:4546"  # CGCS2000 GK zone, CM 111°E: Yichang
X0, Y0 = (float(v) for v in from_wgs84(111.30, 30.70, METRIC))


def box(x: float, y: float, w: float, h: float) -> shapely.Polygon:
    """A w × h metre box whose lower-left corner is (x, y) metres from Yichang's origin."""
    return shapely.box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + h)


def frame(
    geoms: list, codes: list[str] | None = None, parent: str | None = "P"
) -> gpd.GeoDataFrame:
    codes = codes or [f"c{i}" for i in range(len(geoms))]
    return gpd.GeoDataFrame(
        {"code": codes, "parent": [parent] * len(geoms)}, geometry=geoms, crs=METRIC
    )


def nan_polygon() -> shapely.Polygon:
    with warnings.catch_warnings():  # shapely warns when it builds NaN coordinates
        warnings.simplefilter("ignore", RuntimeWarning)
        return shapely.Polygon([(111.3, 30.7), (np.nan, 30.7), (111.31, 30.71), (111.3, 30.7)])


def lonlat_of(geom_metric: shapely.Geometry) -> shapely.Geometry:
    return transform_geometry(geom_metric, METRIC, "wgs84")


# ---------------------------------------------------------------------------- overlaps


def test_overlap_reports_both_codes_area_and_wgs84_location():
    a, b = box(0, 0, 100, 100), box(60, 20, 100, 100)  # overlap 40 × 80 = 3200 m²
    [p] = overlaps(frame([a, b], ["A", "B"]))
    assert (p.kind, p.feature, p.related) == ("sibling-overlap", "A", "B")
    assert p.area_m2 == pytest.approx(3200, rel=1e-6)
    assert "A" in p.message and "B" in p.message
    # the location is a WGS84 lon/lat inside the overlap
    assert lonlat_of(a.intersection(b)).contains(shapely.Point(p.location))


def test_neighbours_sharing_an_edge_and_tiny_overlaps_are_not_reported():
    geoms = [box(0, 0, 100, 100), box(100, 0, 100, 100), box(0, 100, 200, 50)]
    assert overlaps(frame(geoms)) == []
    sliver = [box(0, 0, 100, 100), box(99.995, 0, 100, 100)]  # 0.5 m²
    assert overlaps(frame(sliver)) == []
    assert len(overlaps(frame(sliver), min_area=0.1)) == 1


def test_child_contained_in_sibling_is_an_overlap():
    [p] = overlaps(frame([box(0, 0, 100, 100), box(10, 10, 20, 20)], ["big", "small"]))
    assert p.area_m2 == pytest.approx(400, rel=1e-6)


def test_invalid_geometries_are_skipped_not_crashed_on():
    bowtie = shapely.Polygon([(X0, Y0), (X0 + 10, Y0 + 10), (X0 + 10, Y0), (X0, Y0 + 10)])
    assert overlaps(frame([bowtie, box(0, 0, 10, 10), None])) == []


def test_metric_crs_must_be_known():
    with pytest.raises(InvalidInput, match="CRS"):
        overlaps(gpd.GeoDataFrame({"code": ["a", "b"]}, geometry=[box(0, 0, 9, 9)] * 2))
    with pytest.raises(InvalidInput, match="CRS"):
        outside_parent(box(0, 0, 9, 9), box(0, 0, 5, 5))


# ---------------------------------------------------------------------------- gaps


def test_gap_parts_listed_with_area_and_location():
    parent = box(0, 0, 300, 100)
    kids = frame([box(0, 0, 100, 100), box(150, 0, 100, 100)])  # gaps: 50×100 and 50×100
    found = gaps(parent, kids, parent_code="P")
    assert [p.kind for p in found] == ["coverage-gap", "coverage-gap"]
    assert sorted(p.area_m2 for p in found) == pytest.approx([5000, 5000], rel=1e-6)
    assert all(p.feature == "P" for p in found)
    holes = lonlat_of(parent.difference(shapely.union_all(kids.geometry.values)))
    assert all(holes.contains(shapely.Point(p.location)) for p in found)


def test_full_cover_has_no_gap_and_crs_can_be_given_for_plain_arrays():
    parent = box(0, 0, 200, 100)
    kids = np.array([box(0, 0, 100, 100), box(100, 0, 100, 100)], dtype=object)
    assert gaps(parent, kids, crs=METRIC) == []
    assert len(gaps(parent, kids[:1], crs=METRIC)) == 1


# ---------------------------------------------------------------------------- outside parent


def test_outside_parent_respects_tolerance_and_reports_area_outside():
    parent = box(0, 0, 100, 100)
    assert outside_parent(box(0, 0, 100.5, 100), parent, crs=METRIC) is None
    p = outside_parent(box(50, 0, 60, 100), parent, code="C", parent_code="P", crs=METRIC)
    assert p is not None and (p.kind, p.feature, p.related) == ("outside-parent", "C", "P")
    assert p.area_m2 == pytest.approx(10 * 100, rel=1e-6)
    assert lonlat_of(box(100, 0, 10, 100)).contains(shapely.Point(p.location))


def test_check_partition_groups_siblings_by_parent():
    # same shapes under two different parents: not siblings, so no overlap
    kids = gpd.GeoDataFrame(
        {"code": ["a", "b"], "parent": ["P", "Q"]},
        geometry=[box(0, 0, 100, 100), box(50, 0, 100, 100)],
        crs=METRIC,
    )
    assert check_partition(kids) == []
    kids["parent"] = ["P", "P"]
    assert [p.kind for p in check_partition(kids)] == ["sibling-overlap"]
    parents = {"P": box(0, 0, 200, 100)}
    kinds = sorted(p.kind for p in check_partition(kids, parents))
    assert kinds == ["coverage-gap", "sibling-overlap"]
    assert [p.kind for p in check_partition(kids, parents, incomplete={"P"})] == ["sibling-overlap"]


# ---------------------------------------------------------------------------- geometry checks


@pytest.mark.parametrize(
    ("geom", "kind"),
    [
        (
            shapely.Polygon([(111.30, 30.70), (111.32, 30.72), (111.32, 30.70), (111.30, 30.72)]),
            "self-intersection",
        ),
        (shapely.Polygon(), "empty-geometry"),
        (None, "empty-geometry"),
        (shapely.Point(111.3, 30.7), "wrong-geometry-type"),
        (shapely.box(30.70, 111.30, 30.71, 111.31), "probable-lat-lon-swap"),
        (shapely.box(500000, 3400000, 500100, 3400100), "coordinate-out-of-range"),
        (nan_polygon(), "non-finite-coordinate"),
    ],
)
def test_check_geometry_kinds(geom, kind):
    found, usable = check_geometry(geom, "X")
    assert [p.kind for p in found] == [kind] and not usable
    assert found[0].kind in PROBLEM_KINDS and found[0].message.startswith("X")


def test_check_geometry_parses_location_of_self_intersection():
    bowtie = shapely.Polygon([(111.30, 30.70), (111.32, 30.72), (111.32, 30.70), (111.30, 30.72)])
    [p], _ = check_geometry(bowtie, "X")
    assert p.location == pytest.approx((111.31, 30.71), abs=1e-9)
    assert check_geometry(shapely.box(111.3, 30.7, 111.31, 30.71), "ok") == ([], True)


def test_problem_is_frozen_and_json_ready():
    p = Problem("coverage-gap", "P", "msg", (111.3, 30.7), 12.5)
    with pytest.raises(AttributeError):
        p.kind = "x"  # type: ignore[misc]
    assert json.loads(json.dumps(p.to_dict()))["location"] == [111.3, 30.7]


# ---------------------------------------------------------------------------- properties

_fractions = st.lists(st.floats(0.1, 0.9), min_size=0, max_size=4, unique=True)


@st.composite
def partitions(draw):
    """A random rectangle (metres, near Yichang) and a grid-with-random-cuts partition of it."""
    w, h = draw(st.floats(50, 5000)), draw(st.floats(50, 5000))
    x, y = draw(st.floats(-20000, 20000)), draw(st.floats(-20000, 20000))
    xs = [x, *(x + f * w for f in sorted(draw(_fractions))), x + w]
    cells = []
    for x1, x2 in itertools.pairwise(xs):  # each column gets its own row cuts
        ys = [y, *(y + f * h for f in sorted(draw(_fractions))), y + h]
        cells += [box(x1, y1, x2 - x1, y2 - y1) for y1, y2 in itertools.pairwise(ys)]
    return box(x, y, w, h), cells


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(partitions())
def test_property_partition_has_no_overlap_or_gap(case):
    parent, cells = case
    kids = frame(cells)
    assert check_partition(kids, {"P": parent}) == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(partitions(), st.data(), st.floats(0.5, 0.95))
def test_property_shrinking_one_child_opens_a_gap_of_its_lost_area(case, data, factor):
    parent, cells = case
    k = data.draw(st.integers(0, len(cells) - 1))
    lost = cells[k].area * (1 - factor**2)
    cells = list(cells)
    cells[k] = affinity.scale(cells[k], factor, factor)  # about its centre: stays inside
    found = check_partition(frame(cells), {"P": parent})
    assert {p.kind for p in found} <= {"coverage-gap"}
    if lost > 1.0:
        assert sum(p.area_m2 for p in found) == pytest.approx(lost, rel=0.01)
