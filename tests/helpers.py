"""Small helpers shared by the DB-backed tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from gridmap.settings import PROJECT_ROOT

DISTRICTS = PROJECT_ROOT / "data" / "boundaries" / "yichang_districts.geojson"
SCENARIO = PROJECT_ROOT / "data" / "scenario"
COMMUNITY = "420502001001"


def snapshot(engine: Engine) -> dict[str, str]:
    """md5 of every application table's full contents: equal snapshots = unchanged database."""
    out: dict[str, str] = {}
    with engine.connect() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'spatial_ref_sys' ORDER BY 1"
                )
            )
        ]
        for t in tables:
            out[t] = conn.execute(
                text(
                    f"SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) "
                    f"FROM {t} x"
                )
            ).scalar_one()
        out["_sequences"] = ",".join(
            str(r[0])
            for r in conn.execute(
                text(
                    "SELECT last_value FROM pg_sequences WHERE schemaname = 'public' ORDER BY "
                    "sequencename"
                )
            )
        )
    return out


def write_geojson(path: Path, features: list[dict[str, Any]]) -> Path:
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False),
        encoding="utf-8",
    )
    return path


def feature(
    code: str, name: str, coords: Any, parent: str | None = None, gtype: str = "Polygon"
) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {"code": code, "name": name, "parent": parent},
        "geometry": {"type": gtype, "coordinates": coords},
    }


def xiling_block(db: Engine, half_height: float) -> tuple[Any, float]:
    """Import the real districts; a 1.2 km wide block inside 西陵区 and its centre longitude."""
    import geopandas as gpd
    import shapely

    from gridmap.store.imports import import_boundaries

    import_boundaries(db, DISTRICTS, level="district", commit=True)
    district = gpd.read_file(DISTRICTS).set_index("code").geometry["420502"]
    c = district.representative_point()
    block = shapely.box(c.x - 0.006, c.y - half_height, c.x + 0.006, c.y + half_height)
    block = block.intersection(district)
    return max(shapely.get_parts(block), key=lambda g: g.area), c.x


def add_street(session: Any, block: Any, communities: list[tuple[str, str, Any]]) -> None:
    """Street 420502001 (测试街道) covering ``block`` and its communities (code, name, geometry)."""
    import geopandas as gpd

    from gridmap.store.areas import upsert_areas

    for level, rows in (
        ("street", [("420502001", "测试街道", block, "420502")]),
        ("community", [(code, name, geom, "420502001") for code, name, geom in communities]),
    ):
        upsert_areas(
            session,
            gpd.GeoDataFrame(
                {
                    "code": [r[0] for r in rows],
                    "name": [r[1] for r in rows],
                    "parent": [r[3] for r in rows],
                },
                geometry=[r[2] for r in rows],
                crs=4326,
            ),
            level=level,
            source="test",
            user="t",
        )


def random_units(rng: Any, geom: Any, community: str, draws: int, keep: int) -> Any:
    """Up to ``keep`` building points drawn uniformly in ``geom`` with random counts."""
    import pandas as pd
    import shapely

    minx, miny, maxx, maxy = geom.bounds
    pts = shapely.points(rng.uniform(minx, maxx, draws), rng.uniform(miny, maxy, draws))
    pts = pts[shapely.contains_properly(geom, pts)][:keep]
    return pd.DataFrame(
        {
            "community": community,
            "lon": shapely.get_x(pts),
            "lat": shapely.get_y(pts),
            "households": rng.integers(5, 60, len(pts)),
            "residents": rng.integers(10, 150, len(pts)),
        }
    )
