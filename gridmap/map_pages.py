"""The map pages (pure builders: GeoDataFrames and dicts in, offline HTML out; no database).

Coverage (leaders), dispatch wall map (dispatchers), incidents (leaders), the dashboard table
and the login page. Labels are Chinese; colours are ColorBrewer ramps readable in print.
"""

from __future__ import annotations

import html as _html
from dataclasses import dataclass
from datetime import date
from typing import Any

import folium
import folium.plugins
import geopandas as gpd
import numpy as np
import pandas as pd

from gridmap.maps import (
    APP_JS,
    LOCAL_ASSETS,
    EncodedPolygons,
    JsCall,
    add_html,
    base_map,
    render,
    simplify_coverage,
    tile_host,
    to_display_crs,
)
from gridmap.stats import CARE_STATUS, STAFF_STATUS

__all__ = [
    "DASHBOARD_COLUMNS",
    "TileConfig",
    "coverage_page",
    "dashboard_page",
    "dispatch_page",
    "incident_page",
    "login_page",
]

STAFF = {
    "title": "人员配备",
    "items": [["#1a9850", "配备完整"], ["#fdae61", "部分缺员"], ["#d73027", "无网格员"]],
}
CARE = {
    "title": "帮扶比例（1:5）",
    "items": [["#4575b4", "达标"], ["#f46d43", "志愿者不足"], ["#e0e0e0", "无帮扶对象"]],
}
GRID_MODES = {
    "staff": {
        "field": "st",
        "colors": [c for c, _ in STAFF["items"]],
        "labels": ["完整", "部分缺员", "无网格员"],
    },
    "care": {
        "field": "cs",
        "colors": [c for c, _ in CARE["items"]],
        "labels": ["达标", "志愿者不足", "无"],
    },
}
GRID_TIP = [
    ["网格编码", "code"], ["户数", "hh"], ["网格员", "gm"], ["调解员", "me"], ["法律顾问", "lp"],
    ["宣传员", "pu"], ["法律援助", "la"], ["帮扶志愿者", "vo"], ["帮扶对象", "care"],
    ["人员配备", "st", "staff"], ["帮扶比例", "cs", "care"],
]  # fmt: skip
AREA_TIP = [
    ["编码", "code"], ["网格", "grids"], ["配备完整", "staff_complete"],
    ["部分缺员", "staff_partial"], ["无网格员", "staff_none"], ["帮扶对象", "care"],
]  # fmt: skip
LEVEL_NAMES = {"district": "区界", "street": "街道界", "community": "社区界"}
AREA_STYLE = {
    "district": {"color": "#111", "weight": 2.6, "fill": False},
    "street": {"color": "#333", "weight": 1.6, "dashArray": "6 4", "fill": False},
    "community": {"color": "#666", "weight": 0.9, "fill": False},
}
SUPPRESSION_NOTE = "帮扶对象数 1–10 显示为“<11”；“*”为防止由合计推算而隐去"
INCIDENT_LABELS = {
    "reported": "待派单", "dispatched": "已派单", "accepted": "已接单", "on_site": "已到场",
    "escalated": "已上报", "resolved": "已化解", "failed": "调解未成", "closed": "已办结",
    "cancelled": "已撤销",
}  # fmt: skip
MEDIATOR_LABELS = {"available": "空闲", "busy": "忙碌", "off_duty": "休息"}
REASONS = {
    "OWN_GRID": "本网格",
    "ADJACENT_GRID": "相邻网格",
    "SAME_COMMUNITY": "同社区",
    "NEAREST_ETA": "距离最近",
}
COUNT_MODE = {
    "field": "n",
    "breaks": [1, 3, 6, 11],
    "colors": ["#f7f7f7", "#fee5d9", "#fcae91", "#fb6a4a", "#cb181d"],
}
SUCCESS_MODE = {
    "field": "rate",
    "breaks": [0.5, 0.7, 0.85],
    "colors": ["#d7301f", "#fc8d59", "#91cf60", "#1a9850"],
    "nodata": "#eeeeee",
}


@dataclass(frozen=True)
class TileConfig:
    """Optional base tiles: a ``{z}/{x}/{y}`` URL template (an intranet server), its
    attribution and system (``gcj02`` for Chinese web-map tiles: vectors are shifted to match)."""

    url: str | None = None
    attribution: str = ""
    crs: str = "wgs84"
    max_zoom: int = 19


def _bounds(frame: gpd.GeoDataFrame, crs: str) -> tuple[float, float, float, float]:
    if frame.empty:
        return (111.2, 30.6, 111.4, 30.8)
    b = gpd.GeoSeries(to_display_crs(frame.geometry.values, crs)).total_bounds
    return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))


def _map(bounds: tuple[float, ...], title: str, tiles: TileConfig, **kw: Any) -> folium.Map:
    return base_map(
        bounds,
        title=title,
        tile_url=tiles.url,
        tile_attribution=tiles.attribution,
        max_zoom=tiles.max_zoom,
        **kw,
    )


def _area_layers(m: folium.Map, areas: gpd.GeoDataFrame, tiles: TileConfig, tol: float) -> None:
    for level in ("community", "street", "district"):
        sub = areas[areas["kind"] == level]
        if sub.empty:
            continue
        geoms = to_display_crs(simplify_coverage(sub.geometry.values, tol), tiles.crs)
        cols = [c for c in ("code", "name", *[t[1] for t in AREA_TIP]) if c in sub.columns]
        props = {c: sub[c].tolist() for c in dict.fromkeys(cols)}
        EncodedPolygons(
            geoms,
            props,
            name=LEVEL_NAMES[level],
            kind=level,
            style=AREA_STYLE[level],
            tip=[t for t in AREA_TIP if t[1] in props],
            titleField="name",
            label="name" if level == "district" else None,
        ).add_to(m)


def coverage_page(
    grids: gpd.GeoDataFrame,
    areas: gpd.GeoDataFrame,
    *,
    title: str,
    subtitle: str,
    focus: gpd.GeoDataFrame | None = None,
    tiles: TileConfig = TileConfig(),
    print_mode: bool = False,
    mode: str = "staff",
    vector_url: str | None = None,
    grid_tolerance: float = 2e-5,
    area_tolerance: float = 5e-5,
) -> str:
    """Grids coloured by staffing (or care-ratio, switchable) with district/street/community
    outlines. ``grids``: code, hh, gm, me, lp, pu, la, vo, staff_status, care_status, care
    (already suppressed), geometry. With ``vector_url`` the grids come as vector tiles."""
    m = _map(_bounds(focus if focus is not None else grids, tiles.crs), title, tiles)
    if vector_url:
        m.default_js.insert(1, ("vectorGrid", LOCAL_ASSETS["vectorGrid"]))
    opts: dict[str, Any] = {"modes": GRID_MODES, "mode": mode, "tip": GRID_TIP}
    if vector_url:
        areas_style = {k: {"style": v} for k, v in AREA_STYLE.items()}
        JsCall(
            "vectorTiles",
            {"url": vector_url, "name": "gm_grids", "grid": opts, "areas": areas_style},
        ).add_to(m)
        layer_name = "gm_grids"
    else:
        props = {
            "code": grids["code"].tolist(),
            "hh": grids["households"].astype(int).tolist(),
            **{c: grids[c].astype(int).tolist() for c in ("gm", "me", "lp", "pu", "la", "vo")},
            "care": grids["care"].tolist(),
            "st": [STAFF_STATUS.index(s) for s in grids["staff_status"]],
            "cs": [CARE_STATUS.index(s) for s in grids["care_status"]],
        }
        geoms = to_display_crs(simplify_coverage(grids.geometry.values, grid_tolerance), tiles.crs)
        layer = EncodedPolygons(geoms, props, name="网格", kind="grid", **opts)
        layer.add_to(m)
        layer_name = layer.get_name()
        _area_layers(m, areas, tiles, area_tolerance)
        folium.LayerControl(collapsed=False).add_to(m)
    JsCall("title", {"title": title, "subtitle": subtitle, "print": print_mode}).add_to(m)
    JsCall(
        "legend",
        {
            "layer": layer_name,
            "modes": {"staff": STAFF, "care": CARE},
            "initial": mode,
            "note": SUPPRESSION_NOTE,
        },
    ).add_to(m)
    return render(m, allowed_hosts=tile_host(tiles.url))


def dispatch_page(
    data: dict[str, Any],
    areas: gpd.GeoDataFrame,
    *,
    title: str,
    data_url: str,
    recommendation_url: str,
    poll_seconds: float = 5.0,
    tiles: TileConfig = TileConfig(),
) -> str:
    """Open incidents by state and mediators by availability, refreshed by polling ``data_url``;
    clicking an incident lists and links its recommended mediators."""
    m = _map(_bounds(areas, tiles.crs), title, tiles)
    _area_layers(m, areas, tiles, 5e-5)
    JsCall("title", {"title": title, "subtitle": "点击事件查看推荐调解员"}).add_to(m)
    incident_colors = {
        "reported": "#d73027", "dispatched": "#fc8d59", "accepted": "#91bfdb",
        "on_site": "#4575b4", "escalated": "#762a83",
    }  # fmt: skip
    mediator_colors = {"available": "#1a9850", "busy": "#984ea3", "off_duty": "#969696"}
    legend = {
        "title": "图例",
        "items": [[c, f"事件：{INCIDENT_LABELS[s]}"] for s, c in incident_colors.items()]
        + [[c, f"调解员：{MEDIATOR_LABELS[s]}"] for s, c in mediator_colors.items()],
    }
    JsCall("legend", {"modes": {"all": legend}, "position": "bottomleft"}).add_to(m)
    JsCall(
        "dispatch",
        {
            "data": data,
            "url": data_url,
            "recommendation": recommendation_url,
            "poll": poll_seconds,
            "colors": {"incident": incident_colors, "mediator": mediator_colors},
            "labels": {
                "incident": INCIDENT_LABELS,
                "mediator": MEDIATOR_LABELS,
                "reason": REASONS,
                "none": "暂无可派调解员",
                "failed": "推荐获取失败",
            },
        },
    ).add_to(m)
    add_html(
        m,
        "<div class='gm-sidebar'><h2>待处理事件</h2><ul id='gm-incidents'></ul>"
        "<h2>推荐调解员</h2><ul id='gm-candidates'><li>—</li></ul>"
        "<p>更新于 <span id='gm-updated'></span></p></div>"
        "<script>document.body.classList.add('gm-with-sidebar')</script>",
    )
    return render(m, allowed_hosts=tile_host(tiles.url))


def incident_page(
    grids: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame,
    *,
    title: str,
    subtitle: str,
    form: dict[str, Any],
    categories: dict[str, str],
    heat: pd.DataFrame | None = None,
    k: int = 11,
    tiles: TileConfig = TileConfig(),
) -> str:
    """Incidents per grid (choropleth; no incident points), a heat map of the same per-grid
    counts (switchable with the choropleth) and mediation success per community.
    ``grids``: code, n; ``heat``: lon, lat, weight (a grid's representative point and its
    count, already suppressed below ``k``); ``communities``: code, name, n, mediations, rate."""
    m = _map(_bounds(grids, tiles.crs), title, tiles)
    geoms = to_display_crs(simplify_coverage(grids.geometry.values, 2e-5), tiles.crs)
    layer = EncodedPolygons(
        geoms,
        {"code": grids["code"].tolist(), "n": grids["n"].astype(int).tolist()},
        name="事件数（网格）",
        kind="grid",
        overlay=False,
        modes={"count": COUNT_MODE},
        mode="count",
        tip=[["网格编码", "code"], ["事件数", "n"]],
    )
    layer.add_to(m)
    heat_layer = _heat_layer(heat if heat is not None else pd.DataFrame(), tiles)
    heat_layer.add_to(m)
    cgeoms = to_display_crs(simplify_coverage(communities.geometry.values, 5e-5), tiles.crs)
    EncodedPolygons(
        cgeoms,
        {
            "code": communities["code"].tolist(),
            "name": communities["name"].tolist(),
            "n": communities["n"].astype(int).tolist(),
            "mediations": communities["mediations"].astype(int).tolist(),
            "rate": [None if pd.isna(r) else round(float(r), 3) for r in communities["rate"]],
        },
        name="调解成功率（社区）",
        kind="community",
        show=False,
        style={"color": "#444", "weight": 1, "fillOpacity": 0.75},
        modes={"success": SUCCESS_MODE},
        mode="success",
        titleField="name",
        tip=[["事件数", "n"], ["调解结案", "mediations"], ["调解成功率", "rate", "pct"]],
    ).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    JsCall("title", {"title": title, "subtitle": subtitle}).add_to(m)
    counts = {
        "title": "事件数（网格）",
        "items": [
            [c, lab]
            for c, lab in zip(
                COUNT_MODE["colors"], ["0", "1–2", "3–5", "6–10", "11 以上"], strict=True
            )
        ],
    }
    success = {
        "title": "调解成功率（社区）",
        "items": [
            [c, lab]
            for c, lab in zip(
                SUCCESS_MODE["colors"], ["<50%", "50–70%", "70–85%", "≥85%"], strict=True
            )
        ]
        + [["#eeeeee", "无调解结案"]],
    }
    heat_legend = {
        "title": "事件热力（网格）",
        "items": [[c, lab] for c, lab in zip(HEAT_GRADIENT.values(), HEAT_LABELS, strict=True)],
    }
    JsCall(
        "legend",
        {
            "modes": {"count": counts, "heat": heat_legend, "success": success},
            "bases": {"count": layer.get_name(), "heat": heat_layer.get_name()},
            "note": HEAT_NOTE.format(k=k),
        },
    ).add_to(m)
    opts = "".join(
        f"<option value='{_esc(k)}'{' selected' if k == form.get('category') else ''}>"
        f"{_esc(v)}</option>"
        for k, v in [("", "全部类别"), *categories.items()]
    )
    add_html(
        m,
        "<form class='gm-form' method='get'>"
        f"<label>起 <input type='date' name='start' value='{_esc(form.get('start', ''))}'></label> "
        f"<label>止 <input type='date' name='end' value='{_esc(form.get('end', ''))}'></label> "
        f"<select name='category'>{opts}</select> "
        f"<input type='hidden' name='area' value='{_esc(form.get('area') or '')}'>"
        "<button type='submit'>查询</button></form>"
        "<script>document.body.classList.add('gm-with-form')</script>",
    )
    return render(m, allowed_hosts=tile_host(tiles.url))


HEAT_GRADIENT = {0.2: "#fee5d9", 0.4: "#fcae91", 0.6: "#fb6a4a", 0.8: "#de2d26", 1.0: "#a50f15"}
HEAT_LABELS = ["低", "", "", "", "高"]
HEAT_NOTE = "热力按网格汇总（网格代表点，无事件点位）；少于 {k} 件的网格不计入热力"


def _heat_layer(heat: pd.DataFrame, tiles: TileConfig) -> folium.plugins.HeatMap:
    """Leaflet.heat over per-grid weights (only positive ones: Leaflet.heat paints even a zero
    weight at ``min_opacity``), a base layer beside the choropleth, hidden at first."""
    pts = heat[heat["weight"] > 0] if len(heat) else heat
    data: list[list[float]] = []
    if len(pts):
        xy = to_display_crs(gpd.points_from_xy(pts["lon"], pts["lat"]), tiles.crs)
        data = [
            [round(p.y, 6), round(p.x, 6), int(w)] for p, w in zip(xy, pts["weight"], strict=True)
        ]
    layer = folium.plugins.HeatMap(
        data,
        name="事件热力（网格）",
        overlay=False,
        show=False,
        min_opacity=0.25,
        radius=22,
        blur=18,
        gradient=HEAT_GRADIENT,
    )
    layer.options = _json_safe(layer.options)
    return layer


def _json_safe(options: dict[str, Any]) -> dict[str, Any]:
    """Leaflet options as plain JSON values (gradient keys as strings)."""
    return {
        k: {str(g): c for g, c in v.items()} if isinstance(v, dict) else v
        for k, v in options.items()
    }


def _esc(v: Any) -> str:
    return _html.escape("" if v is None else str(v), quote=True)


DASHBOARD_COLUMNS = {
    "code": "编码", "name": "名称", "grids": "网格数", "managers": "网格员", "mediators": "调解员",
    "volunteers": "帮扶志愿者", "care_grids": "有帮扶对象网格", "care_compliant": "帮扶达标网格",
    "care_compliance": "帮扶达标率", "incidents_open": "在办事件", "incidents_closed": "办结事件",
    "median_dispatch_min": "派单用时中位数（分）", "median_onsite_min": "到场用时中位数（分）",
    "mediation_success_rate": "调解成功率",
}  # fmt: skip
_RATES = ("care_compliance", "mediation_success_rate")


def _cell(col: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "<td data-v=''>—</td>"
    if col in _RATES:
        return f"<td data-v='{float(v):.4f}'>{float(v) * 100:.1f}%</td>"
    return f"<td>{_esc(v)}</td>"


def dashboard_page(table: pd.DataFrame, *, level: str, title: str, query: str) -> str:
    """A sortable table (vanilla JS) with links to the other levels and to CSV/Excel."""
    levels = {"district": "区", "street": "街道", "community": "社区"}
    nav = " ".join(
        f"<a href='?level={k}{query}'>{'<b>' + v + '</b>' if k == level else v}</a>"
        for k, v in levels.items()
    )
    cols = [c for c in DASHBOARD_COLUMNS if c in table.columns]
    head = "".join(f"<th>{_esc(DASHBOARD_COLUMNS[c])}</th>" for c in cols)
    rows = "".join(
        "<tr>" + "".join(_cell(c, r[c]) for c in cols) + "</tr>" for r in table.to_dict("records")
    )
    css, js = "/static/gridmap/maps.css", APP_JS[1]
    return (
        "<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'>"
        f"<title>{_esc(title)}</title><link rel='stylesheet' href='{css}'></head>"
        f"<body><div class='gm-page'><h1>{_esc(title)}</h1><nav>{nav} | "
        f"<a href='?level={level}{query}&format=csv'>导出 CSV</a> "
        f"<a href='?level={level}{query}&format=xlsx'>导出 Excel</a></nav>"
        f"<p>{date.today():%Y-%m-%d}（点击表头排序）</p>"
        f"<table id='gm-dashboard'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        f"</div><script src='{js}'></script>"
        "<script>GM.sortable(document.getElementById('gm-dashboard'))</script></body></html>"
    )


def login_page() -> str:
    """Sign-in form; the session cookie it obtains works only for these pages (GET)."""
    js = APP_JS[1]
    return (
        "<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'>"
        "<title>登录 · gridmap</title>"
        "<link rel='stylesheet' href='/static/gridmap/maps.css'></head><body><div class='gm-page'>"
        "<h1>网格化管理 · 登录</h1><form id='gm-login'>"
        "<p><label>用户名 <input name='username' autocomplete='username' required></label></p>"
        "<p><label>密码 <input name='password' type='password' autocomplete='current-password' "
        "required></label></p><p><button type='submit'>登录</button> <span id='gm-login-msg'>"
        f"</span></p></form></div><script src='{js}'></script>"
        "<script>GM.login(document.getElementById('gm-login'))</script></body></html>"
    )
