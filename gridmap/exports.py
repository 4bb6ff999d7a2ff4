"""File exports: a WGS84 GeoDataFrame in, the bytes of one file out (no web, no database).

GeoJSON follows RFC 7946 (WGS84 lon/lat, counter-clockwise outer rings, 7 decimals ≈ 1 cm).
Shapefiles come zipped with a ``.cpg`` saying UTF-8, so GIS tools read Chinese names right
instead of guessing a local code page. CSV carries the geometry as WKT in a ``wkt`` column
and a UTF-8 byte-order mark so spreadsheet programs do not mangle the names.

>>> import geopandas as gpd, shapely
>>> gdf = gpd.GeoDataFrame({"name": ["西陵区"]}, geometry=[shapely.box(111, 30, 111.1, 30.1)],
...                        crs="EPSG:4326")
>>> b"wkt" in to_csv(gdf) and "西陵区".encode() in to_geojson(gdf)
True
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely

from gridmap.errors import InvalidInput

__all__ = ["FORMATS", "ExportFormat", "export_bytes", "to_csv", "to_geojson", "to_gpkg", "to_shp"]

PRECISION = 7


def _prepared(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """WGS84, with integer columns that hold nulls made nullable integers (not floats)."""
    if gdf.crs is None:
        raise InvalidInput("export needs a frame with a CRS", code="missing-crs")
    out = gdf.to_crs(4326) if gdf.crs.to_epsg() != 4326 else gdf.copy()
    for col in out.columns:
        if col == out.geometry.name or out[col].dtype != object:
            continue
        vals = out[col].dropna()
        if len(vals) and all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
            out[col] = pd.array(out[col].tolist(), dtype="Int64")
    return out


def _write(gdf: gpd.GeoDataFrame, driver: str, layer: str, **options: object) -> bytes:
    buf = io.BytesIO()
    pyogrio.write_dataframe(_prepared(gdf), buf, driver=driver, layer=layer, **options)
    return buf.getvalue()


def to_geojson(gdf: gpd.GeoDataFrame, layer: str = "export") -> bytes:
    """RFC 7946 GeoJSON (WGS84, right-hand rings, 7 decimals)."""
    return _write(gdf, "GeoJSON", layer, RFC7946="YES", COORDINATE_PRECISION=PRECISION)


def to_gpkg(gdf: gpd.GeoDataFrame, layer: str = "export") -> bytes:
    """A GeoPackage with one layer."""
    return _write(gdf, "GPKG", layer, VERSION="1.2")  # readable by GDAL / QGIS of 2020 on


def to_shp(gdf: gpd.GeoDataFrame, layer: str = "export") -> bytes:
    """A zip of the Shapefile parts (.shp .shx .dbf .prj .cpg), attributes in UTF-8."""
    with tempfile.TemporaryDirectory(prefix="gridmap-shp-") as tmp:
        path = Path(tmp) / f"{layer}.shp"
        pyogrio.write_dataframe(_prepared(gdf), path, driver="ESRI Shapefile", encoding="UTF-8")
        (Path(tmp) / f"{layer}.cpg").write_text("UTF-8", encoding="ascii")  # always say it
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for part in sorted(Path(tmp).iterdir()):
                zf.write(part, part.name)
    return buf.getvalue()


def to_csv(gdf: gpd.GeoDataFrame, layer: str = "export") -> bytes:
    """CSV (UTF-8 with BOM) with the geometry as WKT in the ``wkt`` column."""
    gdf = _prepared(gdf)
    frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    frame["wkt"] = shapely.to_wkt(
        gdf.geometry.values, rounding_precision=PRECISION, trim=True, output_dimension=2
    )
    return frame.to_csv(index=False, lineterminator="\n").encode("utf-8-sig")


ExportFormat = tuple[Callable[[gpd.GeoDataFrame, str], bytes], str, str]

# format name → (writer, media type, file extension)
FORMATS: dict[str, ExportFormat] = {
    "geojson": (to_geojson, "application/geo+json", "geojson"),
    "gpkg": (to_gpkg, "application/geopackage+sqlite3", "gpkg"),
    "shp": (to_shp, "application/zip", "shp.zip"),
    "csv": (to_csv, "text/csv; charset=utf-8", "csv"),
}


def export_bytes(gdf: gpd.GeoDataFrame, fmt: str, layer: str) -> tuple[bytes, str, str]:
    """(file bytes, media type, extension) of ``gdf`` written as ``fmt``."""
    if fmt not in FORMATS:
        raise InvalidInput(
            f"unknown export format {fmt[:20]!r}; use one of {', '.join(FORMATS)}",
            code="unknown-format",
        )
    writer, media, ext = FORMATS[fmt]
    return writer(gdf, layer), media, ext
