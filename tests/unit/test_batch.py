"""Dask distributed batch: two worker processes give exactly the single-process answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import shapely

from gridmap.batch import (
    assign_by_district,
    connect,
    district_parts,
    grid_jobs,
    locate_points,
    merge_assignments,
    share_index,
)
from gridmap.gridding_jobs import GridJob
from gridmap.locate import GridIndex
from gridmap.staffing import assign_staff

CRS = "EPSG:4546"  # CGCS2000 3-degree GK, CM 111°E (Yichang)
X0, Y0 = 500_000.0, 3_400_000.0


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with connect(workers=2) as c:
        assert len(c.scheduler_info()["workers"]) == 2
        yield c


def _community(k: int, rng: np.random.Generator) -> GridJob:
    """A rectangle community with a road across it and clustered household units."""
    x0, y0 = X0 + 1500.0 * k, Y0
    w, h = 900.0 + 100 * (k % 3), 700.0
    n = 150 + 40 * k
    units = {
        "x": x0 + rng.uniform(10, w - 10, n),
        "y": y0 + rng.uniform(10, h - 10, n),
        "households": rng.integers(5, 40, n).astype(float),
        "residents": rng.integers(10, 90, n).astype(float),
    }
    road = np.array([shapely.LineString([(x0 - 5, y0 + h / 2), (x0 + w + 5, y0 + h / 2)])])
    return GridJob(f"4205020010{k:02d}", shapely.box(x0, y0, x0 + w, y0 + h), units, road, CRS)


def test_grid_jobs_identical_on_two_workers(client: Any) -> None:
    rng = np.random.default_rng(7)
    jobs = [_community(k, rng) for k in range(5)]
    serial = grid_jobs(jobs, client=None, households_per_grid=900)
    dist = grid_jobs(jobs, client=client, households_per_grid=900)
    assert [o.code for o in dist] == [j.code for j in jobs]
    assert sum(len(o.seq) for o in serial) > len(jobs)  # communities really were split
    for a, b in zip(serial, dist, strict=True):
        assert a.code == b.code
        assert a.seq.tolist() == b.seq.tolist()
        assert a.households.tolist() == b.households.tolist()
        assert a.residents.tolist() == b.residents.tolist()
        assert shapely.to_wkb(a.geoms).tolist() == shapely.to_wkb(b.geoms).tolist()
        assert a.quality == b.quality


def _voronoi_index(n: int, rng: np.random.Generator) -> GridIndex:
    box = shapely.box(111.20, 30.60, 111.40, 30.80)
    seeds = shapely.multipoints(rng.uniform([111.20, 30.60], [111.40, 30.80], (n, 2)))
    cells = shapely.intersection(shapely.get_parts(shapely.voronoi_polygons(seeds)), box)
    codes = [f"420502{k:09d}" for k in rng.permutation(len(cells))]
    return GridIndex.build(codes, cells)


def test_locate_points_identical_on_two_workers(client: Any) -> None:
    rng = np.random.default_rng(3)
    index = _voronoi_index(300, rng)
    lon = rng.uniform(111.15, 111.45, 120_000)
    lat = rng.uniform(30.55, 30.85, 120_000)
    lon[:50], lat[:50] = (
        lat[:50].copy(),
        lon[:50].copy(),
    )  # some swapped, some NaN: every status survives
    lon[50:60] = np.nan
    # points exactly on shared vertices: ties go to the lowest code on every path
    verts = shapely.get_coordinates(index.geoms[:20])
    lon[60 : 60 + len(verts)], lat[60 : 60 + len(verts)] = verts[:, 0], verts[:, 1]
    want_idx, want_status = index.locate_status(lon, lat)
    idx1, st1 = locate_points(index, lon, lat, client=None, chunk=25_000)
    idx2, st2 = locate_points(index, lon, lat, client=client, chunk=25_000)
    assert np.array_equal(idx1, want_idx) and np.array_equal(st1, want_status)
    assert np.array_equal(idx2, want_idx) and np.array_equal(st2, want_status)
    shared = share_index(client, index)  # shipped once, used for two batches
    for part in (slice(0, 70_000), slice(70_000, None)):
        idx3, st3 = locate_points(shared, lon[part], lat[part], client=client, chunk=20_000)
        assert np.array_equal(idx3, want_idx[part]) and np.array_equal(st3, want_status[part])
    assert set(np.unique(st2).tolist()) >= {0, 1, 2, 3}


def _staff_case(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    grids, people = [], []
    for d, (dx, dy) in enumerate([(0, 0), (20_000, 0), (0, 20_000)]):
        district = f"42050{2 + d}"
        for g in range(12):
            grids.append(
                (f"{district}001{g:03d}", X0 + dx + 800 * (g % 4), Y0 + dy + 800 * (g // 4))
            )
    roles = ["grid_manager", "mediator", "legal_professional", "publicity", "legal_aid"]
    for i in range(110):
        d = rng.integers(0, 3)
        dx, dy = [(0, 0), (20_000, 0), (0, 20_000)][d]
        current = None if i % 4 else [grids[rng.integers(0, len(grids))][0]]
        people.append(
            (
                f"p{i:03d}",
                roles[i % 5],
                X0 + dx + rng.uniform(-500, 3000),
                Y0 + dy + rng.uniform(-500, 2500),
                current,
            )
        )
    g = pd.DataFrame(grids, columns=["code", "x", "y"])
    p = pd.DataFrame(people, columns=["id", "role", "x", "y", "current_grid"])
    return p, g


def test_assign_by_district_identical_on_two_workers(client: Any) -> None:
    people, grids = _staff_case(np.random.default_rng(11))
    serial = assign_by_district(people, grids, client=None)
    dist = assign_by_district(people, grids, client=client)
    for name in ("postings", "moves", "unfilled", "idle"):
        pd.testing.assert_frame_equal(getattr(serial, name), getattr(dist, name))
    assert serial.total_cost_m == dist.total_cost_m and serial.min_slots == dist.min_slots
    assert serial.certified and dist.certified
    # each district's postings stay inside it and match assigning that district alone
    parts = district_parts(people, grids)
    assert [d for d, _, _ in parts] == ["420502", "420503", "420504"]
    alone = merge_assignments([assign_staff(p, g) for _, p, g in parts])
    pd.testing.assert_frame_equal(alone.postings, serial.postings)
    by_person = dict(zip(people["id"], people.index, strict=True))
    for d, p, _ in parts:
        own = serial.postings[serial.postings["person"].isin(p["id"])]
        assert own["grid"].str[:6].eq(d).all()
        assert all(pid in by_person for pid in own["person"])
