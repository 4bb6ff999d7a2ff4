"""Boundary files: reading (GeoJSON/GPKG/zipped Shapefile), validation catalogue, repair."""

from __future__ import annotations

import json
import math
import time
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio.raw
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from gridmap.boundaries import FieldMap, read_boundary_file, repair_boundaries, validate_boundaries
from gridmap.crs import to_wgs84, wgs84_to_gcj02
from gridmap.errors import InvalidInput

REAL = Path(__file__).parents[2] / "data" / "boundaries" / "yichang_districts.geojson"
GEOD = Geod(ellps="WGS84")
X, Y = 111.30, 30.70  # Yichang


def ring(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


def poly(x0: float, y0: float, x1: float, y1: float) -> dict:
    return {"type": "Polygon", "coordinates": [ring(x0, y0, x1, y1)]}


def feat(
    code: str | None, geometry: dict | None, name: str | None = "社区", parent: str | None = "P"
) -> dict:
    return {
        "type": "Feature",
        "geometry": geometry,
        "properties": {"code": code, "name": name, "parent": parent},
    }


def write_geojson(
    tmp_path: Path, features: list[dict], name: str = "b.geojson", crs: str | None = None
) -> Path:
    doc: dict = {"type": "FeatureCollection", "features": features}
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    path = tmp_path / name
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")  # NaN allowed
    return path


def parent_frame(x0=X, y0=Y, x1=X + 0.02, y1=Y + 0.02, code="P") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"code": [code], "name": ["街道"]}, geometry=[shapely.box(x0, y0, x1, y1)], crs="EPSG:4326"
    )


def all_problems(path: Path, parents=None, **kw):
    gdf, problems = read_boundary_file(path, **kw)
    return gdf, problems + validate_boundaries(gdf, level="community", parents=parents)


def by_kind(problems, kind):
    return [p for p in problems if p.kind == kind]


def geodesic_area(geom) -> float:
    return abs(GEOD.geometry_area_perimeter(geom)[0])


# ---------------------------------------------------------------------------- real data


def test_real_yichang_districts_read_and_validate_clean():
    gdf, problems = read_boundary_file(REAL)
    assert problems == []
    assert list(gdf.columns) == ["code", "name", "parent", "geometry"]
    assert sorted(gdf["code"]) == ["420502", "420503", "420504", "420505"]
    assert set(gdf["name"]) == {"西陵区", "伍家岗区", "点军区", "猇亭区"}
    assert (gdf.geom_type == "MultiPolygon").all() and gdf.crs.to_epsg() == 4326
    assert validate_boundaries(gdf, level="district") == []
    city = gpd.GeoDataFrame(
        {"code": ["420500"], "name": ["宜昌市"]},
        crs="EPSG:4326",
        geometry=[shapely.union_all(gdf.geometry.values)],
    )
    assert validate_boundaries(gdf, level="district", parents=city) == []


# ---------------------------------------------------------------------------- catalogue


def test_bowtie_self_intersection_reported_at_the_crossing(tmp_path):
    a, b, c, d = (X, Y), (X + 0.02, Y + 0.01), (X + 0.02, Y), (X, Y + 0.01)
    path = write_geojson(
        tmp_path, [feat("B1", {"type": "Polygon", "coordinates": [[a, b, c, d, a]]})]
    )
    _, problems = all_problems(path)
    [p] = problems
    assert (p.kind, p.feature) == ("self-intersection", "B1")
    crossing = shapely.LineString([a, b]).intersection(shapely.LineString([c, d]))
    assert p.location == pytest.approx((crossing.x, crossing.y), abs=1e-6)
    assert "B1" in p.message and "self-intersection" in p.message


@pytest.mark.parametrize(
    ("geometry", "kind"),
    [
        (
            {"type": "Polygon", "coordinates": [ring(X, Y, X + 0.01, Y + 0.01)[:-1]]},
            "unclosed-ring",
        ),
        (
            {"type": "Polygon", "coordinates": [[[X, Y], [X + 0.01, Y], [X, Y + 0.01]]]},
            "too-few-points",
        ),
        (
            {"type": "Polygon", "coordinates": [[[X, Y], [math.nan, Y], [X, Y + 0.01], [X, Y]]]},
            "non-finite-coordinate",
        ),
        (
            {"type": "Polygon", "coordinates": [[[X, Y], ["a", Y], [X, Y + 0.01], [X, Y]]]},
            "invalid-geometry",
        ),
    ],
)
def test_unbuildable_feature_becomes_a_problem_and_the_rest_is_read(tmp_path, geometry, kind):
    good = [
        feat("G1", poly(X, Y, X + 0.01, Y + 0.01)),
        feat("G2", poly(X + 0.01, Y, X + 0.02, Y + 0.01)),
    ]
    path = write_geojson(tmp_path, [good[0], feat("BAD", geometry), good[1]])
    gdf, problems = read_boundary_file(path)
    assert [(p.kind, p.feature) for p in problems] == [(kind, "BAD")]
    assert list(gdf["code"]) == ["G1", "G2"] and list(gdf.index) == [0, 2]
    assert validate_boundaries(gdf, level="community") == []


@pytest.mark.parametrize(
    ("geometry", "kind"),
    [
        (None, "empty-geometry"),
        ({"type": "Polygon", "coordinates": []}, "empty-geometry"),
        ({"type": "Point", "coordinates": [X, Y]}, "wrong-geometry-type"),
        (poly(500000, 3400000, 500100, 3400100), "coordinate-out-of-range"),
    ],
)
def test_catalogue_single_geometry_problems(tmp_path, geometry, kind):
    path = write_geojson(
        tmp_path, [feat("F", geometry), feat("OK", poly(X, Y, X + 0.01, Y + 0.01))]
    )
    _, problems = all_problems(path)
    assert [(p.kind, p.feature) for p in problems] == [(kind, "F")]


def test_swapped_lat_lon_is_recognised(tmp_path):
    swapped = [[y, x] for x, y in ring(X, Y, X + 0.01, Y + 0.01)]
    path = write_geojson(tmp_path, [feat("S", {"type": "Polygon", "coordinates": [swapped]})])
    _, problems = all_problems(path)
    [p] = problems
    assert (p.kind, p.feature) == ("probable-lat-lon-swap", "S")
    assert "lat/lon swapped" in p.message
    assert p.location == pytest.approx((X, Y))


def test_child_outside_parent(tmp_path):
    inside = feat("IN", poly(X, Y, X + 0.01, Y + 0.01))
    beyond = feat("OUT", poly(X + 0.01, Y, X + 0.03, Y + 0.01))  # half beyond the parent
    _, problems = all_problems(write_geojson(tmp_path, [inside, beyond]), parents=parent_frame())
    [p] = by_kind(problems, "outside-parent")
    assert (p.feature, p.related) == ("OUT", "P")
    expected = geodesic_area(shapely.box(X + 0.02, Y, X + 0.03, Y + 0.01))
    assert p.area_m2 == pytest.approx(expected, rel=0.01)
    assert X + 0.02 < p.location[0] < X + 0.03


def test_sibling_overlap_area_and_location(tmp_path):
    a = feat("A", poly(X, Y, X + 0.012, Y + 0.02))
    b = feat("B", poly(X + 0.01, Y, X + 0.02, Y + 0.02))
    _, problems = all_problems(write_geojson(tmp_path, [a, b]), parents=parent_frame())
    [p] = problems
    assert (p.kind, {p.feature, p.related}) == ("sibling-overlap", {"A", "B"})
    overlap = shapely.box(X + 0.01, Y, X + 0.012, Y + 0.02)
    assert p.area_m2 == pytest.approx(geodesic_area(overlap), rel=0.01)
    assert overlap.contains(shapely.Point(p.location))


def test_gap_in_parent_coverage_reported_with_area(tmp_path):
    a = feat("A", poly(X, Y, X + 0.009, Y + 0.02))
    b = feat("B", poly(X + 0.01, Y, X + 0.02, Y + 0.02))  # 0.001° strip uncovered
    _, problems = all_problems(write_geojson(tmp_path, [a, b]), parents=parent_frame())
    [p] = problems
    assert (p.kind, p.feature) == ("coverage-gap", "P")
    strip = shapely.box(X + 0.009, Y, X + 0.01, Y + 0.02)
    assert p.area_m2 == pytest.approx(geodesic_area(strip), rel=0.01)
    assert strip.contains(shapely.Point(p.location))
    # without parents there is no gap check; a parent with no children here gets none either
    gdf, _ = read_boundary_file(tmp_path / "b.geojson")
    assert validate_boundaries(gdf, level="community") == []
    both = pd.concat([parent_frame(), parent_frame(code="Q")], ignore_index=True)
    assert [p.kind for p in validate_boundaries(gdf, level="community", parents=both)] == [
        "coverage-gap"
    ]


def test_duplicate_code_missing_fields_and_unknown_parent(tmp_path):
    features = [
        feat("D", poly(X, Y, X + 0.005, Y + 0.01)),
        feat("D", poly(X + 0.005, Y, X + 0.01, Y + 0.01)),
        feat(None, poly(X + 0.01, Y, X + 0.015, Y + 0.01)),
        feat("N", poly(X + 0.015, Y, X + 0.02, Y + 0.01), name=None),
        feat("U", poly(X, Y + 0.01, X + 0.02, Y + 0.02), parent="NOPE"),
    ]
    _, problems = all_problems(write_geojson(tmp_path, features), parents=parent_frame())
    got = {(p.kind, p.feature) for p in problems}
    assert got == {
        ("duplicate-code", "D"),
        ("missing-field", "#2"),
        ("missing-field", "N"),
        ("unknown-parent", "U"),
        ("coverage-gap", "P"),
    }  # U's area is not P's


def test_every_problem_reported_at_once(tmp_path):
    bowtie = {
        "type": "Polygon",
        "coordinates": [[[X, Y], [X + 0.01, Y + 0.01], [X + 0.01, Y], [X, Y + 0.01], [X, Y]]],
    }
    features = [
        feat("E", None),
        feat("T", {"type": "Point", "coordinates": [X, Y]}),
        feat("B", bowtie),
        feat("D", poly(X, Y, X + 0.01, Y + 0.01)),
        feat("D", poly(X + 0.02, Y, X + 0.03, Y + 0.01)),
        feat("U", {"type": "Polygon", "coordinates": [ring(X, Y, X + 0.01, Y + 0.01)[:3]]}),
    ]
    _, problems = all_problems(write_geojson(tmp_path, features))
    assert {(p.kind, p.feature) for p in problems} == {
        ("empty-geometry", "E"),
        ("wrong-geometry-type", "T"),
        ("self-intersection", "B"),
        ("duplicate-code", "D"),
        ("too-few-points", "U"),
    }
    assert all(p.message and p.feature in p.message for p in problems)


# ---------------------------------------------------------------------------- CRS


def test_gcj02_file_read_with_crs_gcj02_lands_on_the_wgs84_one(tmp_path):
    shape = shapely.box(X, Y, X + 0.01, Y + 0.01).buffer(0.002)
    wgs = [feat("A", shapely.geometry.mapping(shape))]
    gcj_shape = shapely.transform(
        shape, lambda c: np.column_stack(wgs84_to_gcj02(c[:, 0], c[:, 1]))
    )
    gcj = [feat("A", shapely.geometry.mapping(gcj_shape))]
    truth = read_boundary_file(write_geojson(tmp_path, wgs, "w.geojson"))[0].geometry[0]
    path = write_geojson(tmp_path, gcj, "g.geojson", crs="EPSG:4326")  # Amap's usual label
    fixed = read_boundary_file(path, crs="gcj02")[0].geometry[0]
    naive = read_boundary_file(path)[0].geometry[0]
    assert shapely.hausdorff_distance(fixed, truth) < 1e-7  # ~1 cm
    assert shapely.hausdorff_distance(naive, truth) > 1e-3  # the GCJ shift is hundreds of m


def test_epsg4546_gpkg_and_geojson_converted_to_wgs84(tmp_path):
    truth = gpd.GeoDataFrame(
        {"code": ["A"], "name": ["n"], "parent": ["P"]},
        geometry=[shapely.box(X, Y, X + 0.01, Y + 0.01)],
        crs="EPSG:4326",
    )
    projected = truth.to_crs("EPSG:4546")
    projected.to_file(tmp_path / "p.gpkg", driver="GPKG")
    gdf, problems = read_boundary_file(tmp_path / "p.gpkg")
    assert problems == [] and gdf.crs.to_epsg() == 4326
    assert shapely.hausdorff_distance(gdf.geometry[0], truth.geometry[0]) < 1e-8
    coords = [list(map(list, projected.geometry[0].exterior.coords))]
    fc = [feat("A", {"type": "Polygon", "coordinates": coords})]
    declared = write_geojson(tmp_path, fc, "d.geojson", crs="urn:ogc:def:crs:EPSG::4546")
    assert (
        shapely.hausdorff_distance(read_boundary_file(declared)[0].geometry[0], truth.geometry[0])
        < 1e-8
    )
    undeclared = write_geojson(tmp_path, fc, "u.geojson")
    with pytest.raises(InvalidInput, match="crs="):
        read_boundary_file(undeclared)
    lon, lat = to_wgs84(*projected.geometry[0].exterior.coords[0], "EPSG:4546")
    got = read_boundary_file(undeclared, crs="EPSG:4546")[0].geometry[0]
    assert shapely.Point(lon, lat).distance(got.boundary) < 1e-9


# ---------------------------------------------------------------------------- formats


def test_gpkg_with_unclosed_ring_survives(tmp_path):
    ok = shapely.to_wkb(shapely.box(X, Y, X + 0.01, Y + 0.01))
    ring4 = ring(X, Y, X + 0.01, Y + 0.01)[:-1]
    unclosed = (
        b"\x01\x03\x00\x00\x00\x01\x00\x00\x00"
        + len(ring4).to_bytes(4, "little")
        + np.array(ring4, dtype="<f8").tobytes()
    )
    path = tmp_path / "b.gpkg"
    pyogrio.raw.write(
        path,
        geometry=np.array([ok, unclosed], dtype=object),
        field_data=[
            np.array(["A", "B"], dtype=object),
            np.array(["学院街社区", "云集社区"], dtype=object),
        ],
        fields=["code", "名称"],
        crs="EPSG:4326",
        driver="GPKG",
        geometry_type="Polygon",
    )
    gdf, problems = read_boundary_file(path)
    assert list(gdf["name"]) == ["学院街社区"]
    assert [(p.kind, p.feature) for p in problems] == [("unclosed-ring", "B")]
    assert "云集社区" in problems[0].message


def _gbk_shapefile(tmp_path: Path, cpg: bool) -> Path:
    names = ["学院街社区", "云集社区"]
    gdf = gpd.GeoDataFrame(
        {"adcode": [420502001001, 420502001002], "名称": names},
        geometry=[
            shapely.box(X, Y, X + 0.01, Y + 0.01),
            shapely.box(X + 0.01, Y, X + 0.02, Y + 0.01),
        ],
        crs="EPSG:4326",
    )
    gdf.to_file(tmp_path / "c.shp", encoding="gbk")
    dbf = (tmp_path / "c.dbf").read_bytes()
    assert names[0].encode("gbk") in dbf  # really GBK on disk
    assert (tmp_path / "c.cpg").read_text().strip().upper() == "GBK"
    if not cpg:
        (tmp_path / "c.cpg").unlink()
    return tmp_path / "c.shp"


def test_zipped_gbk_shapefile_with_cpg(tmp_path):
    shp = _gbk_shapefile(tmp_path, cpg=True)
    zpath = tmp_path / "c.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for part in tmp_path.glob("c.*"):
            if part.suffix != ".zip":
                zf.write(part, part.name)
    for path in (zpath, shp):
        gdf, problems = read_boundary_file(path)
        assert problems == []
        assert list(gdf["name"]) == ["学院街社区", "云集社区"]
        assert list(gdf["code"]) == ["420502001001", "420502001002"]
        assert validate_boundaries(gdf, level="community") == []


def test_shapefile_without_cpg_encoding_override_and_guess(tmp_path):
    shp = _gbk_shapefile(tmp_path, cpg=False)
    assert list(read_boundary_file(shp, encoding="gbk")[0]["name"]) == ["学院街社区", "云集社区"]
    assert list(read_boundary_file(shp)[0]["name"]) == ["学院街社区", "云集社区"]


# ---------------------------------------------------------------------------- bad input


def test_unopenable_files_raise_invalid_input(tmp_path):
    (tmp_path / "junk.gpkg").write_text("not a geopackage")
    (tmp_path / "cut.geojson").write_text('{"type": "FeatureCollection", "features": [')
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 broken")
    for name in ("junk.gpkg", "cut.geojson", "junk.zip", "missing.geojson"):
        with pytest.raises(InvalidInput, match=name.split(".")[0]):
            read_boundary_file(tmp_path / name)


def test_unknown_layer_raises(tmp_path):
    gpd.GeoDataFrame(
        {"code": ["A"], "name": ["n"]}, geometry=[shapely.box(X, Y, X + 1, Y + 1)], crs=4326
    ).to_file(tmp_path / "l.gpkg", layer="streets")
    with pytest.raises(InvalidInput, match="nope"):
        read_boundary_file(tmp_path / "l.gpkg", layer="nope")
    assert len(read_boundary_file(tmp_path / "l.gpkg", layer="streets")[0]) == 1


def test_missing_code_field_raises_and_aliases_are_found(tmp_path):
    geom = poly(X, Y, X + 0.01, Y + 0.01)
    no_code = {"type": "Feature", "geometry": geom, "properties": {"name": "n"}}
    with pytest.raises(InvalidInput, match="code"):
        read_boundary_file(write_geojson(tmp_path, [no_code], "n.geojson"))
    with pytest.raises(InvalidInput, match="bm"):
        read_boundary_file(
            write_geojson(tmp_path, [feat("A", geom)], "m.geojson"), fields=FieldMap(code="bm")
        )
    aliased = {
        "type": "Feature",
        "geometry": geom,
        "properties": {"ADCODE": 420502.0, "名称": "西陵区", "上级编码": "420500"},
    }
    gdf, _ = read_boundary_file(write_geojson(tmp_path, [aliased], "a.geojson"))
    assert gdf.iloc[0][["code", "name", "parent"]].tolist() == ["420502", "西陵区", "420500"]


def test_validate_rejects_wrong_crs_and_level():
    gdf = gpd.GeoDataFrame(
        {"code": ["A"], "name": ["n"]},
        crs="EPSG:4326",
        geometry=[shapely.box(X, Y, X + 0.01, Y + 0.01)],
    )
    with pytest.raises(InvalidInput, match="4326"):
        validate_boundaries(gdf.to_crs(4546), level="community")
    with pytest.raises(InvalidInput, match="level"):
        validate_boundaries(gdf, level="village")


# ---------------------------------------------------------------------------- repair, speed


def test_repair_only_touches_invalid_features_and_reports_areas():
    bowtie = shapely.Polygon([(X, Y), (X + 0.01, Y + 0.01), (X + 0.01, Y), (X, Y + 0.01)])
    good = shapely.box(X + 0.02, Y, X + 0.03, Y + 0.01)
    gdf = gpd.GeoDataFrame(
        {"code": ["B", "G"], "name": ["b", "g"]}, geometry=[bowtie, good], crs="EPSG:4326"
    )
    fixed, changes = repair_boundaries(gdf)
    assert [c["code"] for c in changes] == ["B"] and "Self-intersection" in changes[0]["reason"]
    assert fixed.geometry[1].equals(good) and gdf.geometry[0].equals(bowtie)  # input untouched
    assert fixed.geometry[0].geom_type == "MultiPolygon" and fixed.geometry[0].is_valid
    assert changes[0]["area_after_m2"] == pytest.approx(geodesic_area(fixed.geometry[0]), rel=0.01)
    assert validate_boundaries(fixed, level="community") == []


@settings(max_examples=40, deadline=None)
@given(
    st.floats(-0.5, 0.5),
    st.floats(-0.5, 0.5),
    st.floats(0.001, 0.05),
    st.floats(0.001, 0.05),
    st.lists(st.floats(-0.2, 0.2), min_size=8, max_size=8),
)
def test_property_repair_of_random_bowtie_is_valid(dx, dy, w, h, jitter):
    x0, y0 = X + dx, Y + dy
    corners = [(x0, y0), (x0 + w, y0 + h), (x0 + w, y0), (x0, y0 + h)]
    pts = [
        (x + jx * w, y + jy * h)
        for (x, y), jx, jy in zip(corners, jitter[::2], jitter[1::2], strict=True)
    ]
    gdf = gpd.GeoDataFrame(
        {"code": ["B"], "name": ["b"]}, geometry=[shapely.Polygon(pts)], crs="EPSG:4326"
    )
    assert not gdf.geometry[0].is_valid
    fixed, changes = repair_boundaries(gdf)
    assert len(changes) == 1 and changes[0]["area_after_m2"] > 0
    assert fixed.geometry[0].is_valid and fixed.geometry[0].geom_type == "MultiPolygon"
    assert validate_boundaries(fixed, level="community") == []


def test_121_communities_validate_well_under_a_second():
    step = 0.002
    cells = [
        shapely.segmentize(
            shapely.box(X + i * step, Y + j * step, X + (i + 1) * step, Y + (j + 1) * step),
            step / 75,
        )
        for i in range(11)
        for j in range(11)
    ]
    assert 250 < len(cells[0].exterior.coords) < 350
    gdf = gpd.GeoDataFrame(
        {"code": [f"C{k:03d}" for k in range(121)], "name": ["n"] * 121, "parent": ["P"] * 121},
        geometry=cells,
        crs="EPSG:4326",
    )
    parents = parent_frame(X, Y, X + 11 * step, Y + 11 * step)
    validate_boundaries(gdf, level="community", parents=parents)  # warm caches
    start = time.perf_counter()
    problems = validate_boundaries(gdf, level="community", parents=parents)
    assert problems == [] and time.perf_counter() - start < 1.0


def test_multi_layer_gpkg_needs_a_layer_and_nan_features_are_set_aside(tmp_path):
    path = tmp_path / "m.gpkg"
    good = shapely.to_wkb(shapely.box(X, Y, X + 0.01, Y + 0.01))
    nan = shapely.to_wkb(shapely.box(X, Y, X + 0.01, Y + 0.01)).replace(
        np.float64(X).tobytes(), np.float64(np.nan).tobytes(), 1
    )
    for layer in ("streets", "communities"):
        pyogrio.raw.write(
            path,
            geometry=np.array([good, nan], dtype=object),
            field_data=[np.array(["A", None], dtype=object), np.array(["a", "b"], dtype=object)],
            fields=["code", "name"],
            crs="EPSG:4326",
            driver="GPKG",
            geometry_type="Polygon",
            layer=layer,
            append=layer == "communities",
        )
    with pytest.raises(InvalidInput, match="layer="):
        read_boundary_file(path)
    gdf, problems = read_boundary_file(path, layer="communities")
    assert list(gdf["code"]) == ["A"]
    assert [(p.kind, p.feature) for p in problems] == [("non-finite-coordinate", "#1")]


def test_datav_style_parent_object_and_numeric_codes(tmp_path):
    geom = poly(X, Y, X + 0.01, Y + 0.01)
    datav = {
        "type": "Feature",
        "geometry": geom,
        "properties": {"adcode": 420502, "name": "西陵区", "parent": {"adcode": 420500}},
    }
    gdf, problems = read_boundary_file(write_geojson(tmp_path, [datav]))
    assert problems == [] and gdf.iloc[0][["code", "parent"]].tolist() == ["420502", "420500"]
