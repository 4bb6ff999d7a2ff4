"""Dispatch core (gridmap.dispatch): road costs, ranking rules, lifecycle table, Open311."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from collections import deque
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import dijkstra

from gridmap.crs import from_wgs84, to_wgs84
from gridmap.dispatch import (
    ASSIGNMENT_TRANSITIONS,
    CO_MEDIATION_CATEGORIES,
    SERVICES,
    TRANSITIONS,
    RoadGraph,
    check_transition,
    frees_mediator,
    grid_adjacency,
    open311_status,
    recommend,
    service_code,
)
from gridmap.errors import InvalidInput

METRIC = "EPSG:4546"
X0, Y0 = (float(v) for v in from_wgs84(111.30, 30.70, METRIC))
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def lonlat(dx: float, dy: float) -> tuple[float, float]:
    """WGS84 position ``dx``, ``dy`` metres east/north of the test origin."""
    lon, lat = to_wgs84(X0 + dx, Y0 + dy, METRIC)
    return float(lon), float(lat)


# ------------------------------------------------------------------------------ road graph


def bellman_ford(n: int, arcs: list[tuple[int, int, float]], src: int) -> list[float]:
    """Reference shortest paths straight from an arc list (independent of the CSR)."""
    dist = [math.inf] * n
    dist[src] = 0.0
    for _ in range(n):
        for a, b, w in arcs:
            if dist[a] + w < dist[b]:
                dist[b] = dist[a] + w
    return dist


edges = st.lists(
    st.tuples(
        st.integers(0, 11),
        st.integers(0, 11),
        st.integers(0, 20).map(float),
        st.one_of(st.just(-1.0), st.integers(0, 20).map(float)),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(edges=edges, src=st.integers(0, 11), offset=st.sampled_from([0, 10**9]))
def test_early_stop_equals_full_dijkstra_and_reference_on_random_one_way_graphs(
    edges: list[tuple[int, int, float, float]], src: int, offset: int
) -> None:
    s, t, c, rc = (np.array(v) for v in zip(*edges, strict=True))
    g = RoadGraph.from_edges(s + offset, t + offset, c, rc)
    ids = g.node_ids - offset
    if src not in ids:
        src = int(ids[0])
    arcs = [(a, b, w) for a, b, w, _ in edges if w >= 0] + [
        (b, a, r) for a, b, _, r in edges if r >= 0
    ]
    ref = bellman_ford(12, arcs, src)
    targets = ids + offset
    expected = [ref[int(i)] for i in ids]
    full = dijkstra(g.csr, indices=int(np.searchsorted(g.node_ids, src + offset)))
    assert full.tolist() == expected
    assert g.travel_times(src + offset, targets).tolist() == expected
    back = g.travel_times(src + offset, targets, toward=True)
    assert back.tolist() == [bellman_ford(12, arcs, int(i))[src] for i in ids]
    bounded = g.travel_times(src + offset, targets, max_cost=10)
    assert bounded.tolist() == [d if d <= 10 else math.inf for d in expected]


def test_pgrouting_semantics_parallel_edges_zero_cost_and_unknown_nodes() -> None:
    g = RoadGraph.from_edges([1, 1, 2, 3], [2, 2, 3, 3], [9.0, 4.0, 0.0, 1.0], [-1, 6, -1, 1])
    assert g.travel_times(1, [2, 3]).tolist() == [4.0, 4.0]  # cheapest parallel, zero-cost arc
    assert g.travel_times(2, [1]).tolist() == [6.0]  # only the reverse of the second edge
    assert g.travel_times(3, [1]).tolist() == [math.inf]  # 2→3 is one-way
    with pytest.raises(InvalidInput) as err:
        g.travel_times(1, [99])
    assert err.value.code == "unknown-node"


def test_nearest_node_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    dx, dy = rng.uniform(0, 3000, 200), rng.uniform(0, 3000, 200)
    lon, lat = to_wgs84(X0 + dx, Y0 + dy, METRIC)
    ids = np.arange(200) * 7 + 5
    g = RoadGraph.from_edges(
        ids[:-1],
        ids[1:],
        np.ones(199),
        node_ids=ids,
        node_lon=lon,
        node_lat=lat,
        metric_crs=METRIC,
    )
    qx, qy = rng.uniform(0, 3000, 50), rng.uniform(0, 3000, 50)
    qlon, qlat = to_wgs84(X0 + qx, Y0 + qy, METRIC)
    node, dist = g.nearest_node(qlon, qlat)
    d = np.hypot(qx[:, None] - dx[None, :], qy[:, None] - dy[None, :])
    assert node.tolist() == ids[d.argmin(axis=1)].tolist()
    np.testing.assert_allclose(dist, d.min(axis=1), atol=1e-3)
    lines = [shapely.LineString([lonlat(0, 0), lonlat(50, 0)])]
    g2 = RoadGraph.from_edges([10], [11], [5.0], geometry=lines)
    assert g2.nearest_node(*lonlat(45, 3))[0].tolist() == [11]


# ------------------------------------------------------------------------------ ranking

COMMUNITY = {"A": "c1", "B": "c1", "C": "c1", "D": "c2", "E": "c2"}
ADJ = {"A": {"B"}, "B": {"A"}, "C": set(), "D": {"E"}, "E": {"D"}}
INCIDENT = {"grid": "A", "lon": lonlat(0, 0)[0], "lat": lonlat(0, 0)[1], "category": "邻里纠纷"}


def person(pid: int, grid: str, dx: float, dy: float, **kw: object) -> dict[str, object]:
    lon, lat = lonlat(dx, dy)
    row: dict[str, object] = dict(
        person_id=pid,
        name=f"p{pid}",
        grid=grid,
        lon=lon,
        lat=lat,
        status="available",
        open_cases=0,
        caseload_cap=3,
        position_at=NOW - timedelta(minutes=5),
        roles="mediator",
    )
    row.update(kw)
    return row


def run(rows: list[dict[str, object]], **kw: object):  # type: ignore[no-untyped-def]
    df = pd.DataFrame(rows, columns=list(person(0, "A", 0, 0)))
    args: dict[str, object] = dict(adjacency=ADJ, community_of=COMMUNITY, now=NOW)
    args.update(kw)
    return recommend(INCIDENT, df, **args)  # type: ignore[arg-type]


def test_tiers_then_caseload_then_distance() -> None:
    rows = [
        person(1, "A", 900, 0, open_cases=2),
        person(2, "A", 800, 0, open_cases=1),
        person(3, "A", 100, 0, open_cases=1),
        person(4, "B", 50, 0),
        person(5, "C", 40, 0),
        person(6, "D", 30, 0, open_cases=1),
        person(7, "E", 3000, 0),
        person(8, "E", 1000, 0),
    ]
    rec = run(rows, limit=10)
    assert [c.person_id for c in rec.candidates] == [3, 2, 1, 4, 5, 8, 7, 6]
    assert [c.reason for c in rec.candidates] == [
        "OWN_GRID",
        "OWN_GRID",
        "OWN_GRID",
        "ADJACENT_GRID",
        "SAME_COMMUNITY",
        "NEAREST_ETA",
        "NEAREST_ETA",
        "NEAREST_ETA",
    ]
    assert rec.shortfall is None and rec.cost_kind == "straight_line"
    assert rec.candidates[0].distance_m == pytest.approx(100, abs=0.5)
    assert [c.person_id for c in run(rows, limit=2).candidates] == [3, 2]


def test_skip_codes_first_rule_wins() -> None:
    stale = NOW - timedelta(hours=2)
    rows = [
        person(1, "A", 10, 0),
        person(2, "A", 10, 0, status="off_duty"),
        person(3, "A", 10, 0, status="busy", open_cases=9),
        person(4, "A", 10, 0, open_cases=3, caseload_cap=3),
        person(5, "A", 10, 0, position_at=stale),
        person(6, "A", 10, 0, position_at=None),
        person(7, "A", 9000, 0),
        person(8, "A", 10, 0, roles="grid_manager,publicity"),
        person(9, "A", 10, 0, open_cases=5, caseload_cap=None),
        person(10, "A", 10, 0, roles=["legal_aid", "mediator"], lon=None),
    ]
    rec = run(rows)
    assert [c.person_id for c in rec.candidates] == [1, 9]
    assert {s.person_id: s.code for s in rec.skipped} == {
        2: "OFF_DUTY",
        3: "BUSY",
        4: "OVER_CAPACITY",
        5: "STALE_POSITION",
        6: "STALE_POSITION",
        7: "OUT_OF_RADIUS",
        8: "ROLE_MISMATCH",
        10: "STALE_POSITION",
    }


def test_rows_and_frames_rank_alike_and_skips_say_why() -> None:
    """The store passes plain rows, callers may pass a DataFrame: same answer, same texts.
    Position times without a zone are UTC; other zones are converted."""
    from datetime import timezone

    beijing = timezone(timedelta(hours=8))
    rows = [
        person(1, "A", 10, 0, position_at=(NOW - timedelta(minutes=5)).replace(tzinfo=None)),
        person(2, "A", 10, 0, status="off_duty"),
        person(3, "B", 10, 0, open_cases=3, caseload_cap=3),
        person(4, "A", 10, 0, position_at=(NOW - timedelta(hours=1)).astimezone(beijing)),
        person(5, "C", 9000, 0),
        person(6, "A", 10, 0, roles="publicity"),
        person(7, "D", 20, 0, position_at=(NOW - timedelta(minutes=10)).astimezone(beijing)),
    ]
    args: dict[str, object] = dict(adjacency=ADJ, community_of=COMMUNITY, now=NOW)
    from_rows = recommend(INCIDENT, rows, **args)  # type: ignore[arg-type]
    from_frame = run(rows)
    assert from_rows == from_frame
    assert [c.person_id for c in from_rows.candidates] == [1, 7]
    assert {s.person_id: s.detail for s in from_rows.skipped} == {
        2: "status 'off_duty'",
        3: "3 open cases, cap 3",
        4: "position at 2026-11-27 08:00:00+00:00",
        5: "9000 m > 5000 m",
        6: "roles 'publicity'",
    }


def test_person_posted_to_two_grids_ranked_once_at_best_tier() -> None:
    rec = run([person(1, "C", 10, 0), person(1, "B", 10, 0), person(2, "B", 5, 0)])
    assert [(c.person_id, c.reason) for c in rec.candidates] == [
        (2, "ADJACENT_GRID"),
        (1, "ADJACENT_GRID"),
    ]
    assert rec.skipped == ()


@pytest.mark.parametrize(
    ("rows", "shortfall"),
    [
        ([], "NO_CANDIDATES"),
        ([person(1, "A", 0, 0, roles="publicity")], "NO_CANDIDATES"),
        ([person(1, "A", 0, 0, status="off_duty")] * 2, "ALL_OFF_DUTY"),
        ([person(1, "A", 0, 0, status="busy"), person(2, "B", 0, 0, open_cases=5)], "ALL_BUSY"),
        (
            [person(1, "A", 0, 0, status="busy"), person(2, "A", 0, 0, status="off_duty")],
            "NONE_AVAILABLE",
        ),
        ([person(1, "A", 8000, 0), person(2, "A", 0, 0, status="busy")], "OUTSIDE_RADIUS"),
        ([person(1, "A", 0, 0, position_at=NOW - timedelta(days=1))], "STALE_POSITIONS"),
    ],
)
def test_shortfall_codes(rows: list[dict[str, object]], shortfall: str) -> None:
    rec = run(rows)
    assert rec.candidates == () and rec.shortfall == shortfall


def road() -> RoadGraph:
    """Incident node 0; person 1 is 1000 m east but 0→1 is one-way, so coming back costs 700;
    person 2 is 1500 m north with a direct two-way road of cost 100."""
    pts = {0: (0, 0), 1: (1000, 0), 2: (0, 1500), 3: (1000, 1500), 4: (30000, 0)}
    ids = list(pts)
    lon, lat = zip(*(lonlat(*pts[i]) for i in ids), strict=True)
    return RoadGraph.from_edges(
        [0, 0, 1, 3],
        [1, 2, 3, 2],
        [50, 100, 300, 300],
        [-1, 100, 300, 300],
        node_ids=ids,
        node_lon=lon,
        node_lat=lat,
    )


def test_road_cost_orders_by_travel_toward_the_incident() -> None:
    rows = [person(1, "D", 1000, 0), person(2, "D", 0, 1500)]
    assert [c.person_id for c in run(rows).candidates] == [1, 2]
    rec = run(rows, graph=road())
    assert [(c.person_id, c.eta) for c in rec.candidates] == [(2, 100.0), (1, 700.0)]
    assert rec.cost_kind == "road"


def test_unreachable_by_road_is_skipped() -> None:
    rec = run([person(1, "A", 29000, 0)], graph=road(), max_radius_m=50000)
    assert rec.candidates == () and rec.shortfall == "OUTSIDE_RADIUS"
    assert [s.code for s in rec.skipped] == ["UNREACHABLE"]


def test_co_mediators_invited_for_listed_categories_only() -> None:
    inv = pd.DataFrame(
        {
            "person_id": [71, 72, 73, 74],
            "name": ["deputy", "elder", "other district", "land only"],
            "area_code": ["420502", "420502001001", "420503", "4205"],
            "categories": [None, "", None, "宅基地,土地承包"],
        }
    )
    incident = dict(INCIDENT, grid="420502001001007")
    base = dict(adjacency={}, community_of={}, now=NOW, invited=inv)
    got = recommend(incident, pd.DataFrame(), **base)  # type: ignore[arg-type]
    assert [i.person_id for i in got.invited] == [72, 71]
    assert got.category == "neighbour" and "neighbour" in CO_MEDIATION_CATEGORIES
    land = recommend(dict(incident, category="宅基地"), pd.DataFrame(), **base)  # type: ignore[arg-type]
    assert [i.person_id for i in land.invited] == [72, 71, 74]
    prop = recommend(dict(incident, category="物业纠纷"), pd.DataFrame(), **base)  # type: ignore[arg-type]
    assert prop.invited == ()


def test_grid_adjacency_is_rook() -> None:
    d = 0.001
    codes = [f"{i}{j}" for i in range(3) for j in range(3)]
    geoms = [
        shapely.box(111.3 + i * d, 30.7 + j * d, 111.3 + (i + 1) * d, 30.7 + (j + 1) * d)
        for i in range(3)
        for j in range(3)
    ]
    geoms.append(shapely.box(111.3 + 3 * d, 30.7 + 3 * d, 111.3 + 4 * d, 30.7 + 4 * d))
    codes.append("corner")  # touches "22" at one point only
    adj = grid_adjacency(codes, geoms)
    for i in range(3):
        for j in range(3):
            expected = {
                f"{a}{b}"
                for a, b in [(i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)]
                if 0 <= a < 3 and 0 <= b < 3
            }
            assert adj[f"{i}{j}"] == expected
    assert adj["corner"] == set()


# ------------------------------------------------------------------------------ lifecycle


def test_happy_path_and_redispatch_are_legal() -> None:
    path = ["reported", "dispatched", "accepted", "on_site", "resolved", "closed"]
    for a, b in itertools.pairwise(path):
        check_transition(a, b)
    for a in ("dispatched", "accepted"):
        check_transition(a, "reported")  # declined / cancelled → re-dispatch
        assert frees_mediator(a, "reported")
    check_transition("dispatched", "declined", assignment=True)
    assert frees_mediator("dispatched", "declined")
    assert not frees_mediator("reported", "dispatched")
    assert not frees_mediator("dispatched", "accepted")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("reported", "resolved"),
        ("closed", "reported"),
        ("resolved", "failed"),
        ("on_site", "on_site"),
        ("reported", "on_site"),
    ],
)
def test_illegal_transitions_raise(a: str, b: str) -> None:
    with pytest.raises(InvalidInput) as err:
        check_transition(a, b)
    assert err.value.code == "illegal-transition"


def test_transition_tables_are_closed_and_every_state_can_finish() -> None:
    with pytest.raises(InvalidInput) as err:
        check_transition("reported", "teleported")
    assert err.value.code == "unknown-status"
    for table, final in ((TRANSITIONS, {"closed"}), (ASSIGNMENT_TRANSITIONS, None)):
        assert all(b in table for bs in table.values() for b in bs)
        for start in table:
            seen, todo = {start}, deque([start])
            while todo:
                for b in table[todo.popleft()] - seen:
                    seen.add(b)
                    todo.append(b)
            assert final is None or final & seen
    reach = {"reported"}
    for _ in TRANSITIONS:
        reach |= {b for a in reach for b in TRANSITIONS[a]}
    assert reach == set(TRANSITIONS)


def test_open311_services_and_status() -> None:
    names = [s.name for s in SERVICES]
    assert names == [
        "邻里纠纷",
        "婚姻家庭",
        "物业纠纷",
        "土地承包",
        "宅基地",
        "拆迁补偿",
        "劳动争议",
        "其他",
    ]
    assert {service_code(n) for n in ("婚姻家庭", "邻里纠纷", "土地承包", "宅基地")} == set(
        CO_MEDIATION_CATEGORIES
    )
    for status in TRANSITIONS:
        state, note = open311_status(status)
        assert state in ("open", "closed") and note
    assert open311_status("closed")[0] == "closed" and open311_status("on_site")[0] == "open"
    with pytest.raises(InvalidInput):
        service_code("unknown")


@pytest.mark.parametrize("module", ["gridmap.locate", "gridmap.dispatch"])
def test_modules_are_pure(module: str) -> None:
    forbidden = ["fastapi", "starlette", "sqlalchemy", "geoalchemy2", "folium"]
    code = f"import sys, {module}; print([m for m in {forbidden!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
