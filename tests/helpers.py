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
