"""Folium maps that work without the internet: vendored assets, compact layers, a final check.

Folium's pages load Leaflet, jQuery, Bootstrap, Font Awesome, awesome-markers (and d3 for
branca legends) from public CDNs. :func:`use_offline_assets` points every one of those defaults
at the copies vendored under ``web/static/vendor`` (see its README for versions and licences);
:func:`render` then rewrites any CDN address still present and refuses a page that references
a host other than its own (an intranet tile server may be allowed explicitly).

Map payloads stay small: polygons of a coverage are simplified together
(``shapely.coverage_simplify``, shared edges stay shared), coordinates have six decimals and
travel as varint-encoded deltas (about five characters per vertex) that
``/static/gridmap/maps.js`` decodes into Leaflet polygons, one SVG path per feature.

Examples
--------
>>> encode_geometries([shapely.box(111.0, 30.0, 111.001, 30.001)])
['g4hn5Bw6-2zGw-BAAv-Bv-BA']
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from html import escape as html_escape
from typing import Any
from urllib.parse import urlparse

import folium
import folium.features
import folium.plugins
import numpy as np
import shapely
from branca.element import Element, MacroElement
from folium.template import Template

from gridmap.crs import wgs84_to_gcj02

__all__ = [
    "LEAFLET_ONLY",
    "LOCAL_ASSETS",
    "EncodedPolygons",
    "JsCall",
    "base_map",
    "encode_geometries",
    "foreign_references",
    "js_literal",
    "localize",
    "render",
    "simplify_coverage",
    "to_display_crs",
    "use_offline_assets",
]

VENDOR = "/static/vendor"
APP_JS = ("gridmap_js", "/static/gridmap/maps.js")
APP_CSS = ("gridmap_css", "/static/gridmap/maps.css")

# Folium resource name → vendored copy (versions pinned; web/static/vendor/README.md)
LOCAL_ASSETS: dict[str, str] = {
    "leaflet": f"{VENDOR}/leaflet-1.9.4/leaflet.js",
    "leaflet_css": f"{VENDOR}/leaflet-1.9.4/leaflet.css",
    "jquery": f"{VENDOR}/jquery-3.7.1/jquery.min.js",
    "bootstrap": f"{VENDOR}/bootstrap-5.2.2/bootstrap.bundle.min.js",
    "bootstrap_css": f"{VENDOR}/bootstrap-5.2.2/bootstrap.min.css",
    "glyphicons_css": f"{VENDOR}/bootstrap-glyphicons-3.4.1/css/bootstrap-glyphicons.css",
    "awesome_markers": f"{VENDOR}/leaflet.awesome-markers-2.0.5/leaflet.awesome-markers.min.js",
    "awesome_markers_css": f"{VENDOR}/leaflet.awesome-markers-2.0.5/leaflet.awesome-markers.css",
    "awesome_markers_font_css": f"{VENDOR}/fontawesome-free-6.2.0/css/all.min.css",
    "awesome_rotate_css": f"{VENDOR}/folium-0.20.0/leaflet.awesome.rotate.min.css",
    "vectorGrid": f"{VENDOR}/leaflet.vectorgrid-1.3.0/Leaflet.VectorGrid.bundled.min.js",
    "d3": f"{VENDOR}/d3-3.5.5/d3.min.js",
    "leaflet-heat.js": f"{VENDOR}/leaflet.heat-0.2.0/leaflet-heat.min.js",
}
# The Folium plugins the pages use; each of their default_js/css entries must be vendored.
PLUGINS: tuple[Any, ...] = (folium.plugins.VectorGridProtobuf, folium.plugins.HeatMap)
# CDN address → local copy, read from Folium's own defaults (never written here). Vega's list
# carries the d3 address that branca's colour-map legends link outside the defaults.
_CDN: dict[str, str] = {}
for _cls in (folium.Map, *PLUGINS, folium.features.Vega):
    for _name, _url in [*_cls.default_js, *_cls.default_css]:
        if _url.startswith(("http:", "https:", "//")) and _name in LOCAL_ASSETS:
            _CDN[_url] = LOCAL_ASSETS[_name]

LEAFLET_ONLY = (
    [("leaflet", LOCAL_ASSETS["leaflet"]), APP_JS],
    [("leaflet_css", LOCAL_ASSETS["leaflet_css"]), APP_CSS],
)


def use_offline_assets() -> None:
    """Point Folium's default JS/CSS (the map and the plugins used here) at vendored copies.

    Idempotent. Raises ``KeyError`` naming a resource that is not vendored."""
    for cls in (folium.Map, *PLUGINS):
        cls.default_js = [(n, LOCAL_ASSETS[n]) for n, _ in cls.default_js]
        cls.default_css = [(n, LOCAL_ASSETS[n]) for n, _ in cls.default_css]


use_offline_assets()

_REF = re.compile(r"""(?:src|href)\s*=\s*["']?\s*((?:[a-z][a-z0-9+.-]*:)?//[^"'\s>]+)""", re.I)
_URL = re.compile(r"""(?:url\(|@import\s+)\s*["']?((?:[a-z][a-z0-9+.-]*:)?//[^"')\s]+)""", re.I)
_ABS = re.compile(r"""["'`]((?:https?:)?//[a-z0-9.-]+(?::\d+)?/[^"'`\s]*)""", re.I)


def localize(html: str) -> str:
    """Replace every known CDN address in ``html`` by its vendored copy."""
    for cdn, local in _CDN.items():
        html = html.replace(cdn, local)
    return html


def foreign_references(html: str, allowed_hosts: Iterable[str] = ()) -> list[str]:
    """Addresses in ``html`` (src/href attributes, CSS url()/@import, absolute URLs in quoted
    strings) whose host is not the page's own or one of ``allowed_hosts``."""
    allowed = {h.lower() for h in allowed_hosts}
    found = [m.group(1) for rx in (_REF, _URL, _ABS) for m in rx.finditer(html)]
    return sorted({u for u in found if (urlparse(u).hostname or "").lower() not in allowed})


def render(m: folium.Map, *, allowed_hosts: Iterable[str] = ()) -> str:
    """The page's HTML, offline: CDN links rewritten, any other host refused (``ValueError``)."""
    html = localize(m.get_root().render())
    bad = foreign_references(html, allowed_hosts)
    if bad:
        raise ValueError(f"page references other hosts: {', '.join(bad[:5])}")
    return html


def tile_host(tile_url: str | None) -> list[str]:
    """The host of a tile URL template, to allow it in :func:`render`."""
    host = urlparse(tile_url or "").hostname
    return [host] if host else []


def base_map(
    bounds: Sequence[float],
    *,
    title: str = "",
    tile_url: str | None = None,
    tile_attribution: str = "",
    max_zoom: int = 19,
    assets: tuple[list[tuple[str, str]], list[tuple[str, str]]] = LEAFLET_ONLY,
) -> folium.Map:
    """A map fitted to ``bounds`` (minx, miny, maxx, maxy in display coordinates) with no base
    tiles unless ``tile_url`` (a ``{z}/{x}/{y}`` template, e.g. an intranet tile server), a
    scale bar, and only ``assets`` loaded (Leaflet and the app script by default)."""
    m = folium.Map(
        location=None,
        tiles=None,
        control_scale=False,  # a metric one is added by maps.js (GM.title)
        zoom_control=True,
        max_zoom=max_zoom,
        zoom_snap=0.25,
    )
    m.default_js, m.default_css = list(assets[0]), list(assets[1])
    if tile_url:
        folium.TileLayer(
            tiles=tile_url, attr=tile_attribution or " ", name="底图", max_zoom=max_zoom
        ).add_to(m)
    minx, miny, maxx, maxy = bounds
    m.fit_bounds([[miny, minx], [maxy, maxx]])
    root = m.get_root()
    root.title = html_escape(title).replace("{", "&#123;")  # type: ignore[attr-defined]
    root.header.add_child(  # type: ignore[attr-defined]
        Element('<link rel="icon" href="/static/favicon.png">'), name="favicon"
    )
    return m


def simplify_coverage(geoms: Any, tolerance: float) -> np.ndarray:
    """Simplify polygons that tile an area *together*, so neighbours keep one shared edge
    (simplifying them one by one tears gaps and overlaps)."""
    arr = np.asarray(geoms, dtype=object)
    if tolerance <= 0 or len(arr) == 0:
        return arr
    return np.asarray(shapely.coverage_simplify(arr, tolerance), dtype=object)


def to_display_crs(geoms: Any, crs: str = "wgs84") -> np.ndarray:
    """Geometries in the tiles' system: unchanged for WGS84 tiles, shifted to GCJ-02 for tiles
    of Chinese web maps (Amap, Tencent; ~500 m apart from WGS84 in Yichang)."""
    arr = np.asarray(geoms, dtype=object)
    if crs == "wgs84" or len(arr) == 0:
        return arr
    if crs != "gcj02":
        raise ValueError(f"unsupported tile system {crs!r} (wgs84 or gcj02)")

    def shift(xy: np.ndarray) -> np.ndarray:
        lon, lat = wgs84_to_gcj02(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    return np.asarray(shapely.transform(arr, shift), dtype=object)


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


_CHARS = np.frombuffer(ALPHABET.encode(), dtype=np.uint8)


def _encode_values(values: np.ndarray) -> tuple[str, np.ndarray]:
    """Polyline-style varints of zig-zagged integer deltas (5 bits and a continuation bit per
    character) in the URL-safe base64 alphabet (no quotes, braces or backslashes); also the
    number of characters of each value."""
    v = np.asarray(values, dtype=np.int64)
    z = np.where(v < 0, ~(v << 1), v << 1)
    shifts = np.arange(8, dtype=np.int64) * 5
    chunks = (z[:, None] >> shifts) & 0x1F
    n = np.maximum(1, ((z[:, None] >> shifts) > 0).sum(axis=1))
    pos = np.arange(8)[None, :]
    codes = np.where(pos < (n - 1)[:, None], chunks | 0x20, chunks)
    return _CHARS[codes[pos < n[:, None]]].tobytes().decode(), n


_JS_ESCAPES = str.maketrans(
    {c: f"\\u{ord(c):04x}" for c in "{}<>&'%#`"}  # Jinja delimiters and HTML specials
)


def js_literal(obj: Any) -> str:
    """JSON for an inline script: strings escape ``{ } < > & ' % #`` as ``\\uXXXX``, so data
    (area names, codes) can neither end the script nor form a template delimiter when branca
    re-parses rendered scripts as Jinja templates."""
    if isinstance(obj, str):
        return json.dumps(obj, ensure_ascii=False).translate(_JS_ESCAPES)
    if isinstance(obj, Mapping):
        items = (f"{js_literal(str(k))}:{js_literal(v)}" for k, v in obj.items())
        return "{" + ",".join(items) + "}"
    if isinstance(obj, list | tuple):
        if all(v is None or isinstance(v, str | int | float) for v in obj):
            text = json.dumps([_plain(v) for v in obj], ensure_ascii=False, separators=(",", ":"))
            return text.translate(_JS_ESCAPES)  # no structural braces in a flat list
        return "[" + ",".join(js_literal(v) for v in obj) + "]"
    return json.dumps(_plain(obj))


def encode_geometries(geoms: Any, precision: int = 6) -> list[str]:
    """Each (multi)polygon as one string: rings joined by ``,``, polygons by ``;``; the deltas
    run on across rings and features (decode them in order: ``GM.decodeAll`` in maps.js).
    Rings are (lat, lon) pairs without the closing vertex."""
    geoms = list(geoms)
    if not geoms:
        return []
    scale = 10**precision
    polys = shapely.get_parts(np.asarray(geoms, dtype=object), return_index=True)
    rings, ring_poly = shapely.get_rings(polys[0], return_index=True)
    xy, ring_of = shapely.get_coordinates(rings, return_index=True)
    keep = np.ones(len(xy), dtype=bool)
    last = np.r_[np.flatnonzero(np.diff(ring_of)), len(ring_of) - 1]
    keep[last] = False  # drop each ring's closing vertex
    q = np.round(xy[keep][:, ::-1] * scale).astype(np.int64)
    ring_of = ring_of[keep]
    deltas = np.diff(np.vstack([np.zeros((1, 2), dtype=np.int64), q]), axis=0).ravel()
    text, widths = _encode_values(deltas)
    ends = np.cumsum(widths.reshape(-1, 2).sum(axis=1))  # text offset after each vertex
    starts = np.r_[0, ends[:-1]]
    first = np.r_[0, np.flatnonzero(np.diff(ring_of)) + 1]
    lastv = np.r_[first[1:] - 1, len(ring_of) - 1]
    ring_ids = ring_of[first]
    ring_text = {
        int(r): text[starts[a] : ends[b]] for r, a, b in zip(ring_ids, first, lastv, strict=True)
    }
    rings_of_poly: list[list[str]] = [[] for _ in range(len(polys[0]))]
    for ring_id, poly_id in enumerate(ring_poly):
        rings_of_poly[poly_id].append(ring_text.get(ring_id, ""))
    parts: list[list[str]] = [[] for _ in geoms]
    for poly_id, feature in enumerate(polys[1]):
        parts[feature].append(",".join(rings_of_poly[poly_id]))
    return [";".join(p) for p in parts]


class EncodedPolygons(folium.map.Layer):
    """A layer of polygons with columnar properties, decoded in the browser by
    ``GM.polygons(data, options)`` (styles, tooltips and modes live in maps.js)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = GM.polygons({{ this.data_js }}, {{ this.opts_js }});
        {% endmacro %}
        """
    )

    def __init__(
        self,
        geoms: Any,
        properties: Mapping[str, Sequence[Any]],
        *,
        name: str,
        kind: str,
        show: bool = True,
        overlay: bool = True,
        **opts: Any,
    ):
        super().__init__(name=name, overlay=overlay, control=True, show=show)
        self._name = "EncodedPolygons"
        cols = {k: [_plain(v) for v in vals] for k, vals in properties.items()}
        self.data_js = js_literal({"g": encode_geometries(geoms), "p": cols})
        # a layer hidden at first is decoded and built when it is first shown
        self.opts_js = js_literal({"kind": kind, **({} if show else {"lazy": True}), **opts})


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


class JsCall(MacroElement):
    """``GM.<fn>(map, args)`` in the map script; strings in ``layers`` name other elements
    (their JS variables are globals of the page)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = GM.{{ this.fn }}({{ this._parent.get_name() }},
            {{ this.args_js }});
        {% endmacro %}
        """
    )

    def __init__(self, fn: str, args: Mapping[str, Any]):
        super().__init__()
        if not re.fullmatch(r"[A-Za-z]\w*", fn):
            raise ValueError("bad function name")
        self._name = "JsCall"
        self.fn = fn
        self.args_js = js_literal(args)


def add_html(m: folium.Map, html: str) -> None:
    """Static HTML (page chrome around the map) in the page body; callers escape any data in
    it (branca renders it as a Jinja template, so template delimiters are refused)."""
    if any(d in html for d in ("{{", "{%", "{#")):
        raise ValueError("template delimiters in page HTML")
    m.get_root().html.add_child(Element(html))  # type: ignore[attr-defined]
