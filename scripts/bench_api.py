"""HTTP latency of the running service: locate at a fixed request rate, recommend + dispatch,
and the same locate straight through SQLAlchemy in this process for ratio context.

(a) ``GET /api/v1/locate`` open loop: requests are *scheduled* at ``--rate`` per second for
``--seconds`` (asyncio + httpx, loopback only) whether or not earlier ones have answered, so a
slow server shows up as latency instead of a lower rate; latency is reported from the actual
send and from the scheduled time (the difference is client-side queueing). Points are uniform
inside the districts (``GET /api/v1/areas?level=district``); points in a district but outside
every published grid answer 422 ``outside-service-area`` and are counted apart from errors.
(b) One dispatcher at a time: ``POST /api/v1/incidents`` (邻里纠纷 at a random point in a random
published grid), ``GET …/recommendation``, ``POST …/dispatch`` — alternately naming the top
candidate just shown (``{"person_id": …}``: the dispatcher confirms the proposal) and with no
body (the server ranks again inside the claim and sends the best free mediator) —, then
``POST …/transitions {"to": "cancelled"}`` to free the mediator again.
(c) ``gridmap.store.incidents.locate`` on one SQLAlchemy session, same points as (a).

The incidents created in (b) are deleted at the end (with their events and assignments; the
append-only audit log keeps its rows) unless ``--keep-incidents``. Prints, never asserts.

    .venv/bin/gridmap user add bench --role dispatcher --password benchbench1   # once
    .venv/bin/python scripts/bench_api.py [--base-url http://127.0.0.1:8000] [--user bench |
        --token T] [--rate 200] [--seconds 20] [--claims 300] [--db-lookups 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import shapely
from shapely.geometry import shape

CATEGORY = "邻里纠纷"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


# -- helpers shared with scripts/stress_dispatch.py ------------------------------------------
def check_loopback(base_url: str) -> None:
    """Load generators here only ever talk to this machine."""
    host = urlsplit(base_url).hostname or ""
    if host not in LOOPBACK:
        sys.exit(f"refusing to load {base_url}: loopback addresses only (127.0.0.1, ::1)")


def get_token(user: str) -> str:
    """A bearer token for ``user`` from ``gridmap token`` (same virtualenv as this Python)."""
    exe = Path(sys.executable).with_name("gridmap")
    cmd = [str(exe) if exe.exists() else (shutil.which("gridmap") or "gridmap"), "token", user]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    token = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode or not token:
        sys.exit(
            f"`gridmap token {user}` failed: {done.stderr.strip() or done.stdout.strip()}\n"
            f"create the user first: gridmap user add {user} --role dispatcher --password …"
        )
    return token


def wait_until_serving(
    proc: subprocess.Popen[Any], base: str, log: Path, attempts: int = 120
) -> None:
    """Poll ``/health`` every 0.5 s until the server answers 200 (at most ``attempts``
    times); ``RuntimeError`` when the server process exits first."""
    for _ in range(attempts):
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"gridmap serve exited: see {log}")
        time.sleep(0.5)


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def sample_in(area: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform points (lon, lat) inside ``area`` (rejection sampling)."""
    minx, miny, maxx, maxy = area.bounds
    shapely.prepare(area)
    out, got = [], 0
    while got < n:
        x, y = rng.uniform(minx, maxx, 2 * n + 16), rng.uniform(miny, maxy, 2 * n + 16)
        keep = shapely.contains_xy(area, x, y)
        out.append(np.column_stack([x[keep], y[keep]]))
        got += int(keep.sum())
    return np.concatenate(out)[:n]


def published_grids(client: httpx.Client) -> tuple[list[str], list[Any]]:
    """Codes and shapely geometries of the current grids."""
    r = client.get("/api/v1/grids")
    r.raise_for_status()
    feats = r.json()["features"]
    return [f["properties"]["code"] for f in feats], [shape(f["geometry"]) for f in feats]


def problem_code(r: httpx.Response) -> str:
    """The problem+json ``type`` suffix of an error answer (or the status as text)."""
    try:
        return str(r.json().get("type", "")).rsplit("/", 1)[-1] or str(r.status_code)
    except ValueError:
        return str(r.status_code)


def purge_incidents(public_ids: Sequence[str]) -> int:
    """Delete incidents this run created (events and assignments go with them)."""
    if not public_ids:
        return 0
    from sqlalchemy import text

    from gridmap.settings import get_settings
    from gridmap.store.db import database_url, make_engine, session_scope

    with session_scope(make_engine(database_url(get_settings()))) as s:
        n = s.execute(
            text("DELETE FROM incident WHERE public_id = ANY(:ids)"), {"ids": list(public_ids)}
        ).rowcount
    return int(n or 0)


def row(name: str, ms: Sequence[float], ok: int | str = "", err: int | str = "") -> str:
    if not len(ms):
        return f"{name:<34} {0:>6} {ok!s:>6} {err!s:>5}   (no samples)"
    return (
        f"{name:<34} {len(ms):>6} {ok!s:>6} {err!s:>5} {pct(ms, 50):>8.2f} {pct(ms, 95):>8.2f} "
        f"{pct(ms, 99):>8.2f} {max(ms):>8.2f}"
    )


HEADER = f"{'measure':<34} {'n':>6} {'ok':>6} {'err':>5} {'p50 ms':>8} {'p95 ms':>8} " + (
    f"{'p99 ms':>8} {'max ms':>8}"
)


# -- (a) locate at a fixed rate ----------------------------------------------------------------
async def _open_loop(
    base: str, headers: dict[str, str], points: np.ndarray, rate: float, seconds: float
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
    timeout = httpx.Timeout(10.0)
    loop = asyncio.get_running_loop()
    n = int(rate * seconds)
    sent_ms: list[float] = []
    sched_ms: list[float] = []
    status: Counter[str] = Counter()
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=timeout
    ) as client:

        async def one(i: int, due: float) -> None:
            await asyncio.sleep(max(0.0, due - loop.time()))
            lon, lat = points[i % len(points)]
            t0 = loop.time()
            try:
                r = await client.get("/api/v1/locate", params={"lon": lon, "lat": lat})
                key = "200" if r.status_code == 200 else f"{r.status_code} {problem_code(r)}"
            except httpx.HTTPError as exc:
                key = f"transport {type(exc).__name__}"
            t1 = loop.time()
            status[key] += 1
            if key == "200" or key.startswith("422 outside"):
                sent_ms.append((t1 - t0) * 1e3)
                sched_ms.append((t1 - due) * 1e3)

        warm = [one(i, loop.time() + i / 50) for i in range(50)]  # pools, plans, caches
        await asyncio.gather(*warm)
        status.clear()
        sent_ms.clear()
        sched_ms.clear()
        start = loop.time() + 0.1
        tasks = [asyncio.create_task(one(i, start + i / rate)) for i in range(n)]
        _, pending = await asyncio.wait(tasks, timeout=seconds + 15.0)  # self-stopping
        for t in pending:
            t.cancel()
        wall = loop.time() - start
    status["unfinished"] += len(pending)
    if not status["unfinished"]:
        del status["unfinished"]
    return {"sent": sent_ms, "sched": sched_ms, "status": status, "n": n, "wall": wall}


def drain(client: httpx.Client, limit_s: float = 120.0) -> float:
    """Wait until the server answers ``/health`` promptly again (work queued by an overloaded
    run keeps it busy after the client gave up); returns the seconds waited."""
    t0 = time.perf_counter()
    fast = 0
    while fast < 3 and time.perf_counter() - t0 < limit_s:
        t = time.perf_counter()
        try:
            client.get("/health", timeout=30.0)
            fast = fast + 1 if time.perf_counter() - t < 0.05 else 0
        except httpx.HTTPError:
            fast = 0
        time.sleep(0.2)
    return time.perf_counter() - t0


def sequential_locate(client: httpx.Client, points: np.ndarray) -> tuple[list[float], Counter[str]]:
    """One request at a time (no queueing): the HTTP cost of a single lookup."""
    ms: list[float] = []
    status: Counter[str] = Counter()
    for i, (lon, lat) in enumerate(points):
        t0 = time.perf_counter()
        r = client.get("/api/v1/locate", params={"lon": lon, "lat": lat})
        if i >= 20:  # warm-up
            ms.append((time.perf_counter() - t0) * 1e3)
            status["200" if r.status_code == 200 else f"{r.status_code} {problem_code(r)}"] += 1
    return ms, status


# -- (b) recommend + dispatch ------------------------------------------------------------------
def claims(
    client: httpx.Client, grids: list[Any], n: int, rng: np.random.Generator
) -> dict[str, Any]:
    t: dict[str, list[float]] = {
        k: [] for k in ("intake", "rec", "disp", "both", "named", "both_named", "cancel")
    }
    status: Counter[str] = Counter()
    created: list[str] = []
    warmup = 5
    for i in range(n + warmup):
        g = grids[int(rng.integers(len(grids)))]
        lon, lat = sample_in(g, 1, rng)[0]
        t0 = time.perf_counter()
        r = client.post(
            "/api/v1/incidents", json={"category": CATEGORY, "lon": float(lon), "lat": float(lat)}
        )
        t1 = time.perf_counter()
        if r.status_code != 201:
            status[f"intake {r.status_code} {problem_code(r)}"] += 1
            continue
        ref = r.json()["public_id"]
        created.append(ref)
        r_rec = client.get(f"/api/v1/incidents/{ref}/recommendation")
        t2 = time.perf_counter()
        # even rounds: the dispatcher confirms the top candidate shown (a claim of that
        # person); odd rounds: "send the best free one" (the server ranks again in the claim)
        top = (r_rec.json().get("candidates") or [{}])[0] if r_rec.status_code == 200 else {}
        named = i % 2 == 0 and "person_id" in top
        body = {"person_id": top["person_id"]} if named else None
        r_disp = client.post(f"/api/v1/incidents/{ref}/dispatch", json=body)
        t3 = time.perf_counter()
        r_can = client.post(f"/api/v1/incidents/{ref}/transitions", json={"to": "cancelled"})
        t4 = time.perf_counter()
        if i < warmup:
            continue
        for name, resp in (("recommendation", r_rec), ("dispatch", r_disp), ("cancel", r_can)):
            key = str(resp.status_code)
            if resp.status_code != 200:
                key += f" {problem_code(resp)}"
            status[f"{name} {key}"] += 1
        status["intake 201"] += 1
        t["intake"].append((t1 - t0) * 1e3)
        t["rec"].append((t2 - t1) * 1e3)
        t["named" if named else "disp"].append((t3 - t2) * 1e3)
        t["both_named" if named else "both"].append((t3 - t1) * 1e3)
        t["cancel"].append((t4 - t3) * 1e3)
    return {"t": t, "status": status, "created": created}


# -- (c) the same lookup without HTTP ----------------------------------------------------------
def db_locate(points: np.ndarray) -> tuple[list[float], Counter[str], int]:
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from gridmap.errors import InvalidInput
    from gridmap.settings import get_settings
    from gridmap.store.db import database_url, make_engine
    from gridmap.store.incidents import locate

    engine = make_engine(database_url(get_settings()))
    ms: list[float] = []
    status: Counter[str] = Counter()
    with Session(engine) as s:
        edges = int(s.execute(text("SELECT count(*) FROM road_edge")).scalar_one())
        for lon, lat in points[:50]:  # warm the connection and plans
            with contextlib.suppress(InvalidInput):
                locate(s, float(lon), float(lat))
        for lon, lat in points:
            t0 = time.perf_counter()
            try:
                locate(s, float(lon), float(lat))
                key = "ok"
            except InvalidInput as exc:
                key = exc.code
            ms.append((time.perf_counter() - t0) * 1e3)
            status[key] += 1
        s.rollback()
    return ms, status, edges


def wrk_locate(base: str, token: str, rate: float, seconds: float) -> dict[str, Any] | None:
    """``GET /api/v1/locate`` at ``rate`` req/s from 10 connections with wrk (a C client: the
    Python client above takes a share of the same two cores), ``None`` when wrk is missing.
    Latency is wrk's, per request from send (``benchmarks/locate_200rps.lua``)."""
    exe = shutil.which("wrk")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "locate_200rps.lua"
    if exe is None or not script.exists():
        return None
    env = {"GRIDMAP_TOKEN": token, "RATE": f"{rate:g}", "CONNS": "10", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [exe, "-t1", "-c10", f"-d{seconds:g}s", "--latency", "-s", str(script), base],
        capture_output=True,
        text=True,
        env=env,
        timeout=seconds + 60,
        check=False,
    )
    out: dict[str, Any] = {"raw": done.stdout[-2000:]}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in ("p50", "p90", "p95", "p99", "p99.9", "max"):
            out[parts[0]] = float(parts[1])
        elif line.startswith("requests "):
            out["requests"] = int(parts[1])
            out["rate"] = float(parts[6])
            out["non_2xx"] = int(line.rsplit("status ", 1)[1].split(",")[0])
    return out if "p99" in out else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--base-url", default="http://127.0.0.1:8000")
    ap.add_argument("--token", help="bearer token (default: `gridmap token USER`)")
    ap.add_argument("--user", default="bench", help="admin or dispatcher (default bench)")
    ap.add_argument("--rate", type=float, default=200.0, help="locate requests per second")
    ap.add_argument("--seconds", type=float, default=20.0, help="locate run length")
    ap.add_argument("--sequential", type=int, default=500, help="locate one at a time")
    ap.add_argument("--claims", type=int, default=300, help="recommend + dispatch rounds")
    ap.add_argument("--db-lookups", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep-incidents", action="store_true", help="do not delete them after")
    args = ap.parse_args()
    check_loopback(args.base_url)
    rng = np.random.default_rng(args.seed)
    headers = {"Authorization": f"Bearer {args.token or get_token(args.user)}"}

    with httpx.Client(base_url=args.base_url, headers=headers, timeout=30.0) as client:
        r = client.get("/api/v1/areas", params={"level": "district"})
        r.raise_for_status()
        districts = [shape(f["geometry"]) for f in r.json()["features"]]
        area = shapely.union_all(districts)
        codes, grids = published_grids(client)
    points = sample_in(area, 20_000, rng)
    print(
        f"service: {args.base_url}; {len(districts)} districts, bbox "
        f"{tuple(round(v, 4) for v in area.bounds)}; {len(codes)} published grids"
    )

    print(f"(a0) locate one request at a time: {args.sequential} requests …", flush=True)
    with httpx.Client(base_url=args.base_url, headers=headers, timeout=30.0) as client:
        seq_ms, seq_status = sequential_locate(client, points[-args.sequential - 20 :])
    print(f"    answers {dict(seq_status)}; {1e3 / pct(seq_ms, 50):.0f} req/s at p50", flush=True)

    print(f"(a) locate: {args.rate:g} req/s for {args.seconds:g} s (open loop) …", flush=True)
    a = asyncio.run(_open_loop(args.base_url, headers, points, args.rate, args.seconds))
    done = sum(a["status"].values())
    print(f"    answers {dict(a['status'])}; achieved {done / a['wall']:.1f} req/s", flush=True)

    wrk = wrk_locate(args.base_url, headers["Authorization"][7:], args.rate, args.seconds)
    if wrk is not None:
        print(
            f"(a2) locate with wrk: {wrk['requests']} requests at {wrk['rate']:.1f} req/s, "
            f"{wrk['non_2xx']} answers not 200 (points outside every grid: 422)",
            flush=True,
        )

    print(
        f"(b) recommend + dispatch + cancel: {args.claims} incidents, one at a time …", flush=True
    )
    created: list[str] = []
    try:
        with httpx.Client(base_url=args.base_url, headers=headers, timeout=30.0) as client:
            print(f"    (waited {drain(client):.1f} s for the server to drain (a))", flush=True)
            b = claims(client, grids, args.claims, rng)
        created = b["created"]
        print(f"    answers {dict(sorted(b['status'].items()))}", flush=True)

        print(f"(c) locate through SQLAlchemy, {args.db_lookups} points …", flush=True)
        db_ms, db_status, edges = db_locate(points[: args.db_lookups])
        print(f"    answers {dict(db_status)}; road edges loaded: {edges}")
    finally:
        if created and not args.keep_incidents:
            print(f"deleted {purge_incidents(created)} incidents created by this run")

    ok_a = a["status"].get("200", 0)
    outside = sum(v for k, v in a["status"].items() if k.startswith("422 outside"))
    err_a = done - ok_a - outside
    t = b["t"]
    print()
    print(HEADER)
    print(row("locate HTTP, one at a time", seq_ms, seq_status.get("200", 0)))
    print(row(f"locate HTTP {args.rate:g}/s, from send", a["sent"], ok_a, err_a))
    print(row(f"locate HTTP {args.rate:g}/s, from schedule", a["sched"], ok_a, err_a))
    if wrk is not None:
        print(
            f"{f'locate HTTP {args.rate:g}/s, wrk':<34} {wrk['requests']:>6} {'':>6} {'':>5} "
            f"{wrk['p50']:>8.2f} {wrk['p95']:>8.2f} {wrk['p99']:>8.2f} {wrk['max']:>8.2f}"
        )
    print(row("recommendation HTTP", t["rec"]))
    print(row("dispatch HTTP (claim best free)", t["disp"]))
    print(row("recommendation + dispatch best", t["both"]))
    print(row("dispatch HTTP (claim top shown)", t["named"]))
    print(row("recommendation + claim top shown", t["both_named"]))
    print(row("cancel HTTP (frees mediator)", t["cancel"]))
    print(row("intake HTTP (POST incident)", t["intake"]))
    print(row("locate DB (SQLAlchemy session)", db_ms, db_status.get("ok", 0)))
    print(
        "\nHTTP/DB locate ratio: one at a time p50 "
        f"{pct(seq_ms, 50) / pct(db_ms, 50):.1f}×, p99 {pct(seq_ms, 99) / pct(db_ms, 99):.1f}×; "
        f"at {args.rate:g} req/s p50 {pct(a['sent'], 50) / pct(db_ms, 50):.1f}×, p99 "
        f"{pct(a['sent'], 99) / pct(db_ms, 99):.1f}×"
    )
    print(
        "issue 5 targets (HTTP): locate p99 ≤ 10 ms at 200 req/s; recommend + claim p99 ≤ 25 ms. "
        "err = answers other than 200 (and 422 outside-service-area), including requests still "
        "unanswered when the run stopped waiting."
    )
    print(
        f"({outside} locate points fell in a district but outside every grid: 422, not errors. "
        "Loopback on a shared machine: client, server and PostgreSQL share the CPUs; "
        "expect run-to-run noise of tens of per cent in the tails.)"
    )


if __name__ == "__main__":
    main()
