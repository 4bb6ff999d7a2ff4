"""A short schemathesis run over the live API (``scripts/fuzz_api.py``): no server errors.

The full run (``--minutes 10``) is done by hand and recorded in docs/privacy.md; this one
keeps the seeded scenario, the server and both schemathesis parts working in CI.
"""

from __future__ import annotations

import re
import subprocess
import sys

from sqlalchemy import Engine

from gridmap.settings import PROJECT_ROOT


def test_short_fuzz_run_gives_no_server_errors(db: Engine, test_database_url: str) -> None:
    script = [sys.executable, "scripts/fuzz_api.py", "--seconds", "40"]
    res = subprocess.run(
        [*script, "--database-url", test_database_url],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    out = res.stdout + res.stderr
    assert re.search(r"schemathesis \(admin, \d+ s\): =+ .+ in [\d.]+s =+", out), out[-3000:]
    assert re.search(r"schemathesis \(scoped peers, \d+ s\): =+ .+ in [\d.]+s =+", out), out[-3000:]
    assert "server errors (5xx): 0" in out, out[-3000:]
