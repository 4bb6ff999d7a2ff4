"""Staff every grid: role quotas, exact staff→grid assignment, care links (≤ 5), shortage reports.

Each role is an independent min-cost flow (OR-Tools' cost-scaling solver, whole metres):
people → grids → sink, with a large reward for each filled minimum slot (coverage first), a
smaller one for each person posted at least once (optional slots go to people who would
otherwise stay idle), then the least total home-to-grid cost; each weight outweighs any change
of the levels below it. Arcs start as each person's ``k`` cheapest grids plus their current
ones; node potentials of the optimal residual graph then price *every* omitted arc, violated
arcs are added and the flow re-solved until none is left, so the result is optimal for the
full person × grid problem (``certified``), not just for the k-nearest subgraph.

Examples
--------
>>> people = pd.DataFrame({"id": ["a", "b"], "role": "mediator", "x": [0.0, 900.0],
...                        "y": [0.0, 0.0]})
>>> grids = pd.DataFrame({"code": ["g1", "g2"], "x": [1000.0, 0.0], "y": [0.0, 0.0]})
>>> a = assign_staff(people, grids, Quotas())
>>> sorted(zip(a.postings.person, a.postings.grid)), a.total_cost_m, a.certified
([('a', 'g2'), ('b', 'g1')], 100.0, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from gridmap.errors import InvalidInput
from gridmap.staffing_model import STAFF_ROLES, Assignment, CareAssignment, Quotas, RoleQuota
from gridmap.staffing_report import aggregate_report, shortage_report

__all__ = [
    "STAFF_ROLES",
    "Assignment",
    "CareAssignment",
    "Quotas",
    "RoleQuota",
    "aggregate_report",
    "assign_care",
    "assign_staff",
    "greedy_assign_staff",
    "shortage_report",
]

_BLOCK = 2_000_000  # cost-matrix cells computed at once


def _potentials(tail: np.ndarray, head: np.ndarray, cost: np.ndarray, n: int) -> np.ndarray:
    """Shortest distances from a virtual root (Bellman-Ford, vectorised): valid node potentials."""
    order = np.argsort(head, kind="stable")
    t, c, h = tail[order], cost[order], head[order]
    heads, starts = np.unique(h, return_index=True)
    dist = np.zeros(n, dtype=np.int64)
    for _ in range(n + 1):
        best = np.minimum.reduceat(dist[t] + c, starts)
        better = best < dist[heads]
        if not better.any():
            return dist
        dist[heads[better]] = best[better]
    raise RuntimeError("negative cycle in an optimal residual graph")  # pragma: no cover


def _flow(
    cost: Callable[[np.ndarray, np.ndarray], np.ndarray],
    n_right: int,
    left_tiers: list[tuple[np.ndarray, np.ndarray]],
    right_tiers: list[tuple[np.ndarray, np.ndarray]],
    k: int,
    certify: bool = True,
    keep: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Min-cost flow left → right (capacity 1 per pair) → sink with priced-out arc generation.

    ``cost(i, j)`` gives whole-number costs for broadcastable index arrays (inf: no arc). Tiers
    are (capacity, cost) arcs to the sink: idle units on the left, slots on the right. The
    first arcs are each left node's ``k`` cheapest plus the ``keep`` pairs (current postings).
    Returns the used (left, right) pairs and whether optimality over all pairs was proved.
    """
    from ortools.graph.python import min_cost_flow

    n_left, sink, kk = len(left_tiers[0][0]), len(left_tiers[0][0]) + n_right, min(k, n_right)
    if not (n_left and n_right):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), True
    step = max(1, _BLOCK // n_right)
    blocks = [np.arange(s, min(s + step, n_left)) for s in range(0, n_left, step)]
    everyone = np.arange(n_right)[None, :]
    pairs = []
    for rows in blocks:  # the k cheapest right nodes of each left node
        c = cost(rows[:, None], everyone)
        cols = np.argpartition(c, kk - 1, axis=1)[:, :kk]
        ok = np.isfinite(np.take_along_axis(c, cols, axis=1))
        pairs.append(np.repeat(rows[:, None], kk, 1)[ok] * n_right + cols[ok])
    if keep is not None and len(keep[0]):
        pairs.append((keep[0] * n_right + keep[1])[np.isfinite(cost(*keep))])
    arcs = np.unique(np.concatenate(pairs))
    tiers = left_tiers + right_tiers
    fixed_t = np.concatenate(
        [np.arange(n_left)] * len(left_tiers) + [n_left + np.arange(n_right)] * len(right_tiers)
    )
    fixed_cap = np.concatenate([t[0] for t in tiers]).astype(np.int64)
    fixed_cost = np.concatenate([t[1] for t in tiers]).astype(np.int64)
    supply = np.sum([t[0] for t in left_tiers], axis=0).astype(np.int64)
    supplies = np.concatenate([supply, np.zeros(n_right, np.int64), [-supply.sum()]])
    while True:
        ai, aj = arcs // n_right, arcs % n_right
        tail = np.concatenate([ai, fixed_t])
        head = np.concatenate([n_left + aj, np.full(len(fixed_t), sink)])
        cap = np.concatenate([np.ones(len(arcs), np.int64), fixed_cap])
        unit = np.concatenate([cost(ai, aj).astype(np.int64), fixed_cost])
        mcf = min_cost_flow.SimpleMinCostFlow()
        mcf.add_arcs_with_capacity_and_unit_cost(tail, head, cap, unit)
        mcf.set_nodes_supplies(np.arange(sink + 1), supplies)
        if (status := mcf.solve()) != mcf.OPTIMAL:
            raise RuntimeError(f"min-cost flow failed: {status}")  # pragma: no cover
        flow = mcf.flows(np.arange(len(tail)))
        used = flow[: len(arcs)] > 0
        if not certify:
            return ai[used], aj[used], False
        fwd, bwd = flow < cap, flow > 0
        pot = _potentials(
            np.concatenate([tail[fwd], head[bwd]]),
            np.concatenate([head[fwd], tail[bwd]]),
            np.concatenate([unit[fwd], -unit[bwd]]),
            sink + 1,
        )
        new = []
        for rows in blocks:  # price every pair left out: no negative reduced cost may remain
            red = cost(rows[:, None], everyone) + pot[rows, None] - pot[n_left:sink][None, :]
            bi, bj = np.nonzero(red < 0)  # inf (no arc) never qualifies
            cand = rows[bi] * n_right + bj
            new.append(cand[~np.isin(cand, arcs)])
        added = np.concatenate(new)
        if not len(added):
            return ai[used], aj[used], True
        arcs = np.union1d(arcs, added)


def _cost_fn(
    lxy: np.ndarray,
    rxy: np.ndarray,
    matrix: np.ndarray | None,
    keep: tuple[np.ndarray, np.ndarray],
    margin: float,
    extra: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Whole-metre costs: distance (or ``matrix``) + ``extra`` − ``margin`` on current pairs."""
    current = keep[0] * len(rxy) + keep[1]

    def cost(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        c = _pair_cost(lxy, rxy, matrix, i, j)
        if extra is not None:
            c = c + extra(i, j)
        return np.rint(c - margin * np.isin(i * len(rxy) + j, current))

    return cost


def _pair_cost(lxy: np.ndarray, rxy: np.ndarray, matrix: np.ndarray | None, i: Any, j: Any) -> Any:
    if matrix is not None:
        return matrix[i, j].astype(float)
    return np.hypot(lxy[i, 0] - rxy[j, 0], lxy[i, 1] - rxy[j, 1])


def _bound(lxy: np.ndarray, rxy: np.ndarray, matrix: np.ndarray | None, margin: float) -> int:
    """An upper bound on any |arc cost|: the lexicographic weights are built from it."""
    if matrix is not None:
        fin = matrix[np.isfinite(matrix)]
        top = float(np.abs(fin).max(initial=0.0))
    else:
        both = np.vstack([lxy, rxy])
        top = float(np.hypot(*np.ptp(both, axis=0)))
    return math.ceil(top + abs(margin)) + 1


def _matrix(cost_matrix: Any, ids: pd.Series, pos: np.ndarray, codes: pd.Series) -> Any:
    if cost_matrix is None:
        return None
    if isinstance(cost_matrix, pd.DataFrame):
        m = cost_matrix.reindex(index=ids.to_numpy(), columns=codes.to_numpy()).to_numpy(float)
    else:
        m = np.asarray(cost_matrix, dtype=float)[pos]
    return np.where(np.isnan(m), np.inf, m)


def _codes(v: Any) -> list[Any]:
    vals = list(v) if isinstance(v, list | tuple | set | np.ndarray) else [v]
    return [c for c in vals if c is not None and not (isinstance(c, float) and math.isnan(c))]


def _current(values: pd.Series, index: Mapping[Any, int]) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(i, index[c]) for i, v in enumerate(values) for c in _codes(v) if c in index]
    arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def _join(codes: set[Any]) -> str:
    return ";".join(sorted(map(str, codes)))


def _moves(who: pd.DataFrame, new: pd.DataFrame, col: str, key: str, target: str) -> pd.DataFrame:
    """People whose postings changed: ``from`` (lost) and ``to`` (gained), ';'-joined."""
    got = new.groupby(key)[target].agg(set).to_dict() if len(new) else {}
    rows = []
    for pid, role, cur in zip(who["id"], who["role"], who[col], strict=True):
        old, now = set(_codes(cur)), got.get(pid, set())
        if old and old != now:
            rows.append((pid, role, _join(old - now), _join(now - old)))
    return pd.DataFrame(rows, columns=[key, "role", "from", "to"])


def _check(df: pd.DataFrame, cols: tuple[str, ...], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InvalidInput(f"{what} lacks columns {', '.join(missing)}")
    if df[list(cols[-2:])].isna().any().any():
        raise InvalidInput(f"{what} has rows without x/y; locate them first")


def _role_frame(people: pd.DataFrame, role: str, quotas: Quotas) -> tuple[pd.DataFrame, Any]:
    pos = np.flatnonzero((people["role"] == role).to_numpy())
    p = people.iloc[pos].reset_index(drop=True)
    cap = p["capacity"] if "capacity" in p else pd.Series(np.nan, index=p.index)
    p["capacity"] = cap.fillna(quotas.role(role).capacity).astype(int)
    if "current_grid" not in p:
        p["current_grid"] = None
    return p, pos


def _by_role(
    people: pd.DataFrame, grids: pd.DataFrame, quotas: Quotas, solve: Callable[..., Any]
) -> Assignment:
    """Run ``solve(p, pos, q, g)`` → (person rows, grid rows, cost_m, kept, certified) per role
    and gather postings, moves, unfilled minimum slots and idle people."""
    _check(people, ("id", "role", "x", "y"), "people")
    _check(grids, ("code", "x", "y"), "grids")
    g = grids.reset_index(drop=True)
    out, unfilled, idle, certified, slots, ng = [], [], [], True, 0, len(g)
    for role in STAFF_ROLES:
        q = quotas.role(role)
        p, pos = _role_frame(people, role, quotas)
        slots += q.min * ng
        pi, gj, cost, kept, cert = solve(p, pos, q, g) if len(p) else ([], [], [], [], True)
        pi, gj = np.asarray(pi, np.int64), np.asarray(gj, np.int64)
        certified &= cert
        out.append(
            pd.DataFrame(
                {
                    "person": p["id"].to_numpy()[pi],
                    "role": role,
                    "grid": g["code"].to_numpy()[gj],
                    "cost_m": cost,
                    "kept": np.asarray(kept, bool),
                }
            )
        )
        filled = np.bincount(gj, minlength=ng)
        unfilled += [
            (c, role, q.min - f) for c, f in zip(g["code"], filled, strict=True) if f < q.min
        ]
        idle += [(pid, role) for pid in p["id"].to_numpy()[np.bincount(pi, minlength=len(p)) == 0]]
    postings = pd.concat(out, ignore_index=True)
    staff = people[people["role"].isin(STAFF_ROLES)]
    staff = staff if "current_grid" in staff else staff.assign(current_grid=None)
    return Assignment(
        postings=postings,
        moves=_moves(staff, postings, "current_grid", "person", "grid"),
        unfilled=pd.DataFrame(unfilled, columns=["grid", "role", "missing"]),
        idle=pd.DataFrame(idle, columns=["person", "role"]),
        total_cost_m=float(postings["cost_m"].sum()),
        min_slots=slots,
        certified=certified,
    )


def assign_staff(
    people: pd.DataFrame,
    grids: pd.DataFrame,
    quotas: Quotas | None = None,
    *,
    cost_matrix: Any = None,
    keep_margin_m: float = 500.0,
    k: int = 30,
    certify: bool = True,
) -> Assignment:
    """Optimal postings of ``people`` (id, role, metric x/y, capacity?, current_grid?) to grids.

    Coverage of quota minimums first, then everyone posted once where optional slots remain,
    then least total metres; a current posting costs ``keep_margin_m`` less, so a person moves
    only when that saves more. ``cost_matrix`` (people rows × grids rows, or a DataFrame by id
    and code; NaN = unreachable) replaces straight-line metres, e.g. with road distance.
    """

    def solve(p: pd.DataFrame, pos: np.ndarray, q: RoleQuota, g: pd.DataFrame) -> tuple:
        n, ng, cap = len(p), len(g), p["capacity"].to_numpy(np.int64)
        pxy, gxy = p[["x", "y"]].to_numpy(float), g[["x", "y"]].to_numpy(float)
        keep = _current(p["current_grid"], {c: j for j, c in enumerate(g["code"])})
        matrix = _matrix(cost_matrix, p["id"], pos, g["code"])
        fn = _cost_fn(pxy, gxy, matrix, keep, keep_margin_m)
        span = 2 * _bound(pxy, gxy, matrix, keep_margin_m) * int(cap.sum() + 1)
        use = span + 1  # one more person posted beats any change of total metres
        full = use * (n + 1) + span  # one more minimum slot filled beats everything else
        opt = np.full(ng, int(cap.sum()) if q.max is None else q.max - q.min)
        pi, gj, cert = _flow(
            fn,
            ng,
            [(np.ones(n), np.full(n, use)), (cap - 1, np.zeros(n))],
            [(np.full(ng, q.min), np.full(ng, -full)), (opt, np.zeros(ng))],
            k,
            certify,
            keep,
        )
        kept = set(zip(keep[0].tolist(), keep[1].tolist(), strict=True))
        held = [(i, j) in kept for i, j in zip(pi.tolist(), gj.tolist(), strict=True)]
        return pi, gj, np.rint(_pair_cost(pxy, gxy, matrix, pi, gj)), held, cert

    return _by_role(people, grids, quotas or Quotas(), solve)


def greedy_assign_staff(
    people: pd.DataFrame, grids: pd.DataFrame, quotas: Quotas | None = None, *, k: int = 30
) -> Assignment:
    """Baseline for the benchmark: nearest (person, grid) pairs first, minimums then maximums."""

    def solve(p: pd.DataFrame, pos: np.ndarray, q: RoleQuota, g: pd.DataFrame) -> tuple:
        pxy, gxy = p[["x", "y"]].to_numpy(float), g[["x", "y"]].to_numpy(float)
        cap, kk = p["capacity"].to_numpy(np.int64), min(k, len(g))
        d = np.hypot(pxy[:, None, 0] - gxy[None, :, 0], pxy[:, None, 1] - gxy[None, :, 1])
        near = np.argpartition(d, kk - 1, axis=1)[:, :kk]
        pi, gj = np.repeat(np.arange(len(p)), kk), near.ravel()
        order = np.argsort(d[pi, gj], kind="stable")
        left, count, taken = cap.copy(), np.zeros(len(g), np.int64), set()
        for limit, fresh in ((q.min, False), (q.max, True)):  # then optional slots, unposted only
            for i, j in zip(pi[order].tolist(), gj[order].tolist(), strict=True):
                room = limit is None or count[j] < limit
                if left[i] and room and (not fresh or left[i] == cap[i]) and (i, j) not in taken:
                    taken.add((i, j))
                    left[i] -= 1
                    count[j] += 1
        ti, tj = np.array(sorted(taken), np.int64).reshape(-1, 2).T
        return ti, tj, np.rint(d[ti, tj]), np.zeros(len(ti), bool), False

    return _by_role(people, grids, quotas or Quotas(), solve)


def assign_care(
    subjects: pd.DataFrame,
    volunteers: pd.DataFrame,
    quotas: Quotas | None = None,
    *,
    cost_matrix: Any = None,
    cross_grid_penalty_m: float = 10_000.0,
    keep_margin_m: float = 500.0,
    k: int = 30,
    certify: bool = True,
) -> CareAssignment:
    """Each care subject (id, grid, x, y, current_volunteer?) to at most one volunteer.

    A volunteer (id, grid, x, y, capacity?) takes at most ``quotas.care_ratio`` subjects. Most
    subjects covered first; then cost = metres, plus ``cross_grid_penalty_m`` when the volunteer
    belongs to another grid, minus ``keep_margin_m`` for the current volunteer.
    """
    quotas = quotas or Quotas()
    _check(subjects, ("id", "grid", "x", "y"), "subjects")
    _check(volunteers, ("id", "grid", "x", "y"), "volunteers")
    s, v = subjects.reset_index(drop=True), volunteers.reset_index(drop=True)
    n, nv = len(s), len(v)
    capv = v["capacity"] if "capacity" in v else pd.Series(quotas.care_ratio, index=v.index)
    capv = np.minimum(capv.fillna(quotas.care_ratio).to_numpy(np.int64), quotas.care_ratio)
    cur = s["current_volunteer"] if "current_volunteer" in s else pd.Series([None] * n)
    keep = _current(cur, {c: j for j, c in enumerate(v["id"])})
    sxy, vxy = s[["x", "y"]].to_numpy(float), v[["x", "y"]].to_numpy(float)
    codes = pd.factorize(pd.concat([s["grid"], v["grid"]]).astype(str))[0]
    sg, vg = codes[:n], codes[n:]

    def penalty(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return cross_grid_penalty_m * (sg[i] != vg[j])

    matrix = _matrix(cost_matrix, s["id"], np.arange(n), v["id"])
    si, vj, cert = np.zeros(0, np.int64), np.zeros(0, np.int64), True
    if n and nv:
        fn = _cost_fn(sxy, vxy, matrix, keep, keep_margin_m, penalty)
        bound = _bound(sxy, vxy, matrix, keep_margin_m) + int(cross_grid_penalty_m)
        cover = 2 * bound * (n + 1) + 1  # one more subject covered beats any change of metres
        si, vj, cert = _flow(
            fn, nv, [(np.ones(n), np.full(n, cover))], [(capv, np.zeros(nv))], k, certify, keep
        )
    vol = np.full(n, None, dtype=object)
    vol[si] = v["id"].to_numpy()[vj]
    links = pd.DataFrame({"subject": s["id"], "grid": s["grid"], "volunteer": vol})
    links["volunteer_grid"] = None
    links.loc[si, "volunteer_grid"] = v["grid"].to_numpy()[vj]
    links["cost_m"] = np.nan
    links.loc[si, "cost_m"] = np.rint(_pair_cost(sxy, vxy, matrix, si, vj))
    links["same_grid"] = links["volunteer_grid"].astype(str) == links["grid"].astype(str)
    load = np.bincount(vj, minlength=nv)
    vols = pd.DataFrame({"id": v["id"], "grid": v["grid"], "capacity": capv, "load": load})
    who = s.assign(current_volunteer=cur.to_numpy(), role="care_subject")
    return CareAssignment(
        links=links,
        volunteers=vols,
        moves=_moves(
            who, links.dropna(subset=["volunteer"]), "current_volunteer", "subject", "volunteer"
        ),
        total_cost_m=float(np.nansum(links["cost_m"])),
        certified=cert,
    )
