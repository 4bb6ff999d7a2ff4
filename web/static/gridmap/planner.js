// The planner page: a draft's grids against the published ones, edits through the drafts API.
// The page holds no data of its own; every figure and geometry comes from the API with the
// planner's token (sessionStorage), so the server's validation and scope checks decide.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const API = "/api/v1";
  const COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d"];
  const state = {
    draft: null, info: null, selected: new Set(), grids: {}, busy: false, units: new Set(),
  };
  let token = sessionStorage.getItem("gridmap-token");

  async function api(path, options = {}) {
    const headers = Object.assign({}, options.headers || {});
    if (token) headers.Authorization = "Bearer " + token;
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(options.json);
    }
    const r = await fetch(API + path, Object.assign({}, options, { headers }));
    const body = (r.headers.get("content-type") || "").includes("json") ? await r.json() : null;
    if (!r.ok) throw { status: r.status, body: body || {} };
    return body;
  }

  function say(text, error) {
    $("status").textContent = text;
    $("status").classList.toggle("error", !!error);
  }

  function failed(err) {
    const b = err.body || {};
    say(`${err.status || ""} ${b.detail || b.title || err}`, true);
    showProblems(b.errors || []);
  }

  // -- map ------------------------------------------------------------------------------------
  const map = L.map("map", { zoomSnap: 0.25 }).setView([30.7, 111.3], 13);
  const published = L.geoJSON(null, {
    style: { color: "#666", weight: 1.5, dashArray: "5 5", fill: false },
    interactive: false,
    className: "gm-published",
  }).addTo(map);
  const draftLayer = L.geoJSON(null, {
    style: (f) => gridStyle(f.id),
    onEachFeature: (f, layer) => {
      state.grids[f.id] = layer;
      layer.options.className = "gm-draft";
      layer.bindTooltip(`${f.id.slice(-3)} · ${f.properties.households}户`, {
        permanent: true, direction: "center", className: "gm-label",
      });
      layer.on("click", () => toggle(f.id));
      layer.on("add", () => { layer.getElement().dataset.code = f.id; });
    },
  }).addTo(map);
  const problemLayer = L.layerGroup().addTo(map);
  const planLayer = L.geoJSON(null, {  // a generated plan (a gridding draft version)
    style: { color: "#8e44ad", weight: 2, dashArray: "2 4", fillOpacity: 0.06 },
    onEachFeature: (f, layer) => {
      layer.options.className = "gm-plan";
      layer.bindTooltip(`网格 ${f.id.slice(-3)} · ${f.properties.households}户`);
    },
  }).addTo(map);
  const plans = [];  // generated this visit: {version, prefer, grids, quality, published}
  const PREFER = { balance: "兼顾", streets: "沿道路", compact: "形状规整" };
  const unitLayer = L.layerGroup();

  function unitStyle(id) {
    const on = state.units.has(id);
    return { radius: on ? 6 : 3, color: on ? "#d35400" : "#34495e", weight: on ? 3 : 1,
      fillOpacity: 0.8 };
  }

  async function loadUnits() {
    unitLayer.clearLayers();
    if (!$("show-units").checked || !state.draft) return;
    const fc = await api(`/drafts/${state.draft}/units`);
    for (const f of fc.features) {
      const [lon, lat] = f.geometry.coordinates;
      const m = L.circleMarker([lat, lon], Object.assign({ className: "gm-unit" }, unitStyle(f.id)));
      m.bindTooltip(`楼栋 ${f.id}: ${f.properties.households}户 (${(f.properties.grid || "").slice(-3)})`);
      m.on("click", (e) => {
        L.DomEvent.stopPropagation(e);
        if (state.units.has(f.id)) state.units.delete(f.id); else state.units.add(f.id);
        m.setStyle(unitStyle(f.id));
        say(`已选楼栋: ${[...state.units].join(", ") || "—"}`);
      });
      m.on("add", () => { m.getElement().dataset.unit = f.id; });
      unitLayer.addLayer(m);
    }
    document.body.dataset.units = fc.features.length;
  }
  $("show-units").onchange = () => run("units", async () => {
    if ($("show-units").checked) unitLayer.addTo(map); else unitLayer.remove();
    await loadUnits();
  });
  map.attributionControl.setPrefix(false);

  function gridStyle(code) {
    const i = parseInt(code.slice(-3), 10) % COLORS.length;
    const on = state.selected.has(code);
    return { color: on ? "#000" : COLORS[i], weight: on ? 4 : 2, fillOpacity: on ? 0.45 : 0.2 };
  }

  function toggle(code) {
    if (state.selected.has(code)) state.selected.delete(code); else state.selected.add(code);
    draftLayer.setStyle((f) => gridStyle(f.id));
    say(state.selected.size ? `已选: ${[...state.selected].join(", ")}` : "—");
  }

  function showProblems(problems) {
    problemLayer.clearLayers();
    $("problems").innerHTML = "";
    for (const p of problems) {
      const li = document.createElement("li");
      li.textContent = p.message || p.msg || p.kind;
      li.dataset.kind = p.kind;
      $("problems").appendChild(li);
      if (p.location) {
        const ll = [p.location[1], p.location[0]];
        L.circleMarker(ll, { radius: 10, color: "#c0392b", weight: 3, className: "gm-problem" })
          .bindTooltip(p.message || p.kind).addTo(problemLayer);
        li.onclick = () => map.setView(ll, Math.max(map.getZoom(), 17));
      }
    }
  }

  async function reload(fit) {
    const d = state.draft;
    state.info = await api(`/drafts/${d}`);
    const fc = await api(`/grids?version=${d}`);
    published.clearLayers();
    for (const c of state.info.communities) {
      published.addData(await api(`/grids?community=${c}`));
    }
    state.grids = {};
    draftLayer.clearLayers().addData(fc);
    state.selected = new Set([...state.selected].filter((c) => c in state.grids));
    draftLayer.setStyle((f) => gridStyle(f.id));
    if ($("show-units").checked) await loadUnits();
    if (fit && fc.features.length) map.fitBounds(draftLayer.getBounds(), { padding: [20, 20], animate: false });
    const lock = state.info.lock;
    $("draft-label").textContent = `· 草稿 ${d}`;
    $("lock").textContent = lock ? `锁定: ${lock.locked_by}, 至 ${lock.expires.slice(11, 16)} UTC` : "";
    document.body.dataset.draft = d;
    document.body.dataset.grids = fc.features.length;
    document.body.dataset.undo = state.info.can_undo;
    document.body.dataset.redo = state.info.can_redo;
  }

  // -- edits ----------------------------------------------------------------------------------
  async function run(label, fn) {
    if (state.busy) return;
    state.busy = true;
    document.body.dataset.busy = "1";
    try {
      await fn();
    } catch (err) {
      failed(err);
    } finally {
      state.busy = false;
      document.body.dataset.busy = "0";
      document.body.dataset.last = label;
    }
  }

  async function edit(body) {
    const out = await api(`/drafts/${state.draft}/edits`, { method: "POST", json: body });
    showProblems([]);
    const parts = [["改", out.changed], ["新", out.created], ["撤", out.retired]]
      .filter(([, v]) => v.length).map(([k, v]) => `${k} ${v.join(", ")}`);
    state.selected.clear();
    await reload(false);
    say(`已完成 ${body.op}: ${parts.join("; ")}`);
    return out;
  }

  function one() {
    if (state.selected.size !== 1) throw { status: "", body: { detail: "请先只选中一个网格" } };
    return [...state.selected][0];
  }

  function draw(kind) {  // resolves with the GeoJSON geometry the planner draws
    return new Promise((resolve) => {
      const tool = kind === "line" ? new L.Draw.Polyline(map) : new L.Draw.Polygon(map);
      map.once(L.Draw.Event.CREATED, (e) => resolve(e.layer.toGeoJSON().geometry));
      tool.enable();
      say(kind === "line" ? "画一条穿过网格的线, 点最后一点结束" : "画出边界, 点第一点闭合");
    });
  }

  const tools = {
    split_line: async () => {
      const code = one();
      await edit({ op: "split_line", code, line: await draw("line") });
    },
    split_n: () => edit({ op: "split_n", code: one(), parts: parseInt($("parts").value, 10) }),
    merge: () => edit({ op: "merge", codes: [...state.selected] }),
    delete: () => edit({ op: "delete", code: one() }),
    move_units: async () => {
      if (!state.units.size) throw { status: "", body: { detail: "请先点选要移动的楼栋" } };
      const target = one();
      const units = [...state.units];
      state.units.clear();
      await edit({ op: "move_units", units, target });
    },
    replace_one: async () => {
      const code = one();
      await edit({ op: "replace_one", code, geom: await draw("polygon") });
    },
    create: async () => edit({ op: "create", geom: await draw("polygon") }),
    undo: async () => { await api(`/drafts/${state.draft}/undo`, { method: "POST" }); await reload(); say("已撤销"); },
    redo: async () => { await api(`/drafts/${state.draft}/redo`, { method: "POST" }); await reload(); say("已重做"); },
    clear: async () => { state.selected.clear(); draftLayer.setStyle((f) => gridStyle(f.id)); say("—"); },
    validate: async () => {
      const v = await api(`/drafts/${state.draft}/validation`);
      showProblems(v.problems);
      $("valid").textContent = v.valid ? "✓ 可发布" : `✗ ${v.problems.length} 个问题`;
      document.body.dataset.valid = v.valid ? "1" : "0";
    },
    impact: async () => showImpact(await api(`/drafts/${state.draft}/impact`)),
    publish: async () => {
      const out = await api(`/drafts/${state.draft}/publish`, { method: "POST" });
      say(`已发布为版本 ${out.version}`);
      document.body.dataset.published = out.version;
    },
    discard: async () => {
      await api(`/drafts/${state.draft}`, { method: "DELETE" });
      say(`草稿 ${state.draft} 已放弃`);
      draftLayer.clearLayers();
      state.draft = null;  // nothing open: later steps must not reload a discarded draft
      $("draft-label").textContent = "";
    },
  };

  // -- generated plans (POST /gridding drafts: compare, show, publish) -----------------------
  async function showPlan(version) {
    const fc = await api(`/grids?version=${version}`);
    planLayer.clearLayers().addData(fc);
    if (fc.features.length) map.fitBounds(planLayer.getBounds(), { padding: [20, 20], animate: false });
    for (const p of plans) p.shown = p.version === version;
    renderPlans();
    document.body.dataset.planShown = version;
    document.body.dataset.planGrids = fc.features.length;
  }

  const STATUS = { draft: "", published: "现行", superseded: "已被替换" };

  function cell(tr, text) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function button(td, text, data, action) {
    const b = document.createElement("button");
    b.textContent = text;
    Object.assign(b.dataset, data);
    b.onclick = () => run(`plan-${Object.keys(data)[0]}`, action);
    td.appendChild(b);
  }

  function renderPlans() {  // built with textContent: no server value becomes markup
    const fmt = (v, d) => (v === null || v === undefined ? "—" : Number(v).toFixed(d));
    const table = $("plans");
    table.replaceChildren();
    if (plans.length) {
      const head = document.createElement("tr");
      for (const h of ["方案", "偏好", "网格", "户数CV", "紧凑度", "沿路", ""]) {
        head.appendChild(document.createElement("th")).textContent = h;
      }
      table.appendChild(head);
    }
    for (const p of plans) {
      const q = p.quality || {};
      const tr = document.createElement("tr");
      tr.dataset.version = p.version;
      if (p.shown) tr.className = "shown";
      cell(tr, String(p.version));
      cell(tr, PREFER[p.prefer] || p.prefer);
      cell(tr, String(p.grids));
      cell(tr, fmt(q.cv_median, 3));
      cell(tr, fmt(q.pp_mean, 2));
      const al = q.road_alignment_mean;
      cell(tr, al === null || al === undefined ? "—" : `${fmt(100 * al, 0)}%`);
      const act = cell(tr, STATUS[p.status] || "");
      button(act, "查看", { show: p.version }, () => showPlan(p.version));
      if (p.status === "draft") {
        button(act, "编辑", { edit: p.version }, () => editPlan(p));
        button(act, "发布", { publish: p.version }, () => publishPlan(p.version));
      }
      table.appendChild(tr);
    }
    document.body.dataset.plans = plans.length;
  }

  async function refreshStatuses(community) {  // a later publish supersedes an earlier one
    const versions = await api(`/grid-versions?community=${encodeURIComponent(community)}`);
    const status = Object.fromEntries(versions.map((v) => [v.id, v.status]));
    for (const p of plans) if (status[p.version]) p.status = status[p.version];
  }

  async function editPlan(plan) {  // refine a plan in a draft before it is published
    const info = await api("/drafts", {
      method: "POST", json: { communities: [plan.community], from_version: plan.version },
    });
    state.draft = info.draft;
    planLayer.clearLayers();
    await reload(true);
    say(`草稿 ${info.draft} 从方案 ${plan.version} 打开; 改好后"发布为新版本"`);
  }

  async function publishPlan(version) {
    await api(`/grid-versions/${version}/publish`, { method: "POST" });
    const plan = plans.find((p) => p.version === version);
    await refreshStatuses(plan.community);
    renderPlans();
    if (state.draft) await reload(false);  // the current grids under an open draft changed
    say(`方案 ${version} 已发布为现行网格; 可"打开草稿"继续微调`);
    document.body.dataset.planPublished = version;
  }

  tools.generate = async () => {
    const communities = $("community").value.split(/[,，\s]+/).filter(Boolean);
    if (communities.length !== 1) throw { status: "", body: { detail: "请填写一个社区代码" } };
    const body = { community: communities[0], prefer: $("prefer").value };
    const k = parseFloat($("hh-per-grid").value);
    if (k) body.households_per_grid = k;
    say("正在划分…");
    const out = await api("/gridding", { method: "POST", json: body });
    plans.push({
      version: out.version, prefer: body.prefer, grids: out.grids, quality: out.quality,
      community: body.community, status: "draft",
    });
    renderPlans();  // listed even if the map below fails to load
    await showPlan(out.version);
    say(`方案 ${out.version} (${PREFER[body.prefer]}): ${out.grids} 个网格`);
  };

  function showImpact(m) {
    const q = m.quota_violations;
    const rows = [
      ["新增网格", m.grids.created.length], ["撤销网格", m.grids.retired.length],
      ["边界变化", m.grids.changed.length], ["迁移户数", m.households.households],
      ["迁移人口", m.households.residents], ["撤销网格上的岗位", m.postings.on_retired_grids],
      ["帮教关系变网格", m.care_links.links_changing_grid],
      ["在办事件现属他格", m.incidents.open_in_another_grid_now],
      ["新出现的缺岗", q.created.length], ["补上的缺岗", q.fixed.length],
    ];
    $("impact").innerHTML = "<dl>" + rows.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("") + "</dl>";
    document.body.dataset.impactHouseholds = m.households.households;
  }

  for (const b of document.querySelectorAll("[data-tool]")) {
    b.onclick = () => run(b.dataset.tool, tools[b.dataset.tool]);
  }
  $("open-btn").onclick = () => run("open", async () => {
    const communities = $("community").value.split(/[,，\s]+/).filter(Boolean);
    const info = await api("/drafts", { method: "POST", json: { communities } });
    state.draft = info.draft;
    await reload(true);
    say(`草稿 ${info.draft} 已打开`);
  });
  $("resume-btn").onclick = () => run("resume", async () => {
    state.draft = parseInt($("draft-id").value, 10);
    await reload(true);
    say(`继续草稿 ${state.draft}`);
  });

  // -- login ----------------------------------------------------------------------------------
  function start() {
    $("login").classList.add("hidden");
    $("app").classList.remove("hidden");
    map.invalidateSize();
    const q = new URLSearchParams(location.search);
    if (q.get("community")) $("community").value = q.get("community");
    if (q.get("draft")) { $("draft-id").value = q.get("draft"); $("resume-btn").click(); }
    document.body.dataset.ready = "1";
  }
  $("login-btn").onclick = async () => {
    const form = new URLSearchParams({ username: $("user").value, password: $("password").value });
    try {
      const r = await api("/auth/token", { method: "POST", body: form });
      token = r.access_token;
      sessionStorage.setItem("gridmap-token", token);
      start();
    } catch (err) {
      $("login-error").textContent = (err.body && err.body.detail) || "登录失败";
    }
  };
  window.gridmapPlanner = { state, map, draftLayer, toggle };
  if (token) start();
})();
