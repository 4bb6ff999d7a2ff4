"""Run the whole benchmark suite in one go: figures to ``benchmarks/results.json`` and
``docs/performance.md``.

Each benchmark runs as its own process (``scripts/bench_*.py``, ``scripts/loadtest.py``), so one
failure does not stop the others; its full output goes to ``benchmarks/logs/NAME.txt`` and its
lines that compare us with the peer (ratios, speed-ups, targets) into the results. Scripts that
write JSON (``--json``) have their figures included as they are. The ones that need the running
service get one: this script starts ``gridmap serve`` on a free loopback port against the
configured database (``GRIDMAP_DATABASE_URL``; fill it once with ``gridmap demo --no-serve``)
and stops it at the end.

``--quick`` uses each script's smallest settings (a smoke run of the suite, minutes); the
default settings are the ones reported in docs/performance.md. ``--only a,b`` / ``--skip a,b``
choose benchmarks by name; ``province_db`` (the whole province in PostGIS, ≈ 30 min, its own
database) runs only when named in ``--only``. Prints, never asserts, timings.

    GRIDMAP_DATABASE_URL=… .venv/bin/python scripts/bench_all.py [--quick] [--only locate,batch]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
OUT = ROOT / "benchmarks"
SERVICE = "{service}"  # replaced by the base URL of the service this script starts

# name: (what it compares, needs the service, full args, quick args)
SUITE: dict[str, tuple[str, bool, list[str], list[str]]] = {
    "locate": (
        "bulk locate: GridIndex vs geopandas.sjoin (same rule, same points)",
        False,
        ["scripts/bench_locate.py"],
        ["scripts/bench_locate.py", "--points", "200000", "--repeat", "1"],
    ),
    "peers_db": (
        "locate vs a PostGIS set join; road cost vs naive pgRouting (whole-graph pgr_dijkstra)",
        False,
        ["scripts/bench_peers_db.py", "--json", "{json}"],
        ["scripts/bench_peers_db.py", "--points", "20000", "--queries", "20", "--json", "{json}"],
    ),
    "gridding": (
        "gridding the city vs PySAL spopt (regionalisation) on a few communities",
        False,
        ["scripts/bench_gridding.py"],
        ["scripts/bench_gridding.py", "--synthetic", "--spopt", "1"],
    ),
    "dispatch": (
        "road cost: early-stopping search vs full Dijkstra; recommend() line vs road",
        False,
        ["scripts/bench_dispatch.py"],
        ["scripts/bench_dispatch.py", "--queries", "20"],
    ),
    "staffing": (
        "staff assignment: exact min-cost flow vs greedy nearest-first",
        False,
        ["scripts/bench_staffing.py"],
        ["scripts/bench_staffing.py"],
    ),
    "batch": (
        "Dask distributed batch: 1 vs 2 worker processes, identical results",
        False,
        ["scripts/bench_batch.py", "--json", "{json}"],
        [
            "scripts/bench_batch.py",
            "--communities",
            "6",
            "--points",
            "200000",
            "--repeat",
            "1",
            "--skip-serial",
            "--json",
            "{json}",
        ],
    ),
    "province": (
        "province scale: one city gridded at 100 households/grid on Dask (province time "
        "extrapolated), a province-sized index, a year of incidents located, peak memory",
        False,
        ["scripts/bench_province.py", "--json", "{json}"],
        [
            "scripts/bench_province.py",
            "--cities",
            "4",
            "--communities",
            "5",
            "--incidents",
            "100000",
            "--json",
            "{json}",
        ],
    ),
    "province_db": (
        "the whole province in PostGIS: load, grid on Dask and publish, incidents, tile "
        "serving, locate and pages (long; opt-in: --only province_db)",
        False,
        ["scripts/bench_province_db.py", "--json", "{json}"],
        ["scripts/bench_province_db.py", "--tiles", "20", "--json", "{json}"],
    ),
    "maps": (
        "map payload and render: ours vs stock Folium GeoJSON (headless Chromium)",
        False,
        ["scripts/bench_maps.py"],
        ["scripts/bench_maps.py", "--runs", "1"],
    ),
    "api": (
        "HTTP latency: locate open loop, recommend + dispatch; SQL locate for context",
        True,
        ["scripts/bench_api.py", "--base-url", SERVICE, "--user", "dispatcher"],
        [
            "scripts/bench_api.py",
            "--base-url",
            SERVICE,
            "--user",
            "dispatcher",
            "--rate",
            "50",
            "--seconds",
            "5",
            "--sequential",
            "50",
            "--claims",
            "20",
            "--db-lookups",
            "200",
        ],
    ),
    "loadtest": (
        "load test: 40 dispatchers + 10 leaders, 5 minutes (locust)",
        True,
        ["scripts/loadtest.py", "--base-url", SERVICE, "--json", "{json}"],
        [
            "scripts/loadtest.py",
            "--base-url",
            SERVICE,
            "--duration",
            "20",
            "--warmup",
            "10",
            "--json",
            "{json}",
        ],
    ),
}

# run only when named in --only: the whole province takes ≈ 30 min and needs its own database
# (scripts/make_scenario.py --province 36 first; the script drops and recreates it)
OPT_IN = {"province_db"}

HIGHLIGHT = re.compile(r"×|ratio|speed-up|target|identical|error ratio|5xx|p50|M points/s", re.I)


def machine() -> dict[str, Any]:
    """What the figures were measured on (this box is shared: say so with the load)."""
    cpu = ""
    try:
        cpu = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
    except (OSError, StopIteration):
        cpu = platform.processor()
    mem_gb = 0.0
    try:
        kb = next(
            int(ln.split()[1])
            for ln in Path("/proc/meminfo").read_text().splitlines()
            if ln.startswith("MemTotal")
        )
        mem_gb = round(kb / 1024**2, 1)
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "python": platform.python_version(),
        "os": platform.platform(),
        "shared": "2 cores shared with other workloads; load averages recorded per benchmark",
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def service(log: Path) -> Any:
    """``gridmap serve`` on a free loopback port for the benchmarks that need it."""
    port = _free_port()
    exe = Path(PY).with_name("gridmap")
    with log.open("w") as fh:
        proc = subprocess.Popen(
            # as a busy desk would run it: one worker per core, no per-request access log
            # (≈ 0.5 ms of CPU each; the audit trail is kept either way)
            [str(exe), "serve", "--port", str(port), "--workers", "2", "--no-access-log"],
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            from bench_api import wait_until_serving  # scripts/ is on the path (see __main__)

            wait_until_serving(proc, base, log)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def run_one(name: str, argv: list[str], base: str | None, timeout: float) -> dict[str, Any]:
    json_path = OUT / f"{name}.json"
    json_path.unlink(missing_ok=True)
    cmd = [PY] + [
        a.replace("{json}", str(json_path.relative_to(ROOT))).replace(SERVICE, base or SERVICE)
        for a in argv
    ]
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
        code, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        code, out, err = -9, str(exc.stdout or ""), f"timed out after {timeout:g} s"
    wall = time.perf_counter() - t
    here = str(ROOT) + "/"  # logs and figures name files relative to the repository
    out, err = out.replace(here, ""), err.replace(here, "")
    (OUT / "logs").mkdir(parents=True, exist_ok=True)
    log = f"$ {' '.join(cmd).replace(here, '')}\n{out}\n--- stderr\n{err}"
    (OUT / "logs" / f"{name}.txt").write_text(log)
    lines = [ln.rstrip() for ln in out.splitlines() if ln.strip()]
    res: dict[str, Any] = {
        "command": " ".join(cmd[1:]),
        "exit_code": code,
        "wall_s": round(wall, 1),
        "load_before": round(load0, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "highlights": [ln for ln in lines if HIGHLIGHT.search(ln)][:40],
        "tail": lines[-25:],
    }
    if code != 0:
        res["error_tail"] = (err or out).strip().splitlines()[-5:]
    if json_path.exists():
        res["figures"] = json.loads(json_path.read_text())
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smallest settings: a smoke run")
    ap.add_argument("--only", default="", help="comma-separated names: " + ",".join(SUITE))
    ap.add_argument("--skip", default="")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per benchmark")
    ap.add_argument("--results", type=Path, default=OUT / "results.json")
    ap.add_argument(
        "--merge", action="store_true", help="keep the other benchmarks' figures in --results"
    )
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "performance.md")
    args = ap.parse_args(argv)
    only = [n for n in args.only.split(",") if n]
    skip = set(args.skip.split(","))
    names = [n for n in SUITE if (n in only if only else n not in OPT_IN) and n not in skip]
    unknown = set(only) - set(SUITE)
    if unknown:
        sys.exit(f"unknown benchmarks: {sorted(unknown)}; known: {list(SUITE)}")
    OUT.mkdir(exist_ok=True)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "profile": "quick" if args.quick else "full",
        "machine": machine(),
        "benchmarks": {},
    }
    if args.merge and args.results.exists():
        old = json.loads(args.results.read_text())
        results["benchmarks"] = old.get("benchmarks", {})
        results["started"] = old.get("started", results["started"])
    local = [n for n in names if not SUITE[n][1]]
    served = [n for n in names if SUITE[n][1]]
    for name in local:
        results["benchmarks"][name] = _run(name, None, args)
    if served:
        with service(OUT / "logs" / "serve.txt") as base:
            for name in served:
                results["benchmarks"][name] = _run(name, base, args)
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    from bench_report import write_report

    write_report(results, SUITE, args.doc)
    print(f"wrote {args.results} and {args.doc}")
    return 0


def _run(name: str, base: str | None, args: argparse.Namespace) -> dict[str, Any]:
    what, _, full, quick = SUITE[name]
    print(f"== {name}: {what}", flush=True)
    res = _with_what(run_one(name, quick if args.quick else full, base, args.timeout), what)
    res["profile"] = "quick" if args.quick else "full"
    res["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(
        f"   exit {res['exit_code']} in {res['wall_s']} s (load {res['load_before']} → "
        f"{res['load_after']})",
        flush=True,
    )
    for ln in res["highlights"][:12]:
        print(f"   {ln}", flush=True)
    return res


def _with_what(res: dict[str, Any], what: str) -> dict[str, Any]:
    return {"compares": what, **res}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
