"""Exports over real HTTP, each file read back with GDAL (ogrinfo) and geopandas."""

from __future__ import annotations

import io
import re
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import pandas as pd
import pytest
import shapely
from sqlalchemy import Engine, text

from gridmap.settings import Settings
from tests.api.ogc_scenario import CANARY_CONTACT, CANARY_REPORTER, N_DRAFT, N_PUBLISHED, seed

EXT = {"geojson": "geojson", "gpkg": "gpkg", "shp": "shp.zip", "csv": "csv"}


@pytest.fixture
def city(community: Engine, settings: Settings) -> dict[str, Any]:
    return seed(community, settings)


def export(server: str, city: dict[str, Any], what: str, who: str = "planner", **params: Any):
    params.setdefault("purpose", "网格调整会议材料")
    return httpx.get(f"{server}/api/v1/exports/{what}", params=params, headers=city["tokens"][who])


def read_back(tmp_path: Path, fmt: str, data: bytes) -> tuple[str, gpd.GeoDataFrame]:
    """(ogrinfo's full dump, geopandas frame) of one exported file."""
    path = tmp_path / f"export.{EXT[fmt]}"
    path.write_bytes(data)
    src = f"/vsizip/{path}" if fmt == "shp" else str(path)
    info = subprocess.run(["ogrinfo", "-ro", "-al", src], capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    if fmt == "csv":
        frame = pd.read_csv(path, encoding="utf-8-sig", dtype={"code": str, "community": str})
        gdf = gpd.GeoDataFrame(
            frame, geometry=gpd.GeoSeries.from_wkt(frame.pop("wkt")), crs="EPSG:4326"
        )
    else:
        gdf = gpd.read_file(f"zip://{path}" if fmt == "shp" else path)
    return info.stdout, gdf


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp", "csv"])
def test_grid_export_round_trip(
    city: dict[str, Any], server: str, tmp_path: Path, fmt: str
) -> None:
    r = export(server, city, "grids", format=fmt)
    assert r.status_code == 200, r.text
    disposition = r.headers["content-disposition"]
    assert re.fullmatch(
        rf'attachment; filename="gridmap-grids-all-\d{{8}}\.{re.escape(EXT[fmt])}"', disposition
    )
    info, gdf = read_back(tmp_path, fmt, r.content)
    assert len(gdf) == N_PUBLISHED
    assert sorted(gdf["code"].astype(str)) == city["codes"]
    assert set(gdf["comm_name"]) == {"测试社区"}  # Chinese names survive
    assert "测试社区" in info
    assert gdf.crs is not None and gdf.crs.to_epsg() == 4326
    if fmt != "csv":
        assert "WGS 84" in info or "WGS84" in info
    for code, geom in zip(gdf["code"].astype(str), gdf.geometry, strict=True):
        assert shapely.hausdorff_distance(geom, city["geoms"][code]) < 1e-6  # ≈ 10 cm
    for canary in (CANARY_CONTACT, CANARY_REPORTER):
        assert canary.encode() not in r.content
    if fmt == "shp":
        zf = zipfile.ZipFile(io.BytesIO(r.content))
        assert {n.rsplit(".", 1)[1] for n in zf.namelist()} >= {"shp", "shx", "dbf", "prj", "cpg"}
        assert zf.read("grids.cpg").decode().strip() == "UTF-8"
    if fmt == "geojson":
        body = r.json()
        assert "crs" not in body  # RFC 7946: WGS84 implied
        ring = body["features"][0]["geometry"]["coordinates"][0][0]
        assert all(len(str(v).split(".")[-1]) <= 7 for xy in ring for v in xy)
        assert r.headers["content-type"].startswith("application/geo+json")


def test_export_is_audited_with_purpose(city: dict[str, Any], server: str) -> None:
    r = export(server, city, "areas", level="district", format="csv", purpose="年度报表")
    assert r.status_code == 200
    assert "西陵区" in r.content.decode("utf-8-sig")
    with city["engine"].connect() as conn:
        rows = conn.execute(
            text(
                "SELECT actor, action, purpose, after FROM audit_log "
                "WHERE action LIKE 'export.%' ORDER BY id"
            )
        ).all()
    assert len(rows) == 1
    actor, action, purpose, after = rows[0]
    assert (actor, action, purpose) == ("planner", "export.areas", "年度报表")
    assert after["rows"] == 4 and after["format"] == "csv" and after["level"] == "district"


def test_purpose_is_required(city: dict[str, Any], server: str) -> None:
    for purpose in (None, "", "   ", "x" * 201):
        params = {"format": "geojson"} | ({"purpose": purpose} if purpose is not None else {})
        r = httpx.get(
            f"{server}/api/v1/exports/grids", params=params, headers=city["tokens"]["planner"]
        )
        assert r.status_code == 422, purpose
        assert r.headers["content-type"] == "application/problem+json"
    with city["engine"].connect() as conn:
        n = conn.execute(
            text("SELECT count(*) FROM audit_log WHERE action LIKE 'export.%'")
        ).scalar_one()
    assert n == 0


def test_version_community_level_and_scope(
    city: dict[str, Any], server: str, tmp_path: Path
) -> None:
    draft = export(server, city, "grids", version=city["draft"], format="geojson")
    assert draft.status_code == 200 and len(draft.json()["features"]) == N_DRAFT
    assert f"-v{city['draft']}-" in draft.headers["content-disposition"]
    one = export(server, city, "grids", community="420502001001", format="geojson")
    assert len(one.json()["features"]) == N_PUBLISHED
    scoped = export(server, city, "areas", "planner_xl", level="district", format="gpkg")
    _, gdf = read_back(tmp_path, "gpkg", scoped.content)
    assert list(gdf["code"]) == ["420502"] and list(gdf["name"]) == ["西陵区"]
    assert "gridmap-districts-420502-" in scoped.headers["content-disposition"]
    leader = export(server, city, "areas", "leader", level="community", format="shp")
    assert leader.status_code == 200
    _, comm = read_back(tmp_path, "shp", leader.content)
    assert list(comm["name"]) == ["测试社区"]
    # drafts are for planners: a leader asking for one finds nothing
    assert export(server, city, "grids", "leader", version=city["draft"]).status_code == 404
    # outside the caller's area: nothing to see
    assert export(server, city, "grids", "planner_wjg").status_code == 404
    assert export(server, city, "grids", community="420503001001").status_code == 404
    assert export(server, city, "grids", version=9999).status_code == 404


def test_export_roles_and_bad_input(city: dict[str, Any], server: str) -> None:
    for who in ("vol", "disp", "gm"):
        assert export(server, city, "grids", who).status_code == 403, who
    assert export(server, city, "grids", format="kml").status_code == 422
    assert export(server, city, "areas").status_code == 422  # level is required
    assert export(server, city, "areas", level="planet").status_code == 422
    assert export(server, city, "grids", community="42").status_code == 422
