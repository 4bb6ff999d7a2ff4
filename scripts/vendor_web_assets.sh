#!/usr/bin/env bash
# Rebuild web/static/vendor/ from the npm registry (pinned versions, licences kept).
# The served map pages reference only these files (gridmap/maps.py: ASSETS); run this only to
# change a version, then update ASSETS and web/static/vendor/README.md to match.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=web/static/vendor
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

fetch() {  # fetch NPM_SPEC DIR -> unpacked package in $WORK/DIR
  (cd "$WORK" && npm pack --silent "$1" >/dev/null && mkdir -p "$2" && tar xzf ./*.tgz -C "$2" \
    && rm ./*.tgz)
}

mkdir -p "$OUT" && rm -rf "$OUT"/*-*/  # README.md stays

fetch leaflet@1.9.4 leaflet
d=$OUT/leaflet-1.9.4 && mkdir -p "$d"
cp -r "$WORK"/leaflet/package/dist/{leaflet.js,leaflet.css,images} "$WORK"/leaflet/package/LICENSE "$d"/

fetch jquery@3.7.1 jquery
d=$OUT/jquery-3.7.1 && mkdir -p "$d"
cp "$WORK"/jquery/package/dist/jquery.min.js "$WORK"/jquery/package/LICENSE.txt "$d"/

fetch bootstrap@5.2.2 bootstrap
d=$OUT/bootstrap-5.2.2 && mkdir -p "$d"
cp "$WORK"/bootstrap/package/dist/css/bootstrap.min.css \
   "$WORK"/bootstrap/package/dist/js/bootstrap.bundle.min.js "$WORK"/bootstrap/package/LICENSE "$d"/

# Folium asks for Bootstrap 3's glyphicons stylesheet (icons of folium.Icon's default prefix):
# the glyphicon rules of Bootstrap 3.4.1 and its fonts.
fetch bootstrap@3.4.1 bootstrap3
d=$OUT/bootstrap-glyphicons-3.4.1 && mkdir -p "$d/css" "$d/fonts"
awk '/^@font-face/{on=1} on&&/^\* \{/{exit} on' \
  "$WORK"/bootstrap3/package/dist/css/bootstrap.css > "$d"/css/bootstrap-glyphicons.css
cp "$WORK"/bootstrap3/package/dist/fonts/* "$d"/fonts/
cp "$WORK"/bootstrap3/package/LICENSE "$d"/

fetch @fortawesome/fontawesome-free@6.2.0 fa
d=$OUT/fontawesome-free-6.2.0 && mkdir -p "$d/css"
cp "$WORK"/fa/package/css/all.min.css "$d"/css/
cp -r "$WORK"/fa/package/webfonts "$WORK"/fa/package/LICENSE.txt "$d"/

fetch leaflet.awesome-markers@2.0.5 am
d=$OUT/leaflet.awesome-markers-2.0.5 && mkdir -p "$d"
cp -r "$WORK"/am/package/dist/{leaflet.awesome-markers.min.js,leaflet.awesome-markers.css,images} \
   "$WORK"/am/package/LICENSE "$d"/

fetch leaflet-draw@1.0.4 ldraw
d=$OUT/leaflet.draw-1.0.4 && mkdir -p "$d"
cp -r "$WORK"/ldraw/package/dist/{leaflet.draw.js,leaflet.draw.css,images} "$d"/
# the npm package declares MIT in package.json but ships no licence file: write it down
cat > "$d"/LICENSE.txt <<'TXT'
Leaflet.draw 1.0.4 (npm package leaflet-draw), MIT licence as declared in its package.json.
Copyright (c) 2012-2017, Jacob Toye, Jon West, Smartrak and Leaflet.draw contributors.
https://github.com/Leaflet/Leaflet.draw/blob/master/MIT-LICENSE.md

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions: The above copyright notice and this
permission notice shall be included in all copies or substantial portions of the Software.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND.
TXT

fetch d3@3.5.5 d3
d=$OUT/d3-3.5.5 && mkdir -p "$d"
cp "$WORK"/d3/package/d3.min.js "$WORK"/d3/package/LICENSE "$d"/

fetch leaflet.vectorgrid@1.3.0 vg
d=$OUT/leaflet.vectorgrid-1.3.0 && mkdir -p "$d"
cp "$WORK"/vg/package/dist/Leaflet.VectorGrid.bundled.min.js "$d"/
{ echo "Leaflet.VectorGrid 1.3.0 (npm: leaflet.vectorgrid), from its README:"; echo
  sed -n '/bundled.js` includes/,/adding these/p;/^-----/,$p' "$WORK"/vg/package/README.md; } > "$d"/LICENSE

# Leaflet.heat as Folium ships it for its HeatMap plugin (the 0.2.0 build plus Leaflet.heat PR
# #78, weights fixed), taken from the installed folium distribution; the licence from npm.
fetch leaflet.heat@0.2.0 heat
d=$OUT/leaflet.heat-0.2.0 && mkdir -p "$d"
cp "$WORK"/heat/package/LICENSE "$d"/
.venv/bin/python - "$d/leaflet-heat.min.js" <<'EOF'
import sys
from importlib import metadata
dist = metadata.distribution("folium")
assert dist.version == "0.20.0", dist.version  # the version pinned in web/static/vendor/README.md
src = dist.locate_file("folium/templates/leaflet_heat.min.js")
open(sys.argv[1], "w").write(open(str(src)).read())
EOF

# Folium's icon-rotation stylesheet (MIT, folium): generated, it is one rule per degree.
d=$OUT/folium-0.20.0 && mkdir -p "$d"
for i in $(seq 0 359); do
  printf '.fa-rotate-%d{transform:rotate(%ddeg)}\n' "$i" "$i"
done > "$d"/leaflet.awesome.rotate.min.css
.venv/bin/python - "$d/LICENSE" <<'EOF'
import sys
from importlib import metadata
try:
    text = metadata.distribution("folium").read_text("licenses/LICENSE.txt") or ""
except Exception:
    text = ""
open(sys.argv[1], "w").write(text or "folium: MIT License, (C) 2013 Rob Story\n")
EOF
echo "vendored into $OUT:"; du -sh "$OUT"/*
