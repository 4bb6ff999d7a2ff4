"""Map building blocks without a database: offline assets, the compact encoding, escaping,
small-count suppression and the coverage figures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import folium
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridmap import maps
from gridmap.disclosure import audit, suppress_hierarchy
from gridmap.settings import PROJECT_ROOT
from gridmap.stats import area_figures, dashboard, grid_status

STATIC = PROJECT_ROOT / "web" / "static"


def test_every_vendored_asset_exists_with_its_licence() -> None:
    for url in maps.LOCAL_ASSETS.values():
        path = STATIC / url.removeprefix("/static/")
        assert path.is_file(), url
        top = STATIC / "vendor" / Path(url.removeprefix("/static/vendor/")).parts[0]
        assert any(p.name.startswith("LICENSE") for p in top.iterdir()), top
    for css in STATIC.glob("vendor/**/*.css"):  # fonts and images they load are vendored too
        for ref in re.findall(r"url\(['\"]?([^'\")?#]+)", css.read_text(errors="replace")):
            if not ref.startswith("data:"):
                assert (css.parent / ref).resolve().is_file(), (css, ref)


def test_folium_defaults_point_at_vendored_copies() -> None:
    for cls in (folium.Map, *maps.PLUGINS):
        for _, url in [*cls.default_js, *cls.default_css]:
            assert url.startswith("/static/vendor/"), url


def test_a_stock_folium_page_is_rewritten_offline() -> None:
    m = folium.Map(location=[30.7, 111.3], tiles=None)
    folium.Marker([30.7, 111.3], popup="网格").add_to(m)  # awesome-markers, glyphicons …
    html = maps.render(m)
    assert maps.foreign_references(html) == []
    assert "/static/vendor/jquery-3.7.1/jquery.min.js" in html


def test_foreign_references_are_found_and_tiles_can_be_allowed() -> None:
    html = (
        '<script src="https://cdn.example.org/x.js"></script><link href="//cdn.x/y.css">'
        "<style>@import url(http://fonts.example/f.css)</style>"
        "<script>L.tileLayer('http://tiles.intra/{z}/{x}/{y}.png')</script>"
    )
    found = maps.foreign_references(html)
    assert len(found) == 4
    assert len(maps.foreign_references(html, ["tiles.intra"])) == 3
    tiles = "http://tiles.intra/{z}/{x}/{y}.png"
    m = maps.base_map((111.2, 30.6, 111.4, 30.8), tile_url=tiles)
    with pytest.raises(ValueError, match="other hosts"):
        maps.render(m)
    assert "tiles.intra" in maps.render(m, allowed_hosts=maps.tile_host(tiles))


def _decode(strings: list[str]) -> list[list[list[list[tuple[float, float]]]]]:
    """Python twin of GM.decodeAll (maps.js)."""
    val = {c: i for i, c in enumerate(maps.ALPHABET)}
    lat = lon = 0
    out: list[list[list[list[tuple[float, float]]]]] = []
    for s in strings:
        polys = []
        for poly in s.split(";"):
            rings = []
            for ring in poly.split(","):
                pts, i = [], 0
                while i < len(ring):
                    vals = []
                    for _ in range(2):
                        shift = result = 0
                        while True:
                            b = val[ring[i]]
                            i += 1
                            result |= (b & 0x1F) << shift
                            shift += 5
                            if b < 0x20:
                                break
                        vals.append(~(result >> 1) if result & 1 else result >> 1)
                    lat += vals[0]
                    lon += vals[1]
                    pts.append((lat / 1e6, lon / 1e6))
                rings.append(pts)
            polys.append(rings)
        out.append(polys)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.floats(70, 130), st.floats(-50, 50), st.floats(1e-4, 0.05), st.booleans()),
        min_size=1,
        max_size=12,
    )
)
def test_encoding_round_trips_at_six_decimals(
    specs: list[tuple[float, float, float, bool]],
) -> None:
    geoms = []
    for x, y, r, hole in specs:
        g = shapely.Point(x, y).buffer(r, 2)
        if hole:
            g = shapely.MultiPolygon([g.difference(shapely.Point(x, y).buffer(r / 3, 2)), g])
        geoms.append(g)
    decoded = _decode(maps.encode_geometries(geoms))
    for geom, polys in zip(geoms, decoded, strict=True):
        parts = shapely.get_parts(geom)
        assert len(parts) == len(polys)
        for poly, rings in zip(parts, polys, strict=True):
            for ring, pts in zip([poly.exterior, *poly.interiors], rings, strict=True):
                want = np.round(np.asarray(ring.coords)[:-1][:, ::-1], 6)
                assert np.allclose(want, np.asarray(pts), atol=1.5e-6)


def test_script_data_cannot_close_the_script_or_form_template_tags() -> None:
    text = maps.js_literal({"name": "</script>{{7*7}}{% x %}{#c#}'&", "n": [1, "{{"]})
    for bad in ("</", "{{", "{%", "{#", "'", "&"):
        assert bad not in text.replace('{"', "").replace(',"', "")
    m = maps.base_map((111.2, 30.6, 111.4, 30.8), title="{{ 7*7 }}</title>")
    maps.EncodedPolygons([shapely.box(111.2, 30.6, 111.3, 30.7)], {"name": ["{{ 7*7 }}"]},
                         name="x", kind="grid").add_to(m)  # fmt: skip
    html = maps.render(m)
    title = html.split("<title>")[1].split("</title>")[0]
    assert "7*7" in title and "49" not in title and "{{" not in html


def test_simplified_grids_keep_shared_edges() -> None:
    a = shapely.Polygon([(0, 0), (1, 0), (1.0001, 0.5), (1, 1), (0, 1)])
    b = shapely.Polygon([(1, 0), (2, 0), (2, 1), (1, 1), (1.0001, 0.5)])
    sa, sb = maps.simplify_coverage([a, b], 0.01)
    assert sa.intersection(sb).area == 0 and abs(sa.union(sb).area - 2.0) < 1e-9


def test_gcj02_display_shift() -> None:
    box = shapely.box(111.3, 30.7, 111.31, 30.71)
    moved = maps.to_display_crs([box], "gcj02")[0]
    dx = moved.centroid.x - box.centroid.x
    assert 0.002 < abs(dx) < 0.01  # a few hundred metres, as the tiles are shifted


CELL = st.integers(0, 40)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.lists(st.lists(CELL, min_size=1, max_size=5), min_size=1, max_size=4),
        min_size=1,
        max_size=4,
    )
)
def test_no_suppressed_count_can_be_derived(tree: list[list[list[int]]]) -> None:
    counts = {
        f"42{d:01d}{s:02d}{c:03d}": v
        for d, streets in enumerate(tree)
        for s, cells in enumerate(streets)
        for c, v in enumerate(cells)
    }
    shown = suppress_hierarchy(counts, levels=(5, 3), k=11, total="")
    for code, v in counts.items():
        assert shown[code] == str(v) or (shown[code] == "<11" and 0 < v < 11) or shown[code] == "*"
        if 0 < v < 11:
            assert shown[code] == "<11"
    from gridmap.disclosure import _tree

    cells, children = _tree(counts, (5, 3), "")
    hidden = {c: ("p" if s.startswith("<") else "c") for c, s in shown.items() if s in ("*", "<11")}
    assert all(lo < hi for lo, hi in audit(cells, children, hidden, 11).values())


def _per_grid() -> pd.DataFrame:
    codes = [f"420502001001{i:03d}" for i in range(1, 5)]
    base = {f"{r}_met": [True, True, False, True] for r in maps_roles()}
    return pd.DataFrame(
        {
            "code": codes,
            "grid_manager_count": [1, 1, 0, 1],
            "mediator_count": [1, 2, 0, 1],
            "legal_professional_count": [1, 1, 0, 1],
            "publicity_count": [1, 1, 0, 0],
            "legal_aid_count": [0, 0, 0, 0],
            "volunteers": [2, 1, 0, 0],
            "care_subjects": [3, 12, 0, 4],
            "volunteers_to_recruit": [0, 2, 0, 1],
            **base,
        }
    ).assign(publicity_met=[True, True, False, False])


def maps_roles() -> tuple[str, ...]:
    from gridmap.staffing_model import STAFF_ROLES

    return STAFF_ROLES


def test_grid_status_and_area_figures() -> None:
    status, care = grid_status(_per_grid())
    assert status["staff_status"].tolist() == ["complete", "complete", "none", "partial"]
    assert status["care_status"].tolist() == ["ok", "short", "none", "short"]
    assert status["care"].tolist()[0] == "<11" and status["care"].tolist()[2] == "0"
    # two hidden cells: the total 19 tells only that they add up to 7, not either of them
    assert status["care"].tolist() == ["<11", "12", "0", "<11"] and care["420502001001"] == "19"
    street = area_figures(status, "street", care)
    assert street[["grids", "staff_complete", "staff_partial", "staff_none"]].values.tolist() == [
        [4, 2, 1, 1]
    ]
    incidents = pd.DataFrame(
        {
            "grid_code": ["420502001001001"] * 3,
            "status": ["reported", "closed", "resolved"],
            "outcome": [None, "failure", "success"],
            "dispatch_s": [np.nan, 120.0, 240.0],
            "onsite_s": [np.nan, 600.0, np.nan],
        }
    )
    row = dashboard(status, incidents, "community").iloc[0]
    assert (row["incidents_open"], row["incidents_closed"]) == (1, 2)
    assert row["median_dispatch_min"] == 3.0 and row["mediation_success_rate"] == 0.5
    assert row["care_grids"] == 3 and row["care_compliant"] == 1


@pytest.mark.parametrize(
    "module", ["gridmap.disclosure", "gridmap.stats", "gridmap.render"]
)  # fmt: skip
def test_pure_modules_import_no_framework(module: str) -> None:
    code = (
        f"import sys, {module}; print(','.join(m for m in "
        "('fastapi', 'starlette', 'sqlalchemy', 'geoalchemy2', 'folium') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_incident_page_heat_uses_only_weights_of_k_or_more() -> None:
    import geopandas as gpd

    from gridmap.map_pages import incident_page

    boxes = [shapely.box(111.30 + i / 100, 30.70, 111.305 + i / 100, 30.705) for i in range(3)]
    grids = gpd.GeoDataFrame({"code": ["a", "b", "c"], "n": [12, 3, 0]}, geometry=boxes, crs=4326)
    heat = pd.DataFrame(
        {"lon": [111.302, 111.312, 111.322], "lat": [30.702] * 3, "weight": [12, 0, 0]}
    )
    communities = gpd.GeoDataFrame(
        {"code": ["c1"], "name": ["社区"], "n": [15], "mediations": [0], "rate": [None]},
        geometry=[shapely.box(111.3, 30.7, 111.33, 30.71)],
        crs=4326,
    )
    html = incident_page(
        grids, communities, title="t", subtitle="s", form={}, categories={}, heat=heat, k=11
    )
    data = re.search(r"L\.heatLayer\(\s*(\[.*?\]\])", html, re.S)
    assert data is not None and data.group(1).replace(" ", "") == "[[30.702,111.302,12]]"
    assert "/static/vendor/leaflet.heat-0.2.0/leaflet-heat.min.js" in html
    assert maps.foreign_references(html) == [] and '"lazy":true' in html  # hidden layer
