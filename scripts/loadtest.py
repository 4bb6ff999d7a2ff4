"""Load test: 40 dispatchers and 10 leaders against the running service (locust, headless).

Dispatchers (``--dispatchers``, default 40) each loop: locate a point, take an incident in
(``POST /api/v1/incidents`` at a random point inside a random published grid), ask for the
recommendation, dispatch it to the best free mediator, cancel it (freeing the mediator again),
list incidents, fetch the dispatch map data. Leaders (``--leaders``, default 10) loop over the
dashboard, the coverage map, the incidents map and the shortage report. The first
``--warmup`` seconds (default 30) after every user has started are not measured. Think times are
``--dispatcher-wait`` and ``--leader-wait`` seconds (uniform between the two numbers).

Loopback only. Tokens come from ``gridmap token USER`` (same virtualenv; users ``dispatcher``
and ``leader`` as created by ``gridmap demo``). Prints p50/p95/p99/max per endpoint (locust's
histogram: exact below 100 ms, 2 significant digits above), the number of 5xx answers and the
error ratio (answers other than the expected ones: 2xx, and 409 for a dispatch when no mediator
is free). Incidents this run created are deleted at the end (``--keep-incidents`` keeps them).
Prints, never asserts; ``--json`` writes the figures.

    GRIDMAP_DATABASE_URL=… .venv/bin/gridmap serve --port 8765 &
    .venv/bin/python scripts/loadtest.py --base-url http://127.0.0.1:8765 [--duration 300]
        [--dispatchers 40] [--leaders 10] [--json benchmarks/loadtest.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import gevent  # locust's own event loop (imported with locust)
import httpx
import numpy as np
import shapely
from locust import HttpUser, between, events, task
from locust.env import Environment
from shapely.geometry import shape

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_api import CATEGORY, check_loopback, get_token, purge_incidents

STATE: dict[str, Any] = {"tokens": {}, "grids": [], "created": [], "rng": None}
CODES: defaultdict[str, Counter[int]] = defaultdict(Counter)


def _point(rng: np.random.Generator) -> tuple[float, float]:
    """A uniform point inside a random published grid (rejection sampling in its bbox)."""
    g = STATE["grids"][int(rng.integers(len(STATE["grids"])))]
    minx, miny, maxx, maxy = g.bounds
    while True:
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if shapely.contains_xy(g, x, y):
            return float(x), float(y)


def _check(resp: Any, name: str, ok: tuple[int, ...] = ()) -> None:
    """Record the status; anything but 2xx (or an expected ``ok`` status) is a failure."""
    CODES[name][resp.status_code] += 1
    if 200 <= resp.status_code < 300 or resp.status_code in ok:
        resp.success()
    else:  # status 0: no answer at all; the exception says why
        why = repr(resp.error) if resp.status_code == 0 else resp.text[:120]
        resp.failure(f"{resp.status_code}: {why}")


class Dispatcher(HttpUser):
    """Takes incidents in and dispatches them, as a 12345 hotline dispatcher does."""

    fixed_count = 40
    wait_time = between(1.0, 3.0)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {STATE['tokens']['dispatcher']}"
        self.rng = np.random.default_rng(int.from_bytes(os.urandom(4), "little"))

    @task
    def shift(self) -> None:
        lon, lat = _point(self.rng)
        name = "GET /api/v1/locate"
        with self.client.get(
            "/api/v1/locate", params={"lon": lon, "lat": lat}, name=name, catch_response=True
        ) as r:
            _check(r, name)
        name = "POST /api/v1/incidents"
        with self.client.post(
            "/api/v1/incidents",
            json={"category": CATEGORY, "lon": lon, "lat": lat},
            name=name,
            catch_response=True,
        ) as r:
            _check(r, name)
            ref = r.json().get("public_id") if r.status_code == 201 else None
        if ref:
            STATE["created"].append(ref)
            name = "GET /api/v1/incidents/{ref}/recommendation"
            with self.client.get(
                f"/api/v1/incidents/{ref}/recommendation", name=name, catch_response=True
            ) as r:
                _check(r, name)
            name = "POST /api/v1/incidents/{ref}/dispatch"
            with self.client.post(
                f"/api/v1/incidents/{ref}/dispatch", name=name, catch_response=True
            ) as r:
                _check(r, name, ok=(409,))
            name = "POST /api/v1/incidents/{ref}/transitions (cancel)"
            with self.client.post(
                f"/api/v1/incidents/{ref}/transitions",
                json={"to": "cancelled"},
                name=name,
                catch_response=True,
            ) as r:
                _check(r, name)
        for path in ("/api/v1/incidents?limit=50", "/maps/dispatch/data"):
            name = f"GET {path}"
            with self.client.get(path, name=name, catch_response=True) as r:
                _check(r, name)


class Leader(HttpUser):
    """Looks at the dashboard, the maps and the shortage report."""

    fixed_count = 10
    wait_time = between(3.0, 8.0)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {STATE['tokens']['leader']}"

    @task
    def review(self) -> None:
        for path in (
            "/dashboard",
            "/maps/coverage",
            "/maps/incidents",
            "/api/v1/reports/shortage",
        ):
            name = f"GET {path}"
            with self.client.get(path, name=name, catch_response=True) as r:
                _check(r, name)


def _summary(env: Environment, wall: float) -> dict[str, Any]:
    rows = {}
    for (name, _method), s in sorted(env.stats.entries.items()):
        rows[name] = {
            "n": s.num_requests,
            "failures": s.num_failures,
            "rps": round(s.num_requests / wall, 2),
            "p50_ms": s.get_response_time_percentile(0.50),
            "p95_ms": s.get_response_time_percentile(0.95),
            "p99_ms": s.get_response_time_percentile(0.99),
            "max_ms": round(s.max_response_time, 1),
            "status": dict(sorted(CODES[name].items())),
        }
    total = env.stats.total
    n5 = sum(c for codes in CODES.values() for st, c in codes.items() if st >= 500)
    return {
        "wall_s": round(wall, 1),
        "requests": total.num_requests,
        "failures": total.num_failures,
        "error_ratio": total.num_failures / total.num_requests if total.num_requests else 0.0,
        "http_5xx": n5,
        "endpoints": rows,
        "errors": {
            f"{e.method} {e.name}: {e.error}": e.occurrences for e in env.stats.errors.values()
        },
    }


def _print(summary: dict[str, Any]) -> None:
    print(
        f"{'endpoint':<52} {'n':>6} {'fail':>5} {'rps':>6} {'p50':>6} {'p95':>6} {'p99':>6} "
        f"{'max':>7}  status"
    )
    for name, r in summary["endpoints"].items():
        print(
            f"{name:<52} {r['n']:>6} {r['failures']:>5} {r['rps']:>6} {r['p50_ms']:>6.0f} "
            f"{r['p95_ms']:>6.0f} {r['p99_ms']:>6.0f} {r['max_ms']:>7.0f}  {r['status']}"
        )
    for what, n in summary["errors"].items():
        print(f"error ×{n}: {what[:300]}")
    print(
        f"total {summary['requests']} requests in {summary['wall_s']} s; 5xx: "
        f"{summary['http_5xx']}; error ratio {summary['error_ratio']:.4%} (target < 0.1%)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base-url", default="http://127.0.0.1:8000")
    ap.add_argument("--duration", type=float, default=300.0, help="seconds of full load")
    ap.add_argument("--dispatchers", type=int, default=40)
    ap.add_argument("--leaders", type=int, default=10)
    ap.add_argument("--dispatcher-wait", type=float, nargs=2, default=(1.0, 3.0))
    ap.add_argument("--leader-wait", type=float, nargs=2, default=(3.0, 8.0))
    ap.add_argument("--warmup", type=float, default=30.0, help="seconds of load not measured")
    ap.add_argument("--spawn-rate", type=float, default=10.0, help="users started per second")
    ap.add_argument("--dispatcher-user", default="dispatcher")
    ap.add_argument("--leader-user", default="leader")
    ap.add_argument("--keep-incidents", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    check_loopback(args.base_url)
    STATE["tokens"] = {
        "dispatcher": get_token(args.dispatcher_user),
        "leader": get_token(args.leader_user),
    }
    head = {"Authorization": f"Bearer {STATE['tokens']['dispatcher']}"}
    with httpx.Client(base_url=args.base_url, headers=head, timeout=60) as c:
        r = c.get("/api/v1/grids")
        r.raise_for_status()
        STATE["grids"] = [shape(f["geometry"]) for f in r.json()["features"]]
    for g in STATE["grids"]:
        shapely.prepare(g)
    Dispatcher.fixed_count, Leader.fixed_count = args.dispatchers, args.leaders
    Dispatcher.wait_time = between(*args.dispatcher_wait)
    Leader.wait_time = between(*args.leader_wait)
    users = args.dispatchers + args.leaders
    print(
        f"{args.base_url}: {len(STATE['grids'])} grids; {args.dispatchers} dispatchers + "
        f"{args.leaders} leaders for {args.duration:g} s after {args.warmup:g} s warm-up; "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    env = Environment(user_classes=[Dispatcher, Leader], host=args.base_url, events=events)
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=args.spawn_rate)
    ramp = users / args.spawn_rate
    gevent.sleep(ramp + args.warmup)  # measure full, warm load only: caches built, all running
    env.stats.reset_all()
    CODES.clear()
    t0 = time.perf_counter()
    gevent.sleep(args.duration)
    wall = time.perf_counter() - t0
    summary = _summary(env, wall)
    runner.quit()
    summary.update(
        dispatchers=args.dispatchers,
        leaders=args.leaders,
        load_after=round(os.getloadavg()[0], 2),
    )
    _print(summary)
    print(f"load average after: {summary['load_after']}")
    if not args.keep_incidents:
        gevent.sleep(1.0)
        print(f"deleted {purge_incidents(STATE['created'])} incidents this run created")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
