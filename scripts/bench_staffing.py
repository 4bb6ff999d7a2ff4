"""Benchmark: assign all staff and care subjects of a synthetic roster on ~1,110 grids.

Prints times (target: all staff and care subjects in ≤ 10 s) and the gap to the greedy
baseline (nearest available first). Prints, never asserts.

Usage: .venv/bin/python scripts/bench_staffing.py [--grids FILE] [--seed 0] [--legal-total N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gridmap.crs import from_wgs84, metric_crs_for
from gridmap.roster_synth import grid_table, synthetic_roster
from gridmap.staffing import (
    aggregate_report,
    assign_care,
    assign_staff,
    greedy_assign_staff,
    shortage_report,
)


def _metric(df: pd.DataFrame, x: str, y: str, crs: str) -> pd.DataFrame:
    mx, my = from_wgs84(df[x].to_numpy(float), df[y].to_numpy(float), crs)
    return df.assign(x=mx, y=my)


def _timed(label: str, fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    print(f"{label:<38} {dt:7.2f} s")
    return out, dt


def _by_role(exact, greedy) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """Per role: unfilled minimum slots, postings and mean metres of each method."""
    cols = {}
    for name, a in (("exact", exact), ("greedy", greedy)):
        cols[f"{name}_unfilled"] = a.unfilled.groupby("role")["missing"].sum()
        cols[f"{name}_postings"] = a.postings.groupby("role").size()
        cols[f"{name}_mean_m"] = a.postings.groupby("role")["cost_m"].mean().round()
    return pd.DataFrame(cols).fillna(0).astype(int)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="staffing benchmark")
    ap.add_argument("--grids")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    grids_ll = grid_table(args.grids, seed=args.seed)
    roster, _ = _timed("synthetic roster", lambda: synthetic_roster(grids_ll, seed=args.seed))
    crs = metric_crs_for(float(grids_ll["x"].mean()), float(grids_ll["y"].mean()))
    grids = _metric(grids_ll, "x", "y", crs)
    people = _metric(roster.staff, "lon", "lat", crs)
    staff = people[people["role"] != "care_volunteer"]
    vols = people[people["role"] == "care_volunteer"]
    subjects = _metric(roster.care_subjects.rename(columns={"code": "id"}), "lon", "lat", crs)
    print(
        f"{len(grids)} grids, {len(staff)} staff, {len(vols)} volunteers, "
        f"{len(subjects)} care subjects; metric CRS {crs}"
    )
    exact, t_staff = _timed(
        "exact staff assignment (certified)", lambda: assign_staff(staff, grids)
    )
    care, t_care = _timed("exact care links", lambda: assign_care(subjects, vols))
    greedy, _ = _timed("greedy staff baseline", lambda: greedy_assign_staff(staff, grids))
    print(f"total exact (staff + care)              {t_staff + t_care:7.2f} s  (target ≤ 10 s)")
    print(f"certified optimal over all pairs: staff {exact.certified}, care {care.certified}")
    for name, a in (("exact", exact), ("greedy", greedy)):
        print(
            f"{name:<7} coverage {a.coverage:7.2%}  unfilled {int(a.unfilled['missing'].sum()):4d}"
            f"  idle {len(a.idle):4d}  total {a.total_cost_m / 1000:9.1f} km"
            f"  mean {a.postings['cost_m'].mean():6.0f} m"
        )
    gap = greedy.total_cost_m / exact.total_cost_m - 1 if exact.total_cost_m else float("nan")
    print(
        f"greedy vs exact: coverage {greedy.coverage - exact.coverage:+.2%}, "
        f"unfilled minimum slots {int(greedy.unfilled['missing'].sum())} vs "
        f"{int(exact.unfilled['missing'].sum())}, total metres {gap:+.1%} "
        f"({len(greedy.postings) - len(exact.postings):+d} postings)"
    )
    print(_by_role(exact, greedy).to_string())
    # continuity: 5% of staff leave, the rest keep their postings unless moving saves > 500 m
    rng = np.random.default_rng(args.seed)
    held = exact.postings.groupby("person")["grid"].agg(list)
    rerun_people = staff[rng.random(len(staff)) > 0.05].assign(
        current_grid=lambda d: d["id"].map(held)
    )
    rerun, _ = _timed(
        "re-run after 5% leave (continuity)", lambda: assign_staff(rerun_people, grids)
    )
    print(
        f"re-run moves {len(rerun.moves)} of {len(rerun_people)} people; coverage "
        f"{rerun.coverage:.2%}"
    )
    print(
        f"care: {len(subjects) - len(care.uncovered)} of {len(subjects)} covered, "
        f"{care.links['same_grid'].mean():.0%} by a volunteer of their own grid, "
        f"{len(care.uncovered)} without a carer"
    )
    report = shortage_report(grids, exact.postings, care)
    print(
        f"grids meeting every quota: {int(report['all_met'].sum())} of {len(report)}; "
        f"volunteers to recruit: {int(report['volunteers_to_recruit'].sum())}"
    )
    cols = [
        "district",
        "grids",
        "grid_manager_met",
        "mediator_met",
        "care_subjects",
        "volunteers",
        "volunteers_to_recruit",
        "care_ratio",
    ]
    print(aggregate_report(report, "district")[cols].round(2).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
