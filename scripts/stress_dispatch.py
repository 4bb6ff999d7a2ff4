"""Concurrency trial of issue 5: 32 dispatchers released together at few mediators.

Each trial creates ``--incidents`` (K, default 32) incidents (邻里纠纷) at random points in ONE
published grid with few available mediators nearby (``--grid``, default: the grid with the fewest
available mediators within 5 km of its centre, at least ``--min-mediators``), then releases
``--threads`` (32) threads together on a ``threading.Barrier``. Trials rotate over three paths:

* ``dispatch``: each thread ``POST …/dispatch`` (no body: the best free mediator) on incident
  ``t mod K``;
* ``reassign``: a few incidents are dispatched first; half the threads then ``POST …/dispatch
  {"reassign": true}`` on those (several threads per incident), the others dispatch the rest;
* ``cancel``: a few incidents are dispatched first; one thread per such incident cancels and
  reopens it (``cancelled`` → ``reported``; every other one declines instead: ``reported`` with
  ``decline``) and dispatches it again, racing the other threads dispatching the rest.

After the threads finish the database is checked: no mediator and no incident with two active
assignments (``dispatched``/``accepted``/``on_site``), every incident of the trial held by a
mediator has exactly one active assignment naming its ``mediator_id`` and every other one has
none, no mediator over their open-caseload cap; every answer must be 200 or 409 (no 5xx).
Then every incident of the trial is cancelled over HTTP (freeing its mediator) and, unless
``--keep-incidents``, deleted (with its events and assignments; the audit log is append-only
and keeps its rows). Loopback only; stops starting trials after ``--time-budget`` seconds.
Exit status 1 on any violation.

    .venv/bin/gridmap user add bench --role dispatcher --password benchbench1   # once
    .venv/bin/python scripts/stress_dispatch.py [--base-url http://127.0.0.1:8000]
        [--trials 1000] [--incidents 32] [--threads 32] [--grid CODE] [--time-budget 3600]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import shapely
from bench_api import check_loopback, get_token, problem_code, sample_in
from sqlalchemy import Engine, text

from gridmap.settings import get_settings
from gridmap.store.db import database_url, make_engine

CATEGORY = "邻里纠纷"
HOLD = ("dispatched", "accepted", "on_site")
PATHS = ("dispatch", "reassign", "cancel")

SQL_PERSON_TWICE = (
    "SELECT person_id FROM dispatch_assignment WHERE status IN ('dispatched','accepted',"
    "'on_site') GROUP BY 1 HAVING count(*) > 1"
)
SQL_INCIDENT_TWICE = (
    "SELECT incident_id FROM dispatch_assignment WHERE status IN ('dispatched','accepted',"
    "'on_site') GROUP BY 1 HAVING count(*) > 1"
)
SQL_OVER_CAP = """
    SELECT i.mediator_id FROM incident i JOIN person p ON p.id = i.mediator_id
    WHERE i.status IN ('dispatched','accepted','on_site','escalated')
    GROUP BY i.mediator_id, p.caseload_cap HAVING count(*) > p.caseload_cap"""
SQL_TRIAL_STATE = """
    SELECT i.public_id, i.status, i.mediator_id,
           array_remove(array_agg(a.person_id) FILTER (WHERE a.status IN
               ('dispatched','accepted','on_site')), NULL) AS active
    FROM incident i LEFT JOIN dispatch_assignment a ON a.incident_id = i.id
    WHERE i.public_id = ANY(:ids) GROUP BY i.id"""


class Recorder:
    """Thread-safe tally of answers by path and status (with the problem code when not 200)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answers: Counter[str] = Counter()
        self.bad: list[str] = []  # answers that are neither 200 nor 409, with detail

    def call(self, label: str, fn: Callable[[], httpx.Response]) -> httpx.Response | None:
        try:
            r = fn()
        except httpx.HTTPError as exc:
            with self.lock:
                self.answers[f"{label} transport-error"] += 1
                self.bad.append(f"{label}: {type(exc).__name__}: {exc}")
            return None
        key = f"{label} {r.status_code}"
        if r.status_code >= 300:
            key += f" {problem_code(r)}"
        with self.lock:
            self.answers[key] += 1
            if r.status_code not in (200, 201, 409):
                req = r.request
                body = req.content.decode(errors="replace") if req.content else ""
                self.bad.append(f"{req.method} {req.url.path} {body} -> {r.status_code} {r.text}")
        return r


def pick_grid(engine: Engine, code: str | None, min_mediators: int) -> tuple[str, Any, int]:
    """The trial grid (given, or the one with the fewest available mediators within 5 km of
    its centre but at least ``min_mediators``), its geometry and that count."""
    where = "AND g.code = :code" if code else ""
    sql = f"""
        WITH g AS (SELECT code, geom, ST_PointOnSurface(geom) AS pt FROM grid g
                   WHERE valid_from IS NOT NULL AND valid_to IS NULL {where})
        SELECT code, ST_AsBinary(geom) AS wkb, (SELECT count(*) FROM person p
            WHERE p.roles LIKE '%mediator%' AND p.status = 'available'
              AND ST_DWithin(coalesce(p.position, p.home)::geography, g.pt::geography, 5000)) AS n
        FROM g ORDER BY n, code"""
    with engine.connect() as c:
        rows = c.execute(text(sql), {"code": code}).all()
    rows = rows if code else [r for r in rows if r.n >= min_mediators]
    if not rows:
        sys.exit(f"no published grid {code or f'with ≥ {min_mediators} mediators nearby'}")
    r = rows[0]
    return str(r.code), shapely.from_wkb(bytes(r.wkb)), int(r.n)


def check_db(engine: Engine, ids: list[str]) -> list[str]:
    """Violations of the assignment invariants (global, and for this trial's incidents)."""
    out: list[str] = []
    with engine.connect() as c:
        for name, sql in (
            ("mediator with two active assignments", SQL_PERSON_TWICE),
            ("incident with two active assignments", SQL_INCIDENT_TWICE),
            ("mediator over caseload cap", SQL_OVER_CAP),
        ):
            out += [f"{name}: {r[0]}" for r in c.execute(text(sql)).all()]
        for pid, status, mediator, active in c.execute(text(SQL_TRIAL_STATE), {"ids": ids}):
            active = list(active or [])
            if status in HOLD and (len(active) != 1 or active[0] != mediator):
                out.append(f"{pid} is {status} with mediator {mediator}, active {active}")
            if status not in HOLD and active:
                out.append(f"{pid} is {status} but has active assignments {active}")
    return out


def stale_mediator(engine: Engine, ids: list[str]) -> int:
    """Incidents waiting for dispatch that still name a mediator (not a safety violation)."""
    with engine.connect() as c:
        return int(
            c.execute(
                text(
                    "SELECT count(*) FROM incident WHERE public_id = ANY(:ids) "
                    "AND status = 'reported' AND mediator_id IS NOT NULL"
                ),
                {"ids": ids},
            ).scalar_one()
        )


def run_trial(
    k: int,
    client: httpx.Client,
    pool: ThreadPoolExecutor,
    rec: Recorder,
    points: np.ndarray,
    n_threads: int,
) -> list[str]:
    """One trial; returns the public ids of its incidents."""
    path = PATHS[k % len(PATHS)]

    def create(xy: np.ndarray) -> str | None:
        body = {"category": CATEGORY, "lon": float(xy[0]), "lat": float(xy[1])}
        r = rec.call("create", lambda: client.post("/api/v1/incidents", json=body))
        return r.json()["public_id"] if r is not None and r.status_code == 201 else None

    ids = [i for i in pool.map(create, points) if i]
    if not ids:
        return ids

    def dispatch(ref: str, label: str, reassign: bool = False) -> httpx.Response | None:
        body = {"json": {"reassign": True}} if reassign else {}
        return rec.call(label, lambda: client.post(f"/api/v1/incidents/{ref}/dispatch", **body))

    held: list[str] = []
    if path != "dispatch":  # a few dispatched beforehand, one at a time
        for ref in ids[:4]:
            r = dispatch(ref, f"{path}/pre-dispatch")
            if r is not None and r.status_code == 200:
                held.append(ref)
    rest = [i for i in ids if i not in held] or ids
    jobs: list[Callable[[], object]] = []
    for t in range(n_threads):
        if path == "reassign" and held and t < n_threads // 2:
            ref = held[t % len(held)]
            jobs.append(lambda ref=ref: dispatch(ref, "reassign", reassign=True))
        elif path == "cancel" and held and t < len(held):
            ref, decline = held[t], t % 2 == 1

            def again(ref: str = ref, decline: bool = decline) -> None:
                url = f"/api/v1/incidents/{ref}/transitions"
                if decline:
                    steps = [{"to": "reported", "decline": True}]
                else:
                    steps = [{"to": "cancelled"}, {"to": "reported"}]
                for step in steps:
                    label = "decline" if decline else f"to-{step['to']}"
                    r = rec.call(label, lambda s=step: client.post(url, json=s))
                    if r is None or r.status_code != 200:
                        return
                dispatch(ref, "re-dispatch")

            jobs.append(again)
        else:
            ref = rest[t % len(rest)]
            jobs.append(lambda ref=ref: dispatch(ref, "dispatch"))
    barrier = threading.Barrier(n_threads)

    def worker(job: Callable[[], object]) -> None:
        barrier.wait(timeout=60)
        job()

    threads = [threading.Thread(target=worker, args=(j,)) for j in jobs]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    if any(th.is_alive() for th in threads):
        rec.bad.append(f"trial {k}: a dispatcher thread did not finish within 120 s")
    return ids


def cancel_all(
    engine: Engine, client: httpx.Client, pool: ThreadPoolExecutor, rec: Recorder, ids: list[str]
) -> None:
    """Cancel every incident of the trial that is not cancelled yet (frees its mediator)."""
    with engine.connect() as c:
        todo = (
            c.execute(
                text(
                    "SELECT public_id FROM incident WHERE public_id = ANY(:ids) AND status <> ALL("
                    "ARRAY['cancelled','closed'])"
                ),
                {"ids": ids},
            )
            .scalars()
            .all()
        )
    body = {"to": "cancelled"}
    list(
        pool.map(
            lambda ref: rec.call(
                "cleanup-cancel",
                lambda: client.post(f"/api/v1/incidents/{ref}/transitions", json=body),
            ),
            todo,
        )
    )


def purge(engine: Engine, ids: list[str]) -> None:
    with engine.begin() as c:
        c.execute(text("DELETE FROM incident WHERE public_id = ANY(:ids)"), {"ids": ids})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--base-url", default="http://127.0.0.1:8000")
    ap.add_argument("--token", help="bearer token (default: `gridmap token USER`)")
    ap.add_argument("--user", default="bench", help="admin or dispatcher (default bench)")
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--incidents", type=int, default=32, help="K incidents per trial")
    ap.add_argument("--threads", type=int, default=32, help="dispatchers released together")
    ap.add_argument("--grid", help="grid code (default: few mediators nearby, see above)")
    ap.add_argument("--min-mediators", type=int, default=4)
    ap.add_argument("--time-budget", type=float, default=3600.0, help="seconds")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--keep-incidents", action="store_true")
    args = ap.parse_args()
    check_loopback(args.base_url)
    rng = np.random.default_rng(args.seed)
    engine = make_engine(database_url(get_settings()))
    headers = {"Authorization": f"Bearer {args.token or get_token(args.user)}"}
    code, geom, nearby = pick_grid(engine, args.grid, args.min_mediators)
    inner = shapely.buffer(geom, -3e-5)  # ≈ 3 m inside, so every point locates to this grid
    inner = inner if not inner.is_empty else geom
    print(
        f"grid {code}: {nearby} available mediators within 5 km; {args.trials} trials × "
        f"{args.incidents} incidents, {args.threads} threads released together; paths "
        f"{', '.join(PATHS)} in turn; budget {args.time_budget:g} s",
        flush=True,
    )
    rec = Recorder()
    violations: list[str] = []
    stale = wrong_grid = done = 0
    t0 = time.monotonic()
    limits = httpx.Limits(max_connections=args.threads + 16, max_keepalive_connections=64)
    with (
        httpx.Client(base_url=args.base_url, headers=headers, timeout=30.0, limits=limits) as cl,
        ThreadPoolExecutor(8) as pool,
    ):
        for k in range(args.trials):
            if time.monotonic() - t0 > args.time_budget:
                break
            ids = run_trial(k, cl, pool, rec, sample_in(inner, args.incidents, rng), args.threads)
            if not ids:
                violations.append(f"trial {k}: no incident could be created")
                break
            bad = check_db(engine, ids)
            stale += stale_mediator(engine, ids)
            with engine.connect() as c:
                wrong_grid += int(
                    c.execute(
                        text(
                            "SELECT count(*) FROM incident WHERE public_id = ANY(:ids) "
                            "AND grid_code <> :g"
                        ),
                        {"ids": ids, "g": code},
                    ).scalar_one()
                )
            cancel_all(engine, cl, pool, rec, ids)
            with engine.connect() as c:
                left = c.execute(
                    text(
                        "SELECT count(*) FROM dispatch_assignment a JOIN incident i ON "
                        "i.id = a.incident_id WHERE i.public_id = ANY(:ids) AND a.status = "
                        "ANY(ARRAY['dispatched','accepted','on_site'])"
                    ),
                    {"ids": ids},
                ).scalar_one()
            if left:
                bad.append(f"{left} assignments still active after cancelling the trial")
            violations += [f"trial {k} ({PATHS[k % 3]}): {v}" for v in bad]
            if not args.keep_incidents:
                purge(engine, ids)
            done += 1
            if done % 50 == 0 or bad:
                print(
                    f"  {done} trials, {time.monotonic() - t0:.0f} s, violations "
                    f"{len(violations)}, bad answers {len(rec.bad)}",
                    flush=True,
                )
            if len(violations) + len(rec.bad) > 200:
                print("  too many violations: stopping early", flush=True)
                break
    elapsed = time.monotonic() - t0
    print(
        f"\n{done} of {args.trials} trials in {elapsed:.0f} s"
        + ("" if done == args.trials else "  (INCOMPLETE: time budget or early stop)")
    )
    print("answers by path and status:")
    for key, n in sorted(rec.answers.items()):
        print(f"  {key:<60} {n:>8}")
    fivexx = sum(n for key, n in rec.answers.items() if key.split()[1].startswith("5"))
    print(
        f"5xx: {fivexx}; answers other than 200/201/409: {len(rec.bad)}; "
        f"invariant violations: {len(violations)}"
    )
    print(
        f"incidents located outside the trial grid: {wrong_grid}; reopened incidents still "
        f"naming their former mediator (seen after the race): {stale}"
    )
    for line in (rec.bad + violations)[:40]:
        print("  !", line[:400])
    return 1 if violations or rec.bad else 0


if __name__ == "__main__":
    sys.exit(main())
