#!/usr/bin/env bash
# The one test command (README, CI): install what is missing, lint, type-check, run every test
# against a real PostGIS (the private cluster, or GRIDMAP_DATABASE_URL / DATABASE_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check gridmap api tests scripts
.venv/bin/ruff format --check gridmap api tests scripts >/dev/null || {
  echo "ruff format: files need formatting (run .venv/bin/ruff format)"; exit 1; }
echo "== mypy"
.venv/bin/mypy gridmap api
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
