"""Read administrative boundary files (GeoJSON, GeoPackage, (zipped) Shapefile) into WGS84.

Boundary files arrive often GBK-encoded, often in GCJ-02 while labelled EPSG:4326, and often with
a few broken rings. Reading never stops at a bad feature: it becomes a :class:`Problem` naming the
feature. Validation and repair live in :mod:`gridmap.boundaries`, which re-exports this API.

Examples
--------
>>> from pathlib import Path
>>> path = Path(__file__).parents[1] / "data/boundaries/yichang_districts.geojson"
>>> gdf, problems = read_boundary_file(path)
>>> list(gdf.columns), problems
(['code', 'name', 'parent', 'geometry'], [])
"""

from __future__ import annotations

import json
import math
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import pyogrio.raw
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from gridmap.crs import normalize_crs, transform_geometry
from gridmap.errors import InvalidInput
from gridmap.topology import Problem, feature_label, near, to_lonlat

__all__ = ["FieldMap", "read_boundary_file"]

_POLYGONAL = ("Polygon", "MultiPolygon")
_UNREADABLE = "unreadable-file"
_GEOS_ERRORS = (("closed", "unclosed-ring"), ("number of points", "too-few-points"))
_ALIASES = {  # tried in order, case-insensitively
    "code": "code adcode ad_code areacode area_code gb 编码 代码 区划代码 行政区划代码",
    "name": "name 名称 name_zh name_cn 区划名称 mc",
    "parent": "parent parent_code parentcode parent_adcode pcode 上级编码 上级代码 父级编码",
}


@dataclass(frozen=True)
class FieldMap:
    """Which source columns hold the code, name and parent code (case-insensitive).

    Leave a field ``None`` to try its aliases in order; name it to insist on that column.
    """

    code: str | None = None
    name: str | None = None
    parent: str | None = None
    code_aliases: tuple[str, ...] = tuple(_ALIASES["code"].split())
    name_aliases: tuple[str, ...] = tuple(_ALIASES["name"].split())
    parent_aliases: tuple[str, ...] = tuple(_ALIASES["parent"].split())

    def resolve(self, columns: list[str], source: str) -> dict[str, str | None]:
        """Map ``code``/``name``/``parent`` to actual columns; InvalidInput if code/name lack."""
        lower = {c.lower(): c for c in columns}
        out: dict[str, str | None] = {}
        for role in ("code", "name", "parent"):
            given, aliases = getattr(self, role), getattr(self, f"{role}_aliases")
            if given is not None and given.lower() not in lower:
                raise _bad(f"{source}: {role} field {given!r} not found; columns are {columns}")
            wanted = [given] if given is not None else aliases
            out[role] = next((lower[a.lower()] for a in wanted if a.lower() in lower), None)
            if out[role] is None and role != "parent":
                raise _bad(
                    f"{source}: no {role} field (looked for {list(aliases)}); "
                    f"columns are {columns}; name it with FieldMap({role}=...)"
                )
        return out


def _text(value: Any) -> str | None:
    """A code or name as clean text: 420502.0 → '420502', DataV ``{"adcode": n}`` → 'n'."""
    if isinstance(value, dict):
        value = value.get("adcode", value.get("code"))
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)
    return str(value).strip() or None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _bad(message: str, code: str = "missing-field") -> InvalidInput:
    return InvalidInput(message, code=code)


def _position(p: Any) -> tuple[float, float] | None:
    if not (isinstance(p, list | tuple) and len(p) >= 2):
        return None
    ok = all(isinstance(v, int | float) and not isinstance(v, bool) for v in p[:2])
    return (float(p[0]), float(p[1])) if ok else None


def _ring_failure(ring: Any, n: int) -> tuple[str, str, tuple[float, float] | None] | None:
    """Why GEOS could not build this GeoJSON ring (or None if it can)."""
    if not isinstance(ring, list):
        return "invalid-geometry", f"ring {n} is not a list of positions", None
    pts = [_position(p) for p in ring]
    if None in pts:
        raw = ring[pts.index(None)]
        return "invalid-geometry", f"non-numeric position {raw!r} in ring {n}", None
    finite = [p for p in pts if p is not None and math.isfinite(p[0]) and math.isfinite(p[1])]
    first = finite[0] if finite else None
    if len(finite) < len(pts):
        bad = next(p for p in pts if p not in finite)
        return "non-finite-coordinate", f"non-finite coordinate {bad} in ring {n}", first
    if len(pts) < 4:
        return "too-few-points", f"ring {n} has {len(pts)} points (a ring needs ≥ 4)", first
    if pts[0] != pts[-1]:
        return "unclosed-ring", f"ring {n} is not closed (ends at {pts[-1]})", first
    return None


def _geojson_geometry(g: Any) -> tuple[BaseGeometry | None, tuple | None]:
    """Build one GeoJSON geometry, or say why it cannot be built."""
    if g is None:
        return None, None
    if not isinstance(g, dict) or "type" not in g:
        return None, ("invalid-geometry", "geometry is not a GeoJSON geometry object", None)
    if g["type"] in _POLYGONAL:
        polys = [g.get("coordinates")] if g["type"] == "Polygon" else g.get("coordinates")
        if not isinstance(polys, list) or not all(isinstance(p, list) for p in polys):
            return None, ("invalid-geometry", f"malformed {g['type']} coordinates", None)
        for n, ring in enumerate((ring for poly in polys for ring in poly), 1):
            if (failure := _ring_failure(ring, n)) is not None:
                return None, failure
    try:
        return shape(g), None
    except Exception as exc:  # shapely/GEOS raise many types on malformed input
        return None, ("invalid-geometry", f"unreadable geometry: {_one_line(exc)}", None)


def _declared_crs(value: Any, source: str) -> str | None:
    """The canonical name (see normalize_crs) of a CRS declared by a file, or None."""
    if not value:
        return None
    try:
        crs = CRS.from_user_input(value)
    except CRSError as exc:
        raise _bad(f"{source}: declared CRS not understood; pass crs=", "unknown-crs") from exc
    if crs.to_authority() == ("OGC", "CRS84"):
        return "wgs84"
    if (epsg := crs.to_epsg(min_confidence=70)) is None:
        raise _bad(
            f"{source}: declared CRS {crs.name!r} has no EPSG code; pass crs=", "unknown-crs"
        )
    return normalize_crs(f"EPSG:{epsg}")


def _read_geojson(path: Path, layer: str | None, encoding: str | None) -> tuple:
    try:
        doc = json.loads(path.read_text(encoding=encoding or "utf-8-sig"))
    except (OSError, UnicodeError, LookupError, ValueError) as exc:
        raise _bad(f"cannot read {path.name} as GeoJSON: {_one_line(exc)}", _UNREADABLE) from exc
    kind = doc.get("type") if isinstance(doc, dict) else None
    feats = doc.get("features") if kind == "FeatureCollection" else [doc]
    if kind not in ("FeatureCollection", "Feature") or not isinstance(feats, list):
        raise _bad(f"{path.name} is not a GeoJSON FeatureCollection or Feature", _UNREADABLE)
    if layer is not None and layer not in (doc.get("name"), path.stem):
        raise _bad(f"{path.name} has no layer {layer!r}", "unknown-layer")
    props, geoms, failures = [], [], []
    for i, feat in enumerate(feats):
        feat = feat if isinstance(feat, dict) else {"geometry": {}}
        prop = feat.get("properties")
        prop = prop if isinstance(prop, dict) else {}
        geom, why = _geojson_geometry(feat.get("geometry"))
        props.append(prop)
        geoms.append(geom)
        if why is not None:
            failures.append((i, *why))
    crs = doc.get("crs")
    crs = crs.get("properties") if isinstance(crs, dict) else None
    declared = _declared_crs(crs.get("name") if isinstance(crs, dict) else None, path.name)
    return props, list(dict.fromkeys(k for p in props for k in p)), geoms, failures, declared


def _undeclared_dbf_encoding(path: Path) -> bool:
    """True for a Shapefile (plain or zipped) with neither a .cpg nor a DBF language id."""
    try:
        if path.suffix.lower() == ".zip":
            with zipfile.ZipFile(path) as zf:
                parts = {n.lower()[-4:]: n for n in zf.namelist()}
                dbf = zf.read(parts[".dbf"])[:32] if ".dbf" in parts else b""
        elif path.suffix.lower() == ".shp":
            files = {f.suffix.lower(): f for f in path.parent.iterdir() if f.stem == path.stem}
            parts = {k: str(f) for k, f in files.items()}
            dbf = files[".dbf"].read_bytes()[:32] if ".dbf" in files else b""
        else:
            return False
    except (OSError, zipfile.BadZipFile):
        return False
    return ".cpg" not in parts and dbf[29:30] == b"\x00"


def _read_ogr(path: Path, layer: str | None, encoding: str | None) -> tuple:
    try:
        layers = [(str(n), g) for n, g in pyogrio.list_layers(path)]
    except Exception as exc:  # pyogrio raises DataSourceError, OSError, ... for broken files
        raise _bad(f"cannot open boundary file {path.name}: {_one_line(exc)}", _UNREADABLE) from exc
    spatial = [n for n, g in layers if g is not None]
    if layer is None and len(spatial) != 1:
        raise _bad(
            f"{path.name} has {len(spatial)} spatial layers {spatial}; pass layer=", "unknown-layer"
        )
    if layer is not None and layer not in [n for n, _ in layers]:
        raise _bad(
            f"{path.name} has no layer {layer!r}; layers are {[n for n, _ in layers]}",
            "unknown-layer",
        )
    layer = layer or spatial[0]
    # An undeclared DBF encoding is UTF-8 or (older Chinese data) GBK; GDAL would use Latin-1.
    guess = ["utf-8", "gbk", None] if _undeclared_dbf_encoding(path) else [None]
    for n, enc in enumerate([encoding] if encoding else guess, 1):
        try:
            meta, _, wkb, field_data = pyogrio.raw.read(path, layer=layer, encoding=enc)
            break
        except UnicodeError as exc:
            if enc in (encoding, None) or n == len(guess):
                raise _bad(
                    f"{path.name}: text is not {enc or 'in its declared'} encoding; "
                    "pass encoding= (e.g. 'gbk')",
                    _UNREADABLE,
                ) from exc
        except Exception as exc:
            raise _bad(
                f"cannot read layer {layer!r} of {path.name}: {_one_line(exc)}", _UNREADABLE
            ) from exc
    columns = [str(c) for c in meta["fields"]]
    props = [dict(zip(columns, row, strict=True)) for row in zip(*field_data, strict=True)]
    props = props if columns else [{} for _ in wkb]
    geoms, failures = [], []
    for i, blob in enumerate(wkb):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                geoms.append(None if blob is None else shapely.from_wkb(blob))
        except Exception as exc:  # GEOS refuses unclosed or too-short rings
            msg = _one_line(exc)
            kind = next((k for key, k in _GEOS_ERRORS if key in msg), "invalid-geometry")
            failures.append((i, kind, f"unreadable geometry: {msg}", None))
            geoms.append(None)
    return props, columns, geoms, failures, _declared_crs(meta.get("crs"), path.name)


def _source_crs(override: str | None, declared: str | None, geoms: list, source: str) -> str:
    """Override, else declared, else WGS84 if most coordinates look like lon/lat."""
    if override is not None or declared is not None:
        return override or declared  # type: ignore[return-value]
    xy = shapely.get_coordinates(np.array([g for g in geoms if g is not None], dtype=object))
    xy = xy[np.isfinite(xy).all(axis=1)]
    if len(xy) == 0 or np.mean((np.abs(xy) <= 180).all(axis=1)) >= 0.5:
        return "wgs84"
    raise _bad(
        f"{source} declares no CRS and its coordinates (e.g. {tuple(xy[0])}) are not "
        "lon/lat; pass crs=, e.g. crs='EPSG:4546'",
        "unknown-crs",
    )


def _promote(geom: BaseGeometry | None) -> BaseGeometry | None:
    if geom is None:
        return None
    geom = shapely.force_2d(geom)
    if geom.geom_type == "Polygon":
        return shapely.MultiPolygon() if geom.is_empty else shapely.MultiPolygon([geom])
    return geom


def read_boundary_file(
    path: str | Path,
    *,
    layer: str | None = None,
    encoding: str | None = None,
    crs: str | None = None,
    fields: FieldMap = FieldMap(),
) -> tuple[gpd.GeoDataFrame, list[Problem]]:
    """Read a boundary file into WGS84 ``code, name, parent, geometry`` (MultiPolygon).

    GeoJSON is parsed here so every ring can be checked before GEOS sees it; other formats
    (GeoPackage, Shapefile, zipped Shapefile) go through pyogrio as raw WKB. A feature whose
    geometry cannot be built (unclosed ring, < 4 points, non-numeric or non-finite coordinates)
    is left out of the frame and returned as a :class:`Problem`; the index keeps file positions.

    ``crs`` overrides the file's declared CRS (Amap data labelled EPSG:4326 is really GCJ-02);
    with neither, lon/lat-looking coordinates are taken as WGS84. ``encoding`` overrides a
    Shapefile's .cpg. Raises :class:`InvalidInput` for an unopenable file, an unknown layer, a
    missing code/name field or an unknown CRS.
    """
    path = Path(path)
    override = normalize_crs(crs) if crs is not None else None
    if not str(path).startswith("/vsi") and not path.is_file():
        raise _bad(f"boundary file {path} does not exist", _UNREADABLE)
    reader = _read_geojson if path.suffix.lower() in (".geojson", ".json") else _read_ogr
    props, columns, geoms, failures, declared = reader(path, layer, encoding)
    cols = fields.resolve(columns, path.name)
    for i, geom in enumerate(geoms):  # NaN survives WKB parsing; it must not reach pyproj
        if geom is not None and not np.isfinite(shapely.get_coordinates(geom)).all():
            failures.append((i, "non-finite-coordinate", "non-finite (NaN/inf) coordinate", None))
    failed = {f[0] for f in failures}
    keep = [i for i in range(len(geoms)) if i not in failed]
    src = _source_crs(override, declared, [geoms[i] for i in keep], path.name)
    problems = []
    for i, kind, reason, xy in sorted(failures, key=lambda f: f[0]):
        label = feature_label(_text(props[i].get(cols["code"])), i)
        name = _text(props[i].get(cols["name"]))
        who = f"{label} ({name})" if name else label
        loc = to_lonlat(shapely.Point(xy), src) if xy is not None else None
        loc = loc if loc and abs(loc[0]) <= 180 and abs(loc[1]) <= 90 else None
        problems.append(Problem(kind, label, f"{who}: {reason} {near(loc)}", loc))
    arr = np.array([_promote(geoms[i]) for i in keep] + [None], dtype=object)[:-1]
    arr = transform_geometry(arr, src, "wgs84") if len(arr) else arr
    data = {
        role: [_text(props[i].get(cols[role])) if cols[role] else None for i in keep]
        for role in ("code", "name", "parent")
    }
    geometry = gpd.GeoSeries(arr, index=keep, crs="EPSG:4326")
    return gpd.GeoDataFrame(data, geometry=geometry, index=keep), problems
