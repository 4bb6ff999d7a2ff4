"""Write a SYNTHETIC roster (staff, volunteers, care subjects) as offices keep them.

Usage: python scripts/make_roster.py [--grids FILE] [--out DIR] [--format xlsx|csv]
       [--encoding gb18030] [--seed 0] [--legal-total 2739]

Without ``--grids`` the scenario's communities (data/scenario) or a fake 1,110-grid table are
used. ``--legal-total`` rescales the four legal-affairs rates to that many people in all.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gridmap.roster_synth import RosterMix, grid_table, synthetic_roster, write_roster  # noqa: E402

LEGAL = ("mediator", "legal_professional", "publicity", "legal_aid")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grids", help="grid table (CSV or vector file); default: scenario or fake")
    ap.add_argument("--out", default=str(ROOT / "data" / "scenario" / "roster"), help="directory")
    ap.add_argument("--format", choices=("xlsx", "csv"), default="xlsx")
    ap.add_argument("--encoding", default="utf-8-sig", help="CSV encoding, e.g. gb18030")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--legal-total", type=int, help="legal-affairs workers in all")
    args = ap.parse_args(argv)
    grids = grid_table(args.grids, seed=args.seed)
    mix = RosterMix()
    if args.legal_total:
        scale = args.legal_total / (len(grids) * sum(getattr(mix, r) for r in LEGAL))
        mix = replace(mix, **{r: getattr(mix, r) * scale for r in LEGAL})
    roster = synthetic_roster(grids, seed=args.seed, mix=mix)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame, kind in (
        ("staff", roster.staff, "staff"),
        ("care_subjects", roster.care_subjects, "care_subjects"),
    ):
        path = write_roster(frame, out / f"{name}.{args.format}", kind, encoding=args.encoding)
        print(f"{path}: {len(frame)} rows")
    print(roster.staff["role"].value_counts().to_string())
    print(f"care subjects: {len(roster.care_subjects)} on {len(grids)} grids (SYNTHETIC)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
