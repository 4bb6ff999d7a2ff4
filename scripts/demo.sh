#!/usr/bin/env bash
# The one demo command: install what is missing, start the private PostGIS, load the Yichang
# scenario, create demo users and serve on http://127.0.0.1:8000 in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/gridmap demo "$@"
