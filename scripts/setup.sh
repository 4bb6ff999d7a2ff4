#!/usr/bin/env bash
# Install what gridmap needs on a fresh Debian 12 machine, then nothing on later runs.
#  - Debian packages: PostgreSQL 15 with PostGIS 3 and pgRouting (the private cluster), GDAL tools,
#    Chromium (browser tests of the maps)
#  - a virtual environment in .venv with gridmap and its dev tools (reinstalled when
#    pyproject.toml changes)
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(postgresql-15 postgresql-15-postgis-3 postgresql-15-pgrouting gdal-bin chromium chromium-driver fonts-noto-cjk)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian package starts a system cluster on 5432; gridmap does not use it.

PY=${PYTHON:-python3}
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ needed"'
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.gridmap-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing gridmap and dev tools into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import gridmap, api, shapely, geoalchemy2, fastapi" 
  echo "$want" > "$stamp"
fi
