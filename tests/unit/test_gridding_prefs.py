"""Gridding preferences: what gives way where balance, compactness and streets conflict."""

from __future__ import annotations

import doctest
import threading
import typing
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box

import gridmap.gridding_prefs
from gridmap.errors import InvalidInput
from gridmap.gridding import grid_community, grid_quality
from gridmap.gridding_prefs import DEFAULT_PREFERENCE, PREFERENCES, preferring, prices
from tests.unit.test_gridding import check_partition, check_units, scenarios


def _street_grid(seed: int) -> tuple[shapely.Polygon, dict, list]:
    """Uneven blocks of a street grid with units of 1–29 households, 12 m or more off the roads."""
    rng = np.random.default_rng(seed)
    xs, ys = np.cumsum(rng.uniform(150, 260, 5)), np.cumsum(rng.uniform(150, 260, 5))
    w, h = xs[-1] + 150, ys[-1] + 150
    roads = [shapely.LineString([(x, -10), (x, h + 10)]) for x in xs]
    roads += [shapely.LineString([(-10, y), (w + 10, y)]) for y in ys]
    pts = rng.uniform(0, (w, h), (1500, 2))
    off = np.minimum(np.abs(pts[:, :1] - xs[None]).min(1), np.abs(pts[:, 1:] - ys[None]).min(1))
    pts = pts[off > 12]
    units = {"x": pts[:, 0], "y": pts[:, 1], "households": rng.integers(1, 30, len(pts)) * 1.0}
    return box(0, 0, w, h), units, roads


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_preference_gives_way_where_it_says(seed: int) -> None:
    community, units, roads = _street_grid(seed)
    q = {}
    for name in PREFERENCES:
        grids = grid_community(community, units, households_per_grid=1200, roads=roads, prefer=name)
        check_partition(community, grids)
        check_units(grids, units)
        q[name] = grid_quality(community, grids, units, roads)
    assert len({v["n_grids"] for v in q.values()}) == 1  # the same grid count throughout
    align = {k: v["road_alignment"] for k, v in q.items()}
    assert align["streets"] > align["balance"] + 0.05
    assert align["balance"] > align["compact"] + 0.05
    assert q["balance"]["cv"] < q["streets"]["cv"]  # streets: households give way
    assert q["compact"]["pp_mean"] > max(q["balance"]["pp_mean"], q["streets"]["pp_mean"])


def test_compact_ignores_the_roads() -> None:
    community, units, roads = _street_grid(3)
    a = grid_community(community, units, households_per_grid=1200, roads=roads, prefer="compact")
    b = grid_community(community, units, households_per_grid=1200, roads=None)
    assert all(g.equals_exact(h, 0.0) for g, h in zip(a.geometry, b.geometry, strict=True))


def test_default_is_balance() -> None:
    community, units, roads = _street_grid(4)
    a = grid_community(community, units, households_per_grid=1200, roads=roads)
    b = grid_community(community, units, households_per_grid=1200, roads=roads, prefer="balance")
    assert DEFAULT_PREFERENCE == "balance"
    assert all(g.equals_exact(h, 0.0) for g, h in zip(a.geometry, b.geometry, strict=True))


@settings(max_examples=25, deadline=None, derandomize=True)
@given(scenarios(), st.sampled_from(["streets", "compact"]))
def test_every_preference_partitions(sc: dict, prefer: str) -> None:
    grids = grid_community(
        sc["community"], sc["units"], households_per_grid=60, roads=sc["roads"], prefer=prefer
    )
    check_partition(sc["community"], grids)
    check_units(grids, sc["units"])


def test_unknown_preference_is_refused_by_name() -> None:
    community, units, roads = _street_grid(0)
    with pytest.raises(InvalidInput, match="balance, streets, compact"):
        grid_community(community, units, roads=roads, prefer="pretty")


def test_prices_are_per_context_and_restored() -> None:
    default = prices()
    with pytest.raises(RuntimeError), preferring("streets"):
        assert prices() == PREFERENCES["streets"]
        raise RuntimeError
    assert prices() == default

    names = list(PREFERENCES)
    barrier = threading.Barrier(len(names))

    def inside(name: str) -> bool:  # threads (API workers) each see only their own
        with preferring(name):
            barrier.wait(timeout=10)  # every thread has set its own before any reads
            seen = prices()
            barrier.wait(timeout=10)  # and none leaves (resetting) before all have read
        return seen == PREFERENCES[name]

    with ThreadPoolExecutor(len(names)) as pool:
        assert all(pool.map(inside, names))


def test_api_choices_match_the_preferences() -> None:
    from api.routers.grids import GriddingRequest

    annotation = GriddingRequest.model_fields["prefer"].annotation
    literal = next(a for a in typing.get_args(annotation) if a is not type(None))
    assert set(typing.get_args(literal)) == set(PREFERENCES)


def test_doctests() -> None:
    assert doctest.testmod(gridmap.gridding_prefs).failed == 0
