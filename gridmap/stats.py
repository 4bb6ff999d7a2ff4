"""Coverage figures for leaders (pure): grid status for the maps and the per-area dashboard.

Input frames come from the store (``gridmap.store.staff.shortage`` per grid, incidents from
``gridmap.store.mapdata``). Care-subject numbers leave this module only as display strings
with small-count suppression (:mod:`gridmap.disclosure`); everything else is counts of grids,
staff postings and incidents.

Examples
--------
>>> per_grid = pd.DataFrame({"code": ["420502001001001", "420502001001002"],
...     "grid_manager_count": [1, 0], "mediator_count": [1, 1], "legal_professional_count": [1, 0],
...     "publicity_count": [1, 0], "legal_aid_count": [0, 0], "volunteers": [1, 0],
...     "care_subjects": [3, 0], "volunteers_to_recruit": [0, 0]} | {
...     f"{r}_met": [True, False] for r in STAFF_ROLES})
>>> status, care = grid_status(per_grid)
>>> status[["staff_status", "care_status", "care"]].values.tolist()
[['complete', 'ok', '<11'], ['none', 'none', '0']]
>>> street = area_figures(status, "street", care)
>>> street[["code", "grids", "staff_complete", "care"]].values.tolist()
[['420502001', 2, 1, '<11']]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from gridmap.disclosure import suppress_hierarchy
from gridmap.staffing_model import STAFF_ROLES

__all__ = [
    "CARE_STATUS",
    "LEVEL_LENGTH",
    "STAFF_STATUS",
    "area_figures",
    "dashboard",
    "grid_status",
]

STAFF_STATUS = ("complete", "partial", "none")  # all quotas met / some missing / no manager
CARE_STATUS = ("ok", "short", "none")  # 1:5 met / volunteers missing / no care subjects
LEVEL_LENGTH = {"district": 6, "street": 9, "community": 12}
SHORT = {
    "grid_manager": "gm",
    "mediator": "me",
    "legal_professional": "lp",
    "publicity": "pu",
    "legal_aid": "la",
}
OPEN = ("reported", "dispatched", "accepted", "on_site", "escalated")
CLOSED = ("resolved", "failed", "closed")


def grid_status(
    per_grid: pd.DataFrame, *, k: int = 11, levels: Sequence[int] = (12, 9, 6)
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Per grid: staff counts (gm, me, lp, pu, la, vo), ``staff_status``, ``care_status`` and
    ``care`` (the suppressed display of its care-subject count); and the displays of every
    area total of ``levels``, suppressed together with the grids (for :func:`area_figures`)."""
    out = pd.DataFrame({"code": per_grid["code"].astype(str).to_numpy()})
    for role, short in SHORT.items():
        out[short] = per_grid[f"{role}_count"].astype(int).to_numpy()
    out["vo"] = per_grid["volunteers"].astype(int).to_numpy()
    met = per_grid[[f"{r}_met" for r in STAFF_ROLES]].all(axis=1).to_numpy()
    out["staff_status"] = np.where(out["gm"] == 0, "none", np.where(met, "complete", "partial"))
    subjects = per_grid["care_subjects"].astype(int).to_numpy()
    short = per_grid["volunteers_to_recruit"].astype(int).to_numpy() > 0
    out["care_status"] = np.where(subjects == 0, "none", np.where(short, "short", "ok"))
    shown = suppress_hierarchy(dict(zip(out["code"], subjects, strict=True)), levels, k=k)
    out["care"] = out["code"].map(shown)
    return out, {c: v for c, v in shown.items() if len(c) in set(levels)}


def area_figures(
    status: pd.DataFrame, level: str, care_totals: dict[str, str] | None = None
) -> pd.DataFrame:
    """Roll :func:`grid_status` up to ``level``: grids, staff sums, grids per status and the
    suppressed care total (only where the same suppression published it, else "—")."""
    n = LEVEL_LENGTH[level]
    key = status["code"].str[:n].rename("code")
    sums = status[[*SHORT.values(), "vo"]].groupby(key).sum()
    sums.insert(0, "grids", key.value_counts())
    for col, values in (("staff_status", STAFF_STATUS), ("care_status", CARE_STATUS)):
        counts = pd.crosstab(key, status[col]).reindex(columns=list(values), fill_value=0)
        counts.columns = [f"{col.split('_')[0]}_{v}" for v in values]
        sums = sums.join(counts)
    out = sums.reset_index()
    out["care"] = [(care_totals or {}).get(c, "—") for c in out["code"]]
    return out


def _median_minutes(seconds: pd.Series) -> float:
    s = pd.to_numeric(seconds, errors="coerce").dropna()
    return round(float(s.median()) / 60, 1) if len(s) else float("nan")


def dashboard(status: pd.DataFrame, incidents: pd.DataFrame, level: str) -> pd.DataFrame:
    """One row per area of ``level``: grids, managers, mediators, volunteers, care-ratio
    compliance (grids meeting 1:5 among grids with care subjects), incidents open/closed,
    median minutes to dispatch and to on-site, mediation success rate.

    ``incidents`` has grid_code, status, outcome, dispatch_s, onsite_s (one row per incident).
    """
    n = LEVEL_LENGTH[level]
    figures = area_figures(status, level)
    out = pd.DataFrame(
        {
            "code": figures["code"],
            "grids": figures["grids"],
            "managers": figures["gm"],
            "mediators": figures["me"],
            "volunteers": figures["vo"],
            "care_grids": figures["care_ok"] + figures["care_short"],
            "care_compliant": figures["care_ok"],
        }
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        out["care_compliance"] = (out["care_compliant"] / out["care_grids"]).round(3)
    inc = incidents.assign(area=incidents["grid_code"].astype(str).str[:n])
    grouped = inc.groupby("area")
    agg = pd.DataFrame(
        {
            "incidents_open": grouped["status"].agg(lambda s: int(s.isin(OPEN).sum())),
            "incidents_closed": grouped["status"].agg(lambda s: int(s.isin(CLOSED).sum())),
            "median_dispatch_min": grouped["dispatch_s"].agg(_median_minutes),
            "median_onsite_min": grouped["onsite_s"].agg(_median_minutes),
            "mediations": grouped["outcome"].agg(lambda s: int(s.notna().sum())),
            "mediation_success": grouped["outcome"].agg(lambda s: int((s == "success").sum())),
        }
    )
    out = out.merge(agg, left_on="code", right_index=True, how="left")
    for col in ("incidents_open", "incidents_closed", "mediations", "mediation_success"):
        out[col] = out[col].fillna(0).astype(int)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["mediation_success_rate"] = (out["mediation_success"] / out["mediations"]).round(3)
    return out.sort_values("code").reset_index(drop=True)
