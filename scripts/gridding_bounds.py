"""What the scenario allows: estimates behind the gridding targets of issue #3.

For every community of ``data/scenario/`` (EPSG:4546, ``DEFAULT_HOUSEHOLDS_PER_GRID``):

1. **Balance without geography.** The households of the units shared out to the community's
   grid count as evenly as a local search (greedy, then moves and swaps) manages, ignoring
   where the units are: if that CV were above 0.05, the balance target would be out of reach
   whatever the shapes.
2. **Blocks that must be cut.** With a CV of at most 0.05 over ``n`` grids no grid holds more
   than ``mean · (1 + 0.05 · √(n − 1))`` households, so a road block holding more must be cut
   off the roads.
3. **Alignment with compact grids (an estimate, not a proof).** Each such block needs at least
   ``k − 1`` cuts for the ``k`` grids it meets; each is priced as a straight chord across the
   block's short side (of its minimum rotated rectangle) less the 2 × 15 m that count as on the
   road at its ends. If all ``n`` grids had Polsby-Popper 0.70, their internal boundary would be
   at most ``(n · √(4π a / 0.7) − P) / 2`` (``a`` = community area / n, ``P`` = its perimeter;
   equal areas give the longest). The share of that boundary that could lie on roads is then at
   most ``1 − cuts / boundary``. The chord is the cut's length only for cuts across a block;
   a cut around a corner can be shorter, so read this as an estimate.

    .venv/bin/python scripts/gridding_bounds.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_gridding import scenario_city  # noqa: E402

from gridmap.gridding import (  # noqa: E402
    DEFAULT_HOUSEHOLDS_PER_GRID,
    _directions,
    _roads,
    _unit_set,
    _units,
)
from gridmap.gridding_blocks import build_atoms  # noqa: E402

TARGET_CV = 0.05
TARGET_PP = 0.70
ALIGN = 15.0


def best_cv(hh: np.ndarray, n: int, rng: np.random.Generator, restarts: int = 20) -> float:
    """Lowest CV of households over ``n`` groups found by greedy + moves + swaps."""
    best = np.inf
    for r in range(restarts):
        noise = rng.random(len(hh)) * hh * 0.3 if r else 0.0
        lab = np.zeros(len(hh), dtype=int)
        W = np.zeros(n)
        for i in np.argsort(-(hh + noise), kind="stable"):
            g = int(np.argmin(W))
            lab[i], W[g] = g, W[g] + hh[i]
        for _ in range(200):
            improved = False
            for i in rng.permutation(len(hh)):
                g = lab[i]
                delta = 2 * hh[i] * (W - W[g] + hh[i])
                delta[g] = 0.0
                k = int(np.argmin(delta))
                if delta[k] < -1e-9:
                    W[g] -= hh[i]
                    W[k] += hh[i]
                    lab[i] = k
                    improved = True
            for i in rng.permutation(len(hh))[:60]:
                g = lab[i]
                js = np.flatnonzero(lab != g)
                d = hh[i] - hh[js]
                k = lab[js]
                delta = 2 * d * (W[k] - W[g] + d)
                j = int(np.argmin(delta)) if len(js) else 0
                if len(js) and delta[j] < -1e-9:
                    W[g] -= d[j]
                    W[k[j]] += d[j]
                    lab[i], lab[js[j]] = k[j], g
                    improved = True
            if not improved:
                break
        best = min(best, float(W.std() / W.mean()))
    return best


def main() -> None:
    comms, units, roads, _ = scenario_city()
    road_arr = np.asarray(roads, dtype=object)
    tree = shapely.STRtree(road_arr)
    rng = np.random.default_rng(0)
    k_target = DEFAULT_HOUSEHOLDS_PER_GRID
    cvs, must_blocks, blocks, shares, aligns = [], 0, 0, [], []
    for geom, u in zip(comms, units, strict=True):
        hh = np.asarray(u["households"], float)
        n = max(1, round(hh.sum() / k_target))
        if n < 2:
            continue
        cvs.append(best_cv(hh, n, rng))
        part = max(shapely.get_parts(geom), key=lambda p: p.area)
        near = road_arr[tree.query(part)]
        xy, hh_, res, foot = _units(u)
        origin = np.array(part.centroid.coords[0])
        ra = _roads(near)
        uset = _unit_set(xy, hh_, res, foot, origin, _directions(ra, part))
        at = build_atoms(part, ra, uset, np.arange(len(hh_)), origin)
        mean = hh.sum() / n
        cap = mean * (1 + TARGET_CV * np.sqrt(n - 1))
        must = at.hh > cap
        blocks += len(at.hh)
        must_blocks += int(must.sum())
        shares.append(float(at.hh[must].sum() / hh.sum()))
        cuts = 0.0
        if must.any():
            k = np.ceil(at.hh[must] / cap)
            rect = shapely.minimum_rotated_rectangle(np.asarray(at.geoms, dtype=object)[must])
            c = shapely.get_coordinates(shapely.get_exterior_ring(rect)).reshape(-1, 5, 2)
            sides = np.hypot(*(c[:, 1:3] - c[:, 0:2]).transpose(2, 0, 1))
            short = sides.min(axis=1)
            cuts = float(((k - 1) * np.maximum(short - 2 * ALIGN, 0.0)).sum())
        a = geom.area / n
        inner = (n * np.sqrt(4 * np.pi * a / TARGET_PP) - geom.length) / 2
        aligns.append(float(np.clip(1 - cuts / inner, 0.0, 1.0)) if inner > 0 else 0.0)
    cv, al, sh = np.array(cvs), np.array(aligns), np.array(shares)
    print(f"communities with ≥ 2 grids: {len(cv)}")
    print(
        f"1. best CV ignoring geography: median {np.median(cv):.4f}  p90 "
        f"{np.percentile(cv, 90):.4f}  max {cv.max():.4f}  (target ≤ {TARGET_CV})"
    )
    print(
        f"2. road blocks that must be cut at CV ≤ {TARGET_CV}: {must_blocks} of {blocks} in "
        f"{int((sh > 0).sum())} communities; share of a community's households in them: "
        f"median {np.median(sh):.2f}  p90 {np.percentile(sh, 90):.2f}"
    )
    print(
        f"3. road alignment reachable if every grid had PP {TARGET_PP} (estimate): mean "
        f"{al.mean():.3f}  median {np.median(al):.3f}  p10 {np.percentile(al, 10):.3f}; "
        f"communities under 0.80: {int((al < 0.8).sum())} of {len(al)}"
    )


if __name__ == "__main__":
    main()
