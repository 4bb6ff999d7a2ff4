"""Synthetic rosters in Yichang's proportions, for the demo scenario and benchmarks. ALL FAKE.

Names come from a short list of common surnames and given names; identity numbers are valid
GB 11643 numbers (region 42050x, correct check digit) of no real person; phone numbers are
random 1xx numbers. Deterministic for a seed (one ``numpy.random.Generator``).

Examples
--------
>>> grids = fake_grids(24, seed=1)
>>> r = synthetic_roster(grids, seed=1)
>>> sorted(r.staff["role"].unique())[:2]
['care_volunteer', 'grid_manager']
>>> bool(r.staff["id_number"].str.len().eq(18).all())
True
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from gridmap.crs import from_wgs84, metric_crs_for, to_wgs84
from gridmap.rosters import id_check_digit

__all__ = [
    "RosterMix",
    "SyntheticRoster",
    "fake_grids",
    "grid_table",
    "scenario_grids",
    "synthetic_roster",
    "write_roster",
]

_SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘")
_GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建国志文海燕")
_ROLE_CN = {
    "grid_manager": "网格员",
    "mediator": "人民调解员",
    "legal_professional": "法律服务工作者",
    "publicity": "普法宣传员",
    "legal_aid": "法律援助联络员",
    "care_volunteer": "帮教志愿者",
}
_CATEGORY_CN = {"community_correction": "社区矫正", "released": "刑满释放", "other": "其他"}
_STAFF_CN = {
    "name": "姓名",
    "gender": "性别",
    "id_number": "身份证号",
    "phone": "手机号",
    "role": "角色",
    "community": "所属社区",
    "grid": "所属网格",
    "lon": "经度",
    "lat": "纬度",
    "birth_date": "出生日期",
    "start_date": "入职日期",
}
_CARE_CN = {
    "code": "编号",
    "category": "类别",
    "grid": "所属网格",
    "community": "所属社区",
    "lon": "经度",
    "lat": "纬度",
}


@dataclass(frozen=True)
class RosterMix:
    """People per grid by role, care subjects per household and the volunteer shortfall.

    With these rates 1,110 grids get ~1,077 managers and ~3,700 legal-affairs workers; Yichang's
    published 2,739 corresponds to scaling the four legal-affairs rates by ~0.74.
    """

    manager_missing: float = 0.03
    mediator: float = 1.2
    legal_professional: float = 1 / 3
    publicity: float = 1.3
    legal_aid: float = 0.5
    households_per_subject: float = 250.0
    correction_share: float = 0.3
    short_communities: float = 0.4  # share of communities with fewer volunteers than needed
    home_radius_m: float = 1500.0


class SyntheticRoster(NamedTuple):
    """``staff`` (volunteers included, role care_volunteer) and pseudonymous ``care_subjects``."""

    staff: pd.DataFrame
    care_subjects: pd.DataFrame


def fake_grids(n: int = 1110, seed: int = 0) -> pd.DataFrame:
    """A stand-in grid table (code, x=lon, y=lat, households) around central Yichang."""
    rng = np.random.default_rng(seed)
    lon = 111.29 + rng.normal(0, 0.06, n)
    lat = 30.70 + rng.normal(0, 0.045, n)
    district = np.array(["420502", "420503", "420504", "420505"])[(lon > 111.29) + 2 * (lat < 30.7)]
    order = np.lexsort((lon, lat, district))
    codes, seen = [], dict[str, int]()
    for d in district[order]:
        k = seen[d] = seen.get(d, 0) + 1
        codes.append(f"{d}{1 + k // 60:03d}{1 + (k // 8) % 8:03d}{1 + k % 8:03d}")
    hh = np.rint(rng.lognormal(np.log(420), 0.45, n)).astype(int)
    return pd.DataFrame({"code": codes, "x": lon[order], "y": lat[order], "households": hh})


def _near(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, r: float) -> tuple[Any, Any]:
    rad, ang = r * np.sqrt(rng.random(len(x))), rng.uniform(0, 2 * np.pi, len(x))
    return x + rad * np.cos(ang), y + rad * np.sin(ang)


def _id_numbers(
    rng: np.random.Generator, regions: np.ndarray, born: list[dt.date], male: np.ndarray
) -> list[str]:
    out, seen = [], set()
    for region, b, m in zip(regions, born, male, strict=True):
        while True:
            seq = int(rng.integers(0, 50)) * 2 + int(m) + 100 * int(rng.integers(0, 10))
            body = f"{region}{b:%Y%m%d}{seq:03d}"
            s = body + id_check_digit(body)
            if s not in seen and not s.endswith("000"):
                break
        seen.add(s)
        out.append(s)
    return out


def _people(
    rng: np.random.Generator,
    grid_idx: np.ndarray,
    roles: np.ndarray,
    grids: pd.DataFrame,
    xy: tuple[np.ndarray, np.ndarray],
    crs: str,
    radius: np.ndarray,
) -> pd.DataFrame:
    n = len(grid_idx)
    hx, hy = _near(rng, xy[0][grid_idx], xy[1][grid_idx], 1.0)
    hx = xy[0][grid_idx] + (hx - xy[0][grid_idx]) * radius
    hy = xy[1][grid_idx] + (hy - xy[1][grid_idx]) * radius
    lon, lat = to_wgs84(hx, hy, crs)
    male = rng.random(n) < 0.55
    age = np.where(roles == "care_volunteer", rng.integers(20, 70, n), rng.integers(24, 60, n))
    born = [
        dt.date(2025 - int(a), 1, 1) + dt.timedelta(days=int(d))
        for a, d in zip(age, rng.integers(0, 365, n), strict=True)
    ]
    codes = grids["code"].astype(str).to_numpy()[grid_idx]
    regions = np.where(
        np.char.startswith(codes.astype(str), "42050"),
        np.char.ljust(codes.astype(str), 6).astype("<U6"),
        "420502",
    )
    names = [
        rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN, rng.integers(1, 3))) for _ in range(n)
    ]
    draws = rng.integers(10**8, 10**9, 2 * n + 10)
    phones = draws[np.sort(np.unique(draws, return_index=True)[1])][:n]
    start = dt.date(2015, 1, 1)
    return pd.DataFrame(
        {
            "name": names,
            "gender": np.where(male, "M", "F"),
            "id_number": _id_numbers(rng, regions, born, male),
            "phone": [f"1{rng.choice(list('3456789'))}{p:09d}" for p in phones],
            "role": roles,
            "community": [c[:12] for c in codes],
            "grid": np.where(roles == "care_volunteer", codes, None),
            "lon": np.round(lon, 6),
            "lat": np.round(lat, 6),
            "birth_date": [b.isoformat() for b in born],
            "start_date": [
                (start + dt.timedelta(days=int(d))).isoformat() for d in rng.integers(0, 3900, n)
            ],
        }
    )


def synthetic_roster(
    grids: pd.DataFrame, seed: int = 0, mix: RosterMix | None = None
) -> SyntheticRoster:
    """Staff, volunteers and care subjects for ``grids`` (code, x=lon, y=lat, households).

    Homes lie within ``mix.home_radius_m`` of the grid they were drawn for; each grid gets
    ceil(subjects / 5) volunteers, minus 1–3 in a share of communities (realistic gaps).
    """
    mix, rng = mix or RosterMix(), np.random.default_rng(seed)
    g = grids.reset_index(drop=True)
    crs = metric_crs_for(float(g["x"].mean()), float(g["y"].mean()))
    xy = from_wgs84(g["x"].to_numpy(float), g["y"].to_numpy(float), crs)
    n = len(g)
    idx = [np.sort(rng.choice(n, n - round(mix.manager_missing * n), replace=False))]
    roles = [np.full(len(idx[0]), "grid_manager")]
    for role in ("mediator", "legal_professional", "publicity", "legal_aid"):
        idx.append(np.sort(rng.integers(0, n, round(getattr(mix, role) * n))))
        roles.append(np.full(len(idx[-1]), role))
    subj = rng.poisson(g["households"].to_numpy(float) / mix.households_per_subject)
    comm = g["code"].astype(str).str[:12].to_numpy()
    vol = -(-subj // 5)  # the 1:5 quota per grid, then a shortfall in some communities
    for c in np.unique(comm):
        cells = np.flatnonzero((comm == c) & (vol > 0))
        if len(cells) and rng.random() < mix.short_communities:
            for _ in range(int(rng.integers(1, 4))):
                j = rng.choice(cells)
                vol[j] = max(0, vol[j] - 1)
    idx.append(np.repeat(np.arange(n), vol))
    roles.append(np.full(int(vol.sum()), "care_volunteer"))
    gi, role_arr = np.concatenate(idx).astype(int), np.concatenate(roles)
    radius = np.where(role_arr == "care_volunteer", 800.0, mix.home_radius_m)
    staff = _people(rng, gi, role_arr, g, xy, crs, radius)
    staff.insert(0, "id", [f"P{i + 1:06d}" for i in range(len(staff))])
    si = np.repeat(np.arange(n), subj)
    sx, sy = _near(rng, xy[0][si], xy[1][si], 400.0)
    slon, slat = to_wgs84(sx, sy, crs)
    cat = np.where(rng.random(len(si)) < mix.correction_share, "community_correction", "released")
    care = pd.DataFrame(
        {
            "code": [f"CS{i + 1:06d}" for i in range(len(si))],
            "category": cat,
            "grid": g["code"].to_numpy()[si],
            "community": comm[si],
            "lon": np.round(slon, 6),
            "lat": np.round(slat, 6),
        }
    )
    return SyntheticRoster(staff, care)


def write_roster(
    frame: pd.DataFrame,
    path: str | Path,
    kind: str = "staff",
    *,
    title: str | None = None,
    encoding: str = "utf-8-sig",
) -> Path:
    """Write a roster as offices keep it: Chinese headers; ``.xlsx`` with a merged title row and
    the 身份证号 column formatted as text, or CSV in ``encoding`` (e.g. ``gb18030``)."""
    names = _STAFF_CN if kind == "staff" else _CARE_CN
    df = frame[[c for c in names if c in frame.columns]].copy()
    if "role" in df:
        df["role"] = df["role"].map(_ROLE_CN)
    if "category" in df:
        df["category"] = df["category"].map(_CATEGORY_CN)
    if "gender" in df:
        df["gender"] = df["gender"].map({"M": "男", "F": "女"})
    df = df.rename(columns=names)
    path = Path(path)
    if path.suffix.lower() != ".xlsx":
        df.to_csv(path, index=False, encoding=encoding)
        return path
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append([title or ("人员花名册" if kind == "staff" else "帮教对象名册")])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(df.columns))
    ws.append(list(df.columns))
    for row in df.itertuples(index=False):
        ws.append([None if pd.isna(v) else v for v in row])
    if "身份证号" in df:
        col = list(df.columns).index("身份证号") + 1
        for (cell,) in ws.iter_rows(min_row=3, min_col=col, max_col=col):
            cell.number_format = "@"
    wb.save(path)
    return path


def scenario_grids(folder: str | Path, n_grids: int = 1110, seed: int = 0) -> pd.DataFrame:
    """Stand-in grids from a scenario's ``households.csv`` until gridding has made real ones.

    Each community gets grids in proportion to its households (at least one); its building
    points are split by k-means and each cluster's household-weighted centre is the grid point.
    """
    from scipy.cluster.vq import kmeans2

    hh = pd.read_csv(Path(folder) / "households.csv", dtype={"community": str})
    crs = metric_crs_for(float(hh["lon"].mean()), float(hh["lat"].mean()))
    xy = np.column_stack(from_wgs84(hh["lon"].to_numpy(float), hh["lat"].to_numpy(float), crs))
    total = hh.groupby("community")["households"].sum()
    want = np.maximum(1, np.round(total / total.sum() * n_grids)).astype(int)
    rng, rows = np.random.default_rng(seed), []
    for code, part in hh.groupby("community", sort=True):
        pts, w = xy[part.index], part["households"].to_numpy(float)
        k = int(min(want[code], len(part)))
        labels = kmeans2(pts, k, seed=rng, minit="++")[1] if k > 1 else np.zeros(len(part), int)
        cells = [np.flatnonzero(labels == c) for c in range(k)]
        centres = [
            (np.average(pts[c], axis=0, weights=w[c] + 1e-9), w[c].sum()) for c in cells if len(c)
        ]
        centres.sort(key=lambda t: (-t[0][1], t[0][0]))  # reading order: north first
        for seq, ((x, y), households) in enumerate(centres, start=1):
            rows.append((f"{code}{seq:03d}", x, y, int(households)))
    out = pd.DataFrame(rows, columns=["code", "x", "y", "households"])
    out["x"], out["y"] = to_wgs84(out["x"].to_numpy(), out["y"].to_numpy(), crs)
    return out


def grid_table(source: str | Path | None = None, n: int = 1110, seed: int = 0) -> pd.DataFrame:
    """Grids (code, x=lon, y=lat, households) from a file, the scenario, or :func:`fake_grids`.

    A file may be CSV (code, lon/x, lat/y, households) or a vector file of grid polygons (or of
    communities: one stand-in grid each, code + ``001``); without one the scenario's household
    points give :func:`scenario_grids` when ``data/scenario`` exists.
    """
    scenario = Path(__file__).resolve().parents[1] / "data" / "scenario"
    if source is None:
        if (scenario / "households.csv").exists():
            return scenario_grids(scenario, n, seed)
        return fake_grids(n, seed)
    path = Path(source)
    if path.is_dir():
        return scenario_grids(path, n, seed)
    if path.suffix.lower() == ".csv":
        df = pd.read_csv(path, dtype={"code": str})
        return df.rename(columns={"lon": "x", "lat": "y"})[["code", "x", "y", "households"]]
    import geopandas as gpd

    gdf = gpd.read_file(path).to_crs(4326)
    pts = gdf.geometry.representative_point()
    codes = gdf["code"].astype(str)
    hh = gdf["households"] if "households" in gdf else pd.Series(400, index=gdf.index)
    return pd.DataFrame(
        {
            "code": codes.where(codes.str.len() == 15, codes + "001"),
            "x": pts.x,
            "y": pts.y,
            "households": hh.fillna(0).astype(int),
        }
    )
