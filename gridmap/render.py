"""Headless Chromium as a print engine: a page of this service to A4-landscape PDF or PNG.

Runs the Debian ``chromium`` binary once per document with a throw-away profile, no background
networking and every host name except the loopback address unresolvable, so a printed page can
reach nothing but the service that asked for it. At most ``MAX_CONCURRENT`` renders run at once;
a further one fails fast with :class:`~gridmap.errors.ServiceUnavailable`.

Examples
--------
>>> chromium_args("http://127.0.0.1:8000/maps/coverage", "/tmp/x.pdf", "pdf", "/tmp/p")[:3]
['--headless', '--no-sandbox', '--disable-gpu']
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Literal

from gridmap.errors import ServiceUnavailable

__all__ = ["A4_LANDSCAPE_PX", "MAX_CONCURRENT", "chromium_args", "render_url"]

A4_LANDSCAPE_PX = (1123, 794)  # 297 × 210 mm at 96 dpi
MAX_CONCURRENT = 2
_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT)
MAGIC = {"pdf": b"%PDF-", "png": b"\x89PNG\r\n\x1a\n"}


def chromium_args(
    url: str,
    out: str,
    kind: Literal["pdf", "png"],
    profile: str,
    *,
    scale: float = 2.0,
    budget_ms: int = 8000,
) -> list[str]:
    """Command-line flags (after the binary) rendering ``url`` into ``out``."""
    width, height = A4_LANDSCAPE_PX
    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-sync",
        "--hide-scrollbars",
        "--mute-audio",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--proxy-server=direct://",
        f"--window-size={width},{height}",
        f"--virtual-time-budget={budget_ms}",
        "--run-all-compositor-stages-before-draw",
    ]
    if kind == "pdf":
        args += ["--no-pdf-header-footer", f"--print-to-pdf={out}"]
    else:
        args += [f"--force-device-scale-factor={scale}", f"--screenshot={out}"]
    return [*args, url]


def render_url(
    url: str,
    kind: Literal["pdf", "png"],
    *,
    chromium: str | Path = "/usr/bin/chromium",
    timeout_s: float = 60.0,
) -> bytes:
    """The PDF or PNG bytes of ``url`` (a loopback address of this service)."""
    if kind not in MAGIC:
        raise ValueError(f"kind must be pdf or png, not {kind!r}")
    if not Path(chromium).exists():
        raise ServiceUnavailable(
            f"{chromium} is missing: install the Debian package chromium", code="no-chromium"
        )
    if not _SLOTS.acquire(blocking=False):
        raise ServiceUnavailable("the print engine is busy; retry shortly", code="print-busy")
    try:
        with tempfile.TemporaryDirectory(prefix="gridmap-print-") as tmp:
            out = Path(tmp) / f"page.{kind}"
            profile = Path(tmp) / "profile"
            cmd = [str(chromium), *chromium_args(url, str(out), kind, str(profile))]
            try:
                proc = subprocess.run(
                    cmd, capture_output=True, timeout=timeout_s, check=False, cwd=tmp
                )
            except subprocess.TimeoutExpired as exc:
                raise ServiceUnavailable(
                    "the page took too long to print", code="print-timeout"
                ) from exc
            data = out.read_bytes() if out.exists() else b""
            if not data.startswith(MAGIC[kind]):
                tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
                raise ServiceUnavailable(
                    f"chromium produced no {kind} (exit {proc.returncode}): {' | '.join(tail)}",
                    code="print-failed",
                )
            return data
    finally:
        _SLOTS.release()
