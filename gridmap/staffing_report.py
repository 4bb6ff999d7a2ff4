"""Shortage reports of a staffing: per grid against the role quotas, and rolled up by area.

Examples
--------
>>> grids = pd.DataFrame({"code": ["420502001001001", "420502001001002"]})
>>> postings = pd.DataFrame({"person": ["a"], "role": ["mediator"], "grid": ["420502001001001"]})
>>> per_grid = shortage_report(grids, postings)
>>> per_grid["mediator_count"].tolist(), per_grid["all_met"].tolist()
([1, 0], [False, False])
>>> aggregate_report(per_grid, "street")[["street", "grids", "mediator_count"]].values.tolist()
[['420502001', 2, 1]]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gridmap.errors import InvalidInput
from gridmap.staffing_model import STAFF_ROLES, CareAssignment, Quotas

__all__ = ["aggregate_report", "shortage_report"]

_LEVELS = {"community": 12, "street": 9, "district": 6}


def shortage_report(
    grids: pd.DataFrame,
    postings: pd.DataFrame,
    care_links: CareAssignment | pd.DataFrame | None = None,
    quotas: Quotas | None = None,
    *,
    volunteers: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per grid: each role's count, min, max and whether met; care subjects and volunteer gap.

    Volunteers per grid come from ``care_links.volunteers`` (a :class:`CareAssignment`), else
    ``volunteers`` (id, grid), else postings with role ``care_volunteer``.
    """
    quotas = quotas or Quotas()
    out = pd.DataFrame({"code": grids["code"].to_numpy()})
    for role in STAFF_ROLES:
        q = quotas.role(role)
        got = postings.loc[postings["role"] == role, "grid"].value_counts()
        out[f"{role}_count"] = out["code"].map(got).fillna(0).astype(int)
        out[f"{role}_min"], out[f"{role}_max"] = q.min, np.nan if q.max is None else q.max
        out[f"{role}_met"] = (out[f"{role}_count"] >= q.min) & (
            True if q.max is None else out[f"{role}_count"] <= q.max
        )
    links = care_links.links if isinstance(care_links, CareAssignment) else care_links
    if isinstance(care_links, CareAssignment):
        volunteers = care_links.volunteers
    if volunteers is None:
        volunteers = postings[postings["role"] == "care_volunteer"].rename(columns={"person": "id"})
    subj = links["grid"].value_counts() if links is not None else pd.Series(dtype=int)
    unc = links.loc[links["volunteer"].isna(), "grid"].value_counts() if links is not None else {}
    out["care_subjects"] = out["code"].map(subj).fillna(0).astype(int)
    out["uncovered_subjects"] = out["code"].map(unc).fillna(0).astype(int)
    out["volunteers"] = out["code"].map(volunteers["grid"].value_counts()).fillna(0).astype(int)
    ratio = quotas.care_ratio
    out["care_ratio"] = out["care_subjects"] / out["volunteers"].where(out["volunteers"] > 0)
    need = -(-out["care_subjects"] // ratio)
    out["volunteers_to_recruit"] = (need - out["volunteers"]).clip(lower=0).astype(int)
    met = [c for c in out.columns if c.endswith("_met") and c != "all_met"]
    out["all_met"] = out[met].all(axis=1) & (out["volunteers_to_recruit"] == 0)
    return out


def aggregate_report(
    per_grid: pd.DataFrame, level: str = "community", *, ratio: int = 5
) -> pd.DataFrame:
    """Roll a :func:`shortage_report` up by grid-code prefix (community 12, street 9, district 6).

    Counts and ``volunteers_to_recruit`` are sums over grids (the 1:5 quota holds per grid);
    ``volunteers_to_recruit_pooled`` applies it to the whole area instead (volunteers may serve
    neighbouring grids). ``*_met`` become the number of grids meeting that quota.
    """
    if level not in _LEVELS:
        raise InvalidInput(f"level must be one of {', '.join(_LEVELS)}")
    key = per_grid["code"].astype(str).str[: _LEVELS[level]].rename(level)
    cols = [
        c
        for c in per_grid.columns
        if c.endswith(("_count", "_met", "subjects", "volunteers", "_recruit"))
    ]
    agg = per_grid[cols].astype(int).groupby(key).sum()
    agg.insert(0, "grids", key.value_counts().sort_index())
    agg["care_ratio"] = agg["care_subjects"] / agg["volunteers"].where(agg["volunteers"] > 0)
    pooled = -(-agg["care_subjects"] // ratio) - agg["volunteers"]
    agg["volunteers_to_recruit_pooled"] = pooled.clip(lower=0)
    return agg.reset_index()
