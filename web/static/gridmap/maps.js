/* gridmap map pages: decode compact layers, style them, legends, dispatch polling, tables.
   No dependency but Leaflet (and Leaflet.VectorGrid for the vector-tile mode). */
(function () {
  "use strict";
  var GM = (window.GM = {});

  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  GM.esc = esc;

  /* Varint-encoded (lat, lng) deltas at 1e-6 degrees in the base64url alphabet, running on
     across rings (",") , polygons (";") and features: gridmap.maps.encode_geometries. */
  var B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", VAL = {};
  for (var a = 0; a < 64; a++) VAL[B64.charCodeAt(a)] = a;
  GM.decodeAll = function (strings) {
    var lat = 0, lng = 0, out = [];
    function ring(str) {
      var pts = [], i = 0, n = str.length;
      while (i < n) {
        var vals = [0, 0];
        for (var k = 0; k < 2; k++) {
          var shift = 0, result = 0, b;
          do {
            b = VAL[str.charCodeAt(i++)];
            result |= (b & 0x1f) << shift;
            shift += 5;
          } while (b >= 0x20);
          vals[k] = result & 1 ? ~(result >> 1) : result >> 1;
        }
        lat += vals[0];
        lng += vals[1];
        pts.push([lat / 1e6, lng / 1e6]);
      }
      return pts;
    }
    for (var f = 0; f < strings.length; f++) {
      out.push(strings[f].split(";").map(function (poly) {
        return poly.split(",").map(ring);
      }));
    }
    return out;
  };

  function colorFor(mode, v) {
    if (mode.breaks) {
      if (v == null) return mode.nodata || "#eeeeee";
      var i = 0;
      while (i < mode.breaks.length && v >= mode.breaks[i]) i++;
      return mode.colors[i];
    }
    return mode.colors[v] || "#cccccc";
  }

  GM.style = function (opts, props, modeName) {
    var base = opts.style || {};
    var s = {
      color: base.color || "#555", weight: base.weight == null ? 0.6 : base.weight,
      opacity: base.opacity == null ? 1 : base.opacity, dashArray: base.dashArray || null,
      fill: base.fill !== false, fillOpacity: base.fillOpacity == null ? 0.7 : base.fillOpacity,
      fillColor: base.fillColor || "#cccccc",
    };
    var mode = opts.modes && opts.modes[modeName || opts.mode];
    if (mode) s.fillColor = colorFor(mode, props[mode.field]);
    return s;
  };

  GM.tipHtml = function (opts, props) {
    var rows = (opts.tip || []).map(function (t) {
      var v = props[t[1]];
      if (t[2] && opts.modes && opts.modes[t[2]] && opts.modes[t[2]].labels) {
        v = opts.modes[t[2]].labels[v];
      } else if (t[2] === "pct") {
        v = v == null ? "—" : Math.round(v * 100) + "%";
      }
      return "<tr><th>" + esc(t[0]) + "</th><td>" + esc(v == null ? "—" : v) + "</td></tr>";
    });
    var head = opts.titleField ? "<b>" + esc(props[opts.titleField]) + "</b>" : "";
    return head + "<table class='gm-tip'>" + rows.join("") + "</table>";
  };

  /* Polygons of one layer; with opts.lazy (a layer hidden at first) they are decoded and
     built when the layer is first added to the map. Labels (opts.label) are plain div markers
     at the polygon's centre: permanent tooltips measure themselves (a forced layout each). */
  GM.polygons = function (data, opts) {
    var group = L.featureGroup(), built = false;
    group.gmOpts = opts;
    function build() {
      built = true;
      var geoms = GM.decodeAll(data.g), cols = Object.keys(data.p);
      for (var i = 0; i < geoms.length; i++) {
        var props = {};
        for (var c = 0; c < cols.length; c++) props[cols[c]] = data.p[cols[c]][i];
        var st = GM.style(opts, props);
        st.className = "gm-" + opts.kind;
        st.interactive = opts.interactive !== false;
        var poly = L.polygon(geoms[i].length === 1 ? geoms[i][0] : geoms[i], st);
        poly.feature = { properties: props };
        if (opts.tip && !opts.label) {
          poly.bindTooltip(GM.tipHtml.bind(null, opts, props), { sticky: true });
        }
        group.addLayer(poly);
        if (opts.label) {
          group.addLayer(L.marker(poly.getBounds().getCenter(), {
            interactive: false, keyboard: false,
            icon: L.divIcon({ className: "gm-label", iconSize: null,
              html: "<span>" + esc(props[opts.label]) + "</span>" }),
          }));
        }
      }
      data = null;
    }
    if (!opts.lazy) build();
    else {
      group.onAdd = function (map) {
        if (!built) build();
        L.FeatureGroup.prototype.onAdd.call(this, map);
      };
    }
    return group;
  };

  GM.setMode = function (layer, modeName) {
    layer.gmOpts.mode = modeName;
    layer.eachLayer(function (p) {
      if (p.feature) p.setStyle(GM.style(layer.gmOpts, p.feature.properties));
    });
  };

  /* Legend with an optional switch between the layer's colourings, or between base layers
     (args.bases: mode → layer variable; kept in step with the layer control). */
  GM.legend = function (map, args) {
    var bases = args.bases || {}, shown = args.initial || Object.keys(args.modes)[0];
    function showBase(name) {
      Object.keys(bases).forEach(function (n) {
        var l = window[bases[n]];
        if (!l) return;
        if (n === name && !map.hasLayer(l)) map.addLayer(l);
        if (n !== name && map.hasLayer(l)) map.removeLayer(l);
      });
    }
    var ctl = L.control({ position: args.position || "bottomright" });
    ctl.onAdd = function () {
      var div = L.DomUtil.create("div", "gm-legend");
      L.DomEvent.disableClickPropagation(div);
      var names = Object.keys(args.modes);
      function draw(current) {
        var m = args.modes[current], h = "";
        shown = current;
        if (names.length > 1) {
          h += "<div class='gm-modes'>" + names.map(function (n) {
            return "<label><input type='radio' name='gm-mode' value='" + esc(n) + "'" +
              (n === current ? " checked" : "") + "> " + esc(args.modes[n].title) + "</label>";
          }).join(" ") + "</div>";
        }
        h += "<div class='gm-legend-title'>" + esc(m.title) + "</div>";
        h += m.items.map(function (it) {
          return "<div class='gm-item'><i style='background:" + esc(it[0]) + "'></i>" +
            esc(it[1]) + "</div>";
        }).join("");
        if (args.note) h += "<div class='gm-note'>" + esc(args.note) + "</div>";
        div.innerHTML = h;
        Array.prototype.forEach.call(div.querySelectorAll("input[name=gm-mode]"), function (r) {
          r.addEventListener("change", function () {
            var layer = window[args.layer];
            if (layer && layer.gmOpts) GM.setMode(layer, r.value);
            if (layer && layer.gmSetMode) layer.gmSetMode(r.value);
            if (bases[r.value]) showBase(r.value);
            draw(r.value);
          });
        });
      }
      map.on("baselayerchange", function (e) {  // picked in the layer control
        Object.keys(bases).forEach(function (n) {
          if (window[bases[n]] === e.layer && n !== shown) draw(n);
        });
      });
      draw(shown);
      return div;
    };
    ctl.addTo(map);
    return ctl;
  };

  GM.title = function (map, args) {
    var ctl = L.control({ position: "topleft" });
    ctl.onAdd = function () {
      var div = L.DomUtil.create("div", "gm-title");
      div.innerHTML = "<h1>" + esc(args.title) + "</h1>" +
        (args.subtitle ? "<div class='gm-sub'>" + esc(args.subtitle) + "</div>" : "");
      return div;
    };
    ctl.addTo(map);
    L.control.scale({ imperial: false, maxWidth: 180 }).addTo(map);
    if (map.attributionControl) map.attributionControl.setPrefix("Leaflet");
    if (args.print) document.body.classList.add("gm-print");
    return ctl;
  };

  /* Vector tiles (Leaflet.VectorGrid) for areas with many grids: grids, then outlines. */
  GM.vectorTiles = function (map, args) {
    var opts = args.grid, mode = opts.mode;
    function gridStyle(p) { var s = GM.style(opts, p, mode); s.fill = true; return s; }
    var common = { interactive: true, maxNativeZoom: 16, rendererFactory: L.canvas.tile,
      fetchOptions: { credentials: "same-origin" } };
    var layer = L.vectorGrid.protobuf(args.url.replace("{layer}", "grids"), L.extend({
      vectorTileLayerStyles: { grids: gridStyle },
      getFeatureId: function (f) { return f.properties.code; },
    }, common));
    layer.gmSetMode = function (m) { mode = m; layer.redraw(); };
    layer.on("click", function (e) {
      var p = e.layer && e.layer.properties;
      if (p) L.popup().setLatLng(e.latlng).setContent(GM.tipHtml(opts, p)).openOn(map);
    });
    layer.addTo(map);
    L.vectorGrid.protobuf(args.url.replace("{layer}", "areas"), L.extend({}, common, {
      interactive: false,
      vectorTileLayerStyles: { areas: function (p) {
        var st = args.areas[p.kind] ? args.areas[p.kind].style : { weight: 0 };
        return L.extend({ fill: false, opacity: 1 }, st);
      } },
    })).addTo(map);
    window[args.name] = layer;
    return layer;
  };

  /* Dispatch wall map: incidents and mediators, refreshed by polling a small JSON endpoint. */
  GM.dispatch = function (map, args) {
    map.createPane("gm-med").style.zIndex = 440;
    map.createPane("gm-lines").style.zIndex = 450;
    map.createPane("gm-inc").style.zIndex = 460;
    var inc = {}, med = {}, lines = L.layerGroup().addTo(map), selected = null;
    var list = document.getElementById("gm-incidents"), cand = document.getElementById("gm-candidates");
    var stamp = document.getElementById("gm-updated");
    function incStyle(s) {
      return { radius: 9, weight: 2, color: "#222", fillOpacity: 0.95, pane: "gm-inc",
        fillColor: args.colors.incident[s] || "#999", className: "gm-inc" };
    }
    function medStyle(s) {
      return { radius: 4, weight: 1, color: "#fff", fillOpacity: 0.9, pane: "gm-med",
        fillColor: args.colors.mediator[s] || "#999", className: "gm-med" };
    }
    function sync(store, rows, styleFn, kind) {
      var seen = {};
      rows.forEach(function (r) {
        seen[r.id] = true;
        var m = store[r.id];
        if (!m) {
          m = store[r.id] = L.circleMarker([r.lat, r.lon], styleFn(r.status)).addTo(map);
          if (kind === "inc") m.on("click", function () { select(r.id); });
        } else {
          m.setLatLng([r.lat, r.lon]);
          m.setStyle(styleFn(r.status));
        }
        m.row = r;
        var el = m.getElement();
        if (el) { el.setAttribute("data-id", r.id); el.setAttribute("data-status", r.status); }
        m.bindTooltip(kind === "inc"
          ? esc(r.id) + " · " + esc(args.labels.incident[r.status] || r.status) + "<br>" + esc(r.category_name) + " · " + esc(r.grid)
          : esc(r.name) + " · " + esc(args.labels.mediator[r.status] || r.status));
      });
      Object.keys(store).forEach(function (id) {
        if (!seen[id]) { map.removeLayer(store[id]); delete store[id]; }
      });
    }
    function drawList(rows) {
      list.innerHTML = rows.map(function (r) {
        return "<li data-incident='" + esc(r.id) + "' data-status='" + esc(r.status) + "'" +
          (r.id === selected ? " class='sel'" : "") + "><b>" + esc(r.id) + "</b> <span class='st st-" +
          esc(r.status) + "'>" + esc(args.labels.incident[r.status] || r.status) + "</span><br>" +
          esc(r.category_name) + " · " + esc(r.grid) + "</li>";
      }).join("");
    }
    function update(d) {
      sync(inc, d.incidents, incStyle, "inc");
      sync(med, d.mediators, medStyle, "med");
      drawList(d.incidents);
      document.body.setAttribute("data-version", d.version);
      if (stamp) stamp.textContent = d.generated_at;
    }
    function select(id) {
      selected = id;
      lines.clearLayers();
      drawList(Object.keys(inc).map(function (k) { return inc[k].row; }));
      cand.innerHTML = "<li>…</li>";
      fetch(args.recommendation.replace("{id}", encodeURIComponent(id)), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (rec) {
          var from = inc[id] && inc[id].getLatLng();
          cand.innerHTML = rec.candidates.length ? rec.candidates.map(function (c, i) {
            var m = med[c.person_id];
            if (m && from) {
              L.polyline([from, m.getLatLng()], {
                color: "#2166ac", weight: 3, dashArray: "6 6", pane: "gm-lines",
              }).addTo(lines);
              m.setStyle({ radius: 8, color: "#2166ac", weight: 3 });
            }
            return "<li data-person='" + esc(c.person_id) + "'>" + (i + 1) + ". " + esc(c.name) + " · " +
              esc(args.labels.reason[c.reason] || c.reason) + " · " + Math.round(c.distance_m) + " 米</li>";
          }).join("") : "<li>" + esc(args.labels.none) + "</li>";
          if (from) {
            var b = L.latLngBounds([from]);
            lines.eachLayer(function (l) { b.extend(l.getBounds()); });
            map.fitBounds(b.pad(0.3), { maxZoom: 16 });
          }
        })
        .catch(function () { cand.innerHTML = "<li>" + esc(args.labels.failed) + "</li>"; });
    }
    list.addEventListener("click", function (e) {
      var li = e.target.closest("li[data-incident]");
      if (li) select(li.getAttribute("data-incident"));
    });
    update(args.data);
    function poll() {
      fetch(args.url, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (d) { if (d) update(d); })
        .catch(function () {})
        .then(function () { setTimeout(poll, args.poll * 1000); });
    }
    setTimeout(poll, args.poll * 1000);
    return { select: select };
  };

  /* Sortable tables: click a header. Numbers sort as numbers, "—" last. */
  GM.sortable = function (table) {
    var heads = table.querySelectorAll("th");
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener("click", function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        function key(r) {
          var t = r.cells[col].getAttribute("data-v") || r.cells[col].textContent.trim();
          var n = parseFloat(t);
          return isNaN(n) ? t : n;
        }
        rows.sort(function (a, b) {
          var x = key(a), y = key(b);
          if (typeof x !== typeof y) return typeof x === "number" ? -1 : 1;
          return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  };

  /* Login: token from the API, then an HttpOnly session cookie for the map pages. */
  GM.login = function (form) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var msg = document.getElementById("gm-login-msg");
      fetch("/api/v1/auth/token", { method: "POST", body: new URLSearchParams(new FormData(form)) })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (t) {
          return fetch("/maps/session", { method: "POST", headers: { Authorization: "Bearer " + t.access_token } });
        })
        .then(function (r) {
          if (!r.ok) return Promise.reject(r.status);
          var next = new URLSearchParams(location.search).get("next") || "/maps/coverage";
          location.href = /^\/(maps|dashboard)/.test(next) ? next : "/maps/coverage";
        })
        .catch(function () { msg.textContent = "登录失败"; });
    });
  };
})();
