/* The planner's workbench (/planner): versions on a timeline, a MapLibre editor (Terra Draw
 * draws the split line), live validation and impact. Every change goes through the draft API
 * with the page's CSRF token (X-CSRF-Token), so the same edits can be scripted. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("pl-config").textContent);
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var V = "/v1/boundaries/versions";
  var EMPTY = { type: "FeatureCollection", features: [] };
  var state = {
    versions: [], inForce: null, working: null, selected: null, mode: "select",
    grids: EMPTY, busy: 0, mergeFirst: null, diff: { added: [], changed: [] },
    impact: null, validation: null, markers: [], drag: null, rollbackArmed: false,
    lastError: null
  };
  window.planner = state;

  var KIND = {
    gap: "缝隙", overlap: "重叠", outside_parent: "超出上级范围", invalid_geometry: "多边形无效",
    grid_too_large: "网格面积过大", grid_too_small: "网格面积过小",
    community_too_large: "社区面积过大", community_too_small: "社区面积过小",
    town_too_large: "镇街面积过大", town_too_small: "镇街面积过小",
    too_many_households: "户数超限", code_order: "编号未按由北向南、由西向东",
    malformed_code: "编码格式错误", code_not_under_parent: "编码不属于上级",
    duplicate_code: "编码重复", empty_version: "版本没有区域", missing_parent: "缺少上级",
    unknown_parent: "上级不存在", wrong_parent_level: "上级层级错误", unknown_level: "层级未知"
  };
  var STATUS = { draft: "草稿", published: "已发布", retired: "已退役" };
  var CLASS = { rural: "农村", urban: "城镇" };

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function fmtArea(m2) {
    if (m2 === null || m2 === undefined) { return ""; }
    if (m2 >= 100000) { return (m2 / 1e6).toFixed(2) + " 平方公里"; }
    return (m2 < 10 ? m2.toFixed(1) : Math.round(m2).toLocaleString("zh-CN")) + " 平方米";
  }
  function num(v) { return v === null || v === undefined ? "—" : Number(v).toLocaleString("zh-CN"); }

  function toast(text, bad) {
    var t = $("pl-toast");
    t.textContent = text;
    t.className = "pl-toast" + (bad ? " bad" : "");
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { t.hidden = true; }, bad ? 9000 : 4000);
  }

  function api(method, path, body, form) {
    var headers = { Accept: "application/json" };
    if (method !== "GET") { headers["X-CSRF-Token"] = csrf; }
    var init = { method: method, headers: headers, credentials: "same-origin" };
    if (form) { init.body = form; } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    state.busy += 1;
    return fetch(path, init).then(function (r) {
      return r.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = { message: text }; }
        if (!r.ok) {
          var msg = (data && (data.message || data.detail)) || ("HTTP " + r.status);
          var err = new Error(typeof msg === "string" ? msg : JSON.stringify(msg));
          err.status = r.status;
          throw err;
        }
        return data;
      });
    }).finally(function () { state.busy -= 1; });
  }
  function failed(what) {
    return function (err) {
      state.lastError = err.message;
      toast(what + "失败：" + err.message, true);
    };
  }

  // ------------------------------------------------------------------ versions and timeline

  function today() { return new Date().toISOString().slice(0, 10); }
  function inForce(vs) {
    var d = today();
    var live = vs.filter(function (v) {
      return v.status === "published" && v.effective_from && v.effective_from <= d &&
        (!v.effective_to || v.effective_to > d);
    });
    live.sort(function (a, b) { return a.effective_from < b.effective_from ? 1 : -1; });
    return live.length ? live[0] : null;
  }
  function working() {
    return state.versions.find(function (v) { return v.id === state.working; }) || null;
  }
  function editable() {
    var w = working();
    return !!(config.can_edit && w && w.status === "draft");
  }

  function loadVersions() {
    return api("GET", V).then(function (data) {
      state.versions = data.versions;
      var f = inForce(data.versions);
      state.inForce = f ? f.id : null;
      if (state.working === null || !working()) {
        var asked = Number(new URLSearchParams(location.search).get("version"));
        var drafts = data.versions.filter(function (v) { return v.status === "draft"; });
        state.working = asked || (drafts.length ? drafts[0].id : state.inForce);
      }
      drawTimeline();
    });
  }

  function drawTimeline() {
    var list = $("pl-timeline");
    list.textContent = "";
    var shown = state.versions.slice().sort(function (a, b) {
      var ka = (a.effective_from || "9999") + String(a.id).padStart(9, "0");
      var kb = (b.effective_from || "9999") + String(b.id).padStart(9, "0");
      return ka < kb ? -1 : 1;
    });
    shown.forEach(function (v) {
      var li = el("li", v.status + (v.id === state.working ? " working" : ""));
      li.dataset.id = v.id;
      li.appendChild(el("span", "label", v.label));
      li.appendChild(el("span", "pl-chip " + v.status, STATUS[v.status] || v.status));
      if (v.id === state.inForce) { li.appendChild(el("span", "pl-chip inforce", "现行")); }
      var dates = v.effective_from
        ? "生效 " + v.effective_from + (v.effective_to ? " 至 " + v.effective_to : " 起")
        : "未发布 · 编号 " + v.id;
      li.appendChild(el("span", "dates", dates));
      li.addEventListener("click", function () { openVersion(v.id); });
      list.appendChild(li);
    });
    ["pl-cmp-a", "pl-cmp-b"].forEach(function (id, k) {
      var sel = $(id);
      var keep = sel.value;
      sel.textContent = "";
      state.versions.forEach(function (v) {
        var o = el("option", null, v.label + "（" + (STATUS[v.status] || v.status) + "）");
        o.value = v.id;
        sel.appendChild(o);
      });
      sel.value = k === 0 ? String(state.working)
        : (keep || String(state.inForce || state.working));
    });
    var w = working();
    $("pl-working").textContent = w
      ? "当前版本：" + w.label + "（" + (STATUS[w.status] || w.status) + "）" +
        (editable() ? " · 可编辑" : " · 只读")
      : "未选择版本";
    document.querySelectorAll(".pl-tools button, #pl-renumber, #pl-publish").forEach(
      function (b) { b.disabled = !editable() && b.dataset.mode !== "select"; });
    $("pl-rollback").disabled = !config.can_edit;
    if (!editable() && state.mode !== "select" && map.getLayer("vertices")) { setMode("select"); }
  }

  function openVersion(id) {
    state.working = id;
    state.selected = null;
    state.mergeFirst = null;
    $("pl-attrs").hidden = true;
    drawTimeline();
    return refresh();
  }

  // ------------------------------------------------------------------ the map

  var map = new maplibregl.Map({
    container: "map",
    style: {
      version: 8, sources: {},
      layers: [{ id: "background", type: "background", paint: { "background-color": "#eef0f2" } }]
    },
    bounds: config.extent || [120.6, 30.6, 120.9, 30.9],
    fitBoundsOptions: { padding: 20 },
    attributionControl: false,
    doubleClickZoom: false
  });
  window.geoMap = map;
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-right");
  var draw = null;

  function colourOf() {
    var c = ["case"];
    if (state.selected) { c.push(["==", ["get", "code"], state.selected], "#ffd666"); }
    if (state.mergeFirst) { c.push(["==", ["get", "code"], state.mergeFirst], "#ffd666"); }
    if (state.diff.added.length) {
      c.push(["in", ["get", "code"], ["literal", state.diff.added]], "#95de64");
    }
    if (state.diff.changed.length) {
      c.push(["in", ["get", "code"], ["literal", state.diff.changed]], "#b7eb8f");
    }
    c.push("#dfe8f3");
    return c.length > 2 ? c : "#dfe8f3";
  }
  function paint() {
    if (map.getLayer("grids-fill")) { map.setPaintProperty("grids-fill", "fill-color", colourOf()); }
  }

  map.on("load", function () {
    map.addSource("grids", { type: "geojson", data: EMPTY });
    map.addSource("communities", { type: "geojson", data: EMPTY });
    map.addSource("problems", { type: "geojson", data: EMPTY });
    map.addSource("vertices", { type: "geojson", data: EMPTY });
    map.addSource("drag", { type: "geojson", data: EMPTY });
    map.addLayer({ id: "grids-fill", type: "fill", source: "grids",
                   paint: { "fill-color": "#dfe8f3", "fill-opacity": 0.8 } });
    map.addLayer({ id: "grids-line", type: "line", source: "grids",
                   paint: { "line-color": "#5b6b7f", "line-width": 1 } });
    map.addLayer({ id: "communities-line", type: "line", source: "communities",
                   paint: { "line-color": "#1f5fa8", "line-width": 2.4 } });
    map.addLayer({ id: "problems-fill", type: "fill", source: "problems",
                   paint: { "fill-color": ["match", ["get", "severity"], "error",
                                           "#cf1322", "#faad14"], "fill-opacity": 0.5 } });
    map.addLayer({ id: "problems-line", type: "line", source: "problems",
                   paint: { "line-color": ["match", ["get", "severity"], "error",
                                           "#cf1322", "#d48806"], "line-width": 2.5 } });
    map.addLayer({ id: "vertices", type: "circle", source: "vertices",
                   layout: { visibility: "none" },
                   paint: { "circle-radius": ["case", [">", ["get", "n"], 1], 6, 4],
                            "circle-color": ["case", [">", ["get", "n"], 1], "#1f5fa8", "#ffffff"],
                            "circle-stroke-color": "#12355b", "circle-stroke-width": 1.5 } });
    map.addLayer({ id: "drag-line", type: "line", source: "drag",
                   paint: { "line-color": "#cf1322", "line-width": 2, "line-dasharray": [2, 2] } });
    map.addLayer({ id: "drag-point", type: "circle", source: "drag",
                   filter: ["==", ["geometry-type"], "Point"],
                   paint: { "circle-radius": 7, "circle-color": "#cf1322" } });
    draw = new terraDraw.TerraDraw({
      adapter: new terraDrawMaplibreGlAdapter.TerraDrawMapLibreGLAdapter({ map: map }),
      modes: [new terraDraw.TerraDrawLineStringMode()]
    });
    draw.start();
    draw.on("finish", onLineDrawn);
    state.mapReady = true;
    loadVersions().then(refresh).catch(failed("加载版本"));
  });

  var moveTimer = null;
  map.on("moveend", function () {
    clearTimeout(moveTimer);
    moveTimer = setTimeout(function () { if (state.working) { loadGrids(); } }, 150);
  });

  function loadGrids() {
    var b = map.getBounds();
    var bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) {
      return v.toFixed(6);
    }).join(",");
    var id = state.working;
    return Promise.all([
      api("GET", V + "/" + id + "/areas?level=grid&bbox=" + bbox),
      api("GET", V + "/" + id + "/areas?level=community&bbox=" + bbox)
    ]).then(function (got) {
      if (id !== state.working) { return; }
      state.grids = got[0];
      map.getSource("grids").setData(got[0]);
      map.getSource("communities").setData(got[1]);
      drawVertices();
      paint();
      if (state.selected && !gridByCode(state.selected)) { select(null); }
    }).catch(failed("加载网格"));
  }
  function gridByCode(code) {
    return state.grids.features.find(function (f) { return f.properties.code === code; });
  }

  // ------------------------------------------------------------------ validation and impact

  function sentence(p) {
    var kind = KIND[p.kind] || (p.kind.endsWith("_too_large") ? "面积过大"
      : p.kind.endsWith("_too_small") ? "面积过小" : p.kind);
    var parts = [(p.severity === "error" ? "错误" : "提醒") + "：" + kind];
    if (p.codes && p.codes.length) {
      parts.push(p.codes.slice(0, 4).join("、") + (p.codes.length > 4 ? " 等" : ""));
    }
    if (p.area_m2 !== null && p.area_m2 !== undefined) { parts.push("面积 " + fmtArea(p.area_m2)); }
    if (p.kind === "too_many_households") {
      var m = /holds (\d+) households, over the maximum of (\d+)/.exec(p.message || "");
      if (m) { parts.push(m[1] + " 户，上限 " + m[2] + " 户"); }
    }
    if (p.area_class) { parts.push("类别：" + (CLASS[p.area_class] || p.area_class)); }
    if (p.inherited) { parts.push("现行版本中已如此，不影响发布"); }
    return parts.join(" · ");
  }
  function short(p) {
    var kind = KIND[p.kind] || p.kind;
    return kind + (p.area_m2 ? " " + fmtArea(p.area_m2) : "");
  }

  function loadValidation() {
    var id = state.working;
    return api("GET", V + "/" + id + "/validation").then(function (report) {
      if (id !== state.working) { return; }
      state.validation = report;
      var list = $("pl-problems");
      list.textContent = "";
      state.markers.forEach(function (m) { m.remove(); });
      state.markers = [];
      var features = [];
      report.problems.forEach(function (p, i) {
        var li = el("li", p.severity, sentence(p));
        li.title = p.message;
        li.addEventListener("click", function () {
          if (p.location) { map.flyTo({ center: p.location, zoom: Math.max(map.getZoom(), 15) }); }
        });
        list.appendChild(li);
        if (p.geometry && p.kind !== "code_order" && !p.inherited) {
          features.push({ type: "Feature", geometry: p.geometry,
                          properties: { severity: p.severity, kind: p.kind } });
        }
        if (p.location && i < 80 && !p.inherited) {
          var tag = el("div", "pl-marker " + p.severity, short(p));
          state.markers.push(new maplibregl.Marker({ element: tag }).setLngLat(p.location)
            .addTo(map));
        }
      });
      if (!report.problems.length) { list.appendChild(el("li", "ok", "没有发现问题。")); }
      map.getSource("problems").setData({ type: "FeatureCollection", features: features });
      $("pl-valid-badge").textContent = report.valid
        ? "可以发布 · 提醒 " + report.warnings + " 条"
        : "错误 " + report.errors + " 条 · 提醒 " + report.warnings + " 条";
    }).catch(failed("校验"));
  }

  function loadImpact() {
    var id = state.working;
    var box = $("pl-impact");
    var table = $("pl-workload");
    if (id === state.inForce || state.inForce === null) {
      box.textContent = "";
      box.appendChild(el("dt", null, "现行版本"));
      box.appendChild(el("dd", null, "无需比较"));
      table.hidden = true;
      state.diff = { added: [], changed: [] };
      paint();
      return Promise.resolve();
    }
    return api("GET", V + "/" + id + "/impact").then(function (imp) {
      if (id !== state.working) { return; }
      state.impact = imp;
      var g = imp.grids.summary;
      var rows = [
        ["新增网格", g.new], ["变更网格", g.changed], ["撤销网格", g.removed],
        ["迁移户数（按面积估算）", Math.round(g.households_shifted_est)],
        ["调整面积", fmtArea(g.area_shifted_m2)],
        ["改变所属网格的历史上报", imp.reports.change_grid + " / " + num(imp.reports.total)],
        ["改变所属网格的在办案件", imp.open_cases.change_grid + " / " + num(imp.open_cases.total)],
        ["改变处置单位的在办案件", imp.open_cases.change_unit]
      ];
      box.textContent = "";
      rows.forEach(function (r) {
        box.appendChild(el("dt", null, r[0]));
        var dd = el("dd", null, typeof r[1] === "number" ? num(r[1]) : r[1]);
        dd.dataset.figure = r[0];
        box.appendChild(dd);
      });
      var wb = imp.workload.before, wa = imp.workload.after;
      var tbody = table.querySelector("tbody");
      tbody.textContent = "";
      [["网格数", "grids"], ["每名网格员上报（平均）", "mean"], ["最多", "max"],
       ["第 90 百分位", "p90"], ["变异系数", "cv"]].forEach(function (r) {
        var tr = el("tr");
        tr.appendChild(el("td", null, r[0]));
        tr.appendChild(el("td", null, num(wb[r[1]])));
        tr.appendChild(el("td", null, num(wa[r[1]])));
        tbody.appendChild(tr);
      });
      table.hidden = false;
      state.diff = {
        added: imp.grids.new.map(function (x) { return x.code; }),
        changed: imp.grids.changed.map(function (x) { return x.code; })
      };
      paint();
    }).catch(failed("影响分析"));
  }

  function refresh() {
    if (!state.mapReady || !state.working) { return Promise.resolve(); }
    return Promise.all([loadGrids(), loadValidation(), loadImpact()]).then(function () {
      state.refreshed = (state.refreshed || 0) + 1;
    });
  }

  // ------------------------------------------------------------------ selection and tools

  var HINT = {
    select: "点击地图上的网格以选择它，并在下方编辑其属性。",
    split: "先选择一个网格，再在地图上点击画出穿过它的直线，双击或回车结束。",
    merge: "依次点击两个相邻网格（同一社区）进行合并。",
    vertex: "按住蓝色共享顶点拖动到新位置，相邻网格一同移动，自动吸附到附近的顶点或边。"
  };
  function setMode(mode) {
    state.mode = mode;
    state.mergeFirst = null;
    document.querySelectorAll(".pl-tools button").forEach(function (b) {
      b.classList.toggle("on", b.dataset.mode === mode);
    });
    $("pl-hint").textContent = HINT[mode];
    if (draw) { draw.setMode(mode === "split" ? "linestring" : "static"); }
    map.setLayoutProperty("vertices", "visibility", mode === "vertex" ? "visible" : "none");
    if (mode === "vertex") { drawVertices(); }
    paint();
  }
  document.querySelectorAll(".pl-tools button").forEach(function (b) {
    b.addEventListener("click", function () { setMode(b.dataset.mode); });
  });

  function select(code) {
    state.selected = code;
    var form = $("pl-attrs");
    var f = code ? gridByCode(code) : null;
    if (!f) { form.hidden = true; paint(); return; }
    var p = f.properties;
    $("pl-attrs-title").textContent = "网格 " + p.code + " 的属性";
    form.elements.name.value = p.name || "";
    form.elements.households.value = p.households === null ? "" : p.households;
    form.elements.grid_worker.value = p.grid_worker || "";
    form.elements.grid_leader.value = p.grid_leader || "";
    form.elements.area_class.value = p.area_class || "";
    Array.prototype.forEach.call(form.elements, function (e) { e.disabled = !editable(); });
    form.hidden = false;
    paint();
  }

  map.on("click", "grids-fill", function (e) {
    if (!e.features || !e.features.length) { return; }
    var code = e.features[0].properties.code;
    if (state.mode === "select") { select(code); return; }
    if (state.mode === "split") {  // the line's clicks must not move the selection
      if (!state.selected) { select(code); }
      return;
    }
    if (state.mode === "merge" && editable()) {
      if (!state.mergeFirst) {
        state.mergeFirst = code;
        select(code);
        $("pl-hint").textContent = "已选 " + code + "，再点击一个相邻网格。";
        return;
      }
      if (code === state.mergeFirst) { return; }
      var pair = [state.mergeFirst, code];
      state.mergeFirst = null;
      api("POST", V + "/" + state.working + "/grids/merge", { codes: pair }).then(function (r) {
        toast("已合并 " + pair.join("、") + " 为 " + r.created[0].code);
        state.selected = r.created[0].code;
        return refresh();
      }).then(function () { select(state.selected); }).catch(failed("合并"));
    }
  });

  function onLineDrawn(id) {
    var feature = draw.getSnapshotFeature(id);
    draw.clear();
    if (!feature) { return; }
    if (!state.selected) { toast("请先选择要拆分的网格", true); return; }
    var code = state.selected;
    api("POST", V + "/" + state.working + "/grids/" + code + "/split",
        { line: feature.geometry }).then(function (r) {
      toast("已将 " + code + " 拆分为 " + r.created.map(function (c) { return c.code; }).join("、"));
      select(null);
      state.lastSplit = r.created.map(function (c) { return c.code; });
      return refresh();
    }).catch(failed("拆分"));
  }

  $("pl-attrs").addEventListener("submit", function (e) {
    e.preventDefault();
    var f = e.target.elements;
    var body = {
      name: f.name.value.trim(),
      households: f.households.value === "" ? null : Number(f.households.value),
      grid_worker: f.grid_worker.value.trim() || null,
      grid_leader: f.grid_leader.value.trim() || null,
      area_class: f.area_class.value || null
    };
    var code = state.selected;
    api("PATCH", V + "/" + state.working + "/grids/" + code, body).then(function () {
      toast("已保存网格 " + code + " 的属性");
      return refresh();
    }).then(function () { select(code); }).catch(failed("保存属性"));
  });

  // ------------------------------------------------------------------ shared vertices

  function drawVertices() {
    if (state.mode !== "vertex" || !map.getSource("vertices")) { return; }
    var count = {};
    state.grids.features.forEach(function (f) {
      var polys = f.geometry.type === "Polygon" ? [f.geometry.coordinates]
        : f.geometry.coordinates;
      polys.forEach(function (rings) {
        rings.forEach(function (ring) {
          ring.slice(0, -1).forEach(function (c) {
            var k = c[0] + "," + c[1];
            count[k] = (count[k] || 0) + 1;
          });
        });
      });
    });
    var features = Object.keys(count).map(function (k) {
      var xy = k.split(",").map(Number);
      return { type: "Feature", geometry: { type: "Point", coordinates: xy },
               properties: { n: count[k] } };
    });
    state.vertexCount = features.length;
    map.getSource("vertices").setData({ type: "FeatureCollection", features: features });
  }
  function metresPerPixel() {
    var lat = map.getCenter().lat;
    return 40075016.686 * Math.cos(lat * Math.PI / 180) / (512 * Math.pow(2, map.getZoom()));
  }
  function snapTarget(point) {
    var r = 10;
    var near = map.queryRenderedFeatures([[point.x - r, point.y - r], [point.x + r, point.y + r]],
                                         { layers: ["vertices"] });
    var best = null, bestD = Infinity;
    near.forEach(function (f) {
      var c = f.geometry.coordinates;
      if (state.drag && c[0] === state.drag.from[0] && c[1] === state.drag.from[1]) { return; }
      var p = map.project(c);
      var d = Math.hypot(p.x - point.x, p.y - point.y);
      if (d < bestD) { bestD = d; best = c; }
    });
    return best;
  }
  map.on("mousedown", "vertices", function (e) {
    if (state.mode !== "vertex" || !editable() || !e.features.length) { return; }
    e.preventDefault();
    state.drag = { from: e.features[0].geometry.coordinates.slice() };
    map.dragPan.disable();
    map.getCanvas().style.cursor = "grabbing";
  });
  map.on("mousemove", function (e) {
    if (!state.drag) { return; }
    var to = snapTarget(e.point) || [e.lngLat.lng, e.lngLat.lat];
    state.drag.to = to;
    map.getSource("drag").setData({ type: "FeatureCollection", features: [
      { type: "Feature", geometry: { type: "LineString", coordinates: [state.drag.from, to] },
        properties: {} },
      { type: "Feature", geometry: { type: "Point", coordinates: to }, properties: {} }
    ] });
  });
  map.on("mouseup", function (e) {
    if (!state.drag) { return; }
    var drag = state.drag;
    state.drag = null;
    map.dragPan.enable();
    map.getCanvas().style.cursor = "";
    map.getSource("drag").setData(EMPTY);
    var to = drag.to || snapTarget(e.point) || [e.lngLat.lng, e.lngLat.lat];
    var tolerance = Math.min(100, Math.max(0.5, 8 * metresPerPixel()));
    api("POST", V + "/" + state.working + "/vertices/move",
        { from: drag.from, to: to, tolerance_m: tolerance }).then(function (r) {
      toast("顶点已移动，" + r.grids.length + " 个网格随之调整：" +
            r.grids.map(function (g) { return g.code; }).join("、"));
      state.lastMove = r;
      return refresh();
    }).catch(failed("移动顶点"));
  });

  // ------------------------------------------------------------------ drafts, compare, publish

  function stamp() {
    var d = new Date();
    return d.getFullYear() + String(d.getMonth() + 1).padStart(2, "0") +
      String(d.getDate()).padStart(2, "0") + "-" + String(d.getHours()).padStart(2, "0") +
      String(d.getMinutes()).padStart(2, "0") + String(d.getSeconds()).padStart(2, "0");
  }
  $("pl-new-draft").addEventListener("click", function () {
    if (state.inForce === null) { toast("没有现行版本，请上传文件新建草稿", true); return; }
    api("POST", V + "/" + state.inForce + "/copy", { label: "草稿-" + stamp() }).then(function (v) {
      toast("已新建草稿 " + v.label);
      state.working = v.id;
      return loadVersions().then(refresh);
    }).catch(failed("新建草稿"));
  });
  $("pl-upload").addEventListener("submit", function (e) {
    e.preventDefault();
    var file = $("pl-upload-file").files[0];  // GeoJSON, GeoPackage or zipped Shapefile
    if (!file) { toast("请选择一个 GeoJSON、GeoPackage 或 Shapefile 压缩包", true); return; }
    var form = new FormData();
    form.append("file", file);
    form.append("label", "上传-" + stamp());
    api("POST", V, undefined, form).then(function (v) {
      toast("已上传草稿 " + v.label + "：错误 " + v.errors + " 条，提醒 " + v.warnings + " 条");
      state.working = v.id;
      return loadVersions().then(refresh);
    }).catch(failed("上传"));
  });
  $("pl-compare").addEventListener("click", function () {
    var a = Number($("pl-cmp-a").value), b = Number($("pl-cmp-b").value);
    var out = $("pl-compare-out");
    if (a === b) { toast("请选择两个不同的版本", true); return; }
    api("GET", V + "/" + a + "/impact?against=" + b).then(function (imp) {
      var link = $("pl-diff-link");
      link.href = "/maps/versions/" + a + "/diff?against=" + b;
      link.hidden = false;
      out.textContent = "";
      var t = el("table", "pl-table");
      var head = el("tr");
      ["变化", "网格", "名称"].forEach(function (h) { head.appendChild(el("th", null, h)); });
      t.appendChild(head);
      [["新增", imp.grids.new], ["撤销", imp.grids.removed], ["变更", imp.grids.changed]]
        .forEach(function (group) {
          group[1].slice(0, 40).forEach(function (g) {
            var tr = el("tr");
            tr.appendChild(el("td", null, group[0]));
            tr.appendChild(el("td", null, g.code));
            tr.appendChild(el("td", null, g.name || ""));
            t.appendChild(tr);
          });
        });
      var s = imp.grids.summary;
      out.appendChild(el("p", null, "新增 " + s.new + " · 撤销 " + s.removed + " · 变更 " +
                         s.changed + " · 迁移户数约 " + Math.round(s.households_shifted_est)));
      out.appendChild(t);
      if (a === state.working) {
        state.diff = { added: imp.grids.new.map(function (x) { return x.code; }),
                       changed: imp.grids.changed.map(function (x) { return x.code; }) };
        paint();
      }
    }).catch(failed("比较"));
  });
  $("pl-renumber").addEventListener("click", function () {
    api("POST", V + "/" + state.working + "/renumber").then(function (r) {
      toast("重新编号完成：改号 " + Object.keys(r.renamed).length + " 个，沿用现行编号 " +
            r.kept_from_version_in_force + " 个");
      return refresh();
    }).catch(failed("重新编号"));
  });
  $("pl-upload-file").addEventListener("change", function (e) {
    var f = e.target.files[0];
    $("pl-upload-name").textContent = f ? f.name : "未选择文件";
  });
  $("pl-effective").value = today();
  $("pl-publish").addEventListener("click", function () {
    var day = $("pl-effective").value;
    if (!day) { toast("请填写生效日期", true); return; }
    api("POST", V + "/" + state.working + "/publish", { effective_from: day }).then(function () {
      toast("已发布，" + day + " 起生效");
      state.published = state.working;
      return loadVersions().then(refresh);
    }).catch(failed("发布"));
  });
  $("pl-rollback").addEventListener("click", function () {
    var btn = $("pl-rollback");
    var latest = state.versions.filter(function (v) { return v.status === "published"; })
      .sort(function (a, b) { return a.effective_from < b.effective_from ? 1 : -1; })[0];
    if (!latest) { toast("没有可以回滚的已发布版本", true); return; }
    if (!state.rollbackArmed) {
      state.rollbackArmed = true;
      btn.textContent = "再次点击，确认回滚 " + latest.label;
      setTimeout(function () { state.rollbackArmed = false; btn.textContent = "回滚最近一次发布"; },
                 6000);
      return;
    }
    state.rollbackArmed = false;
    btn.textContent = "回滚最近一次发布";
    api("POST", V + "/" + latest.id + "/rollback").then(function () {
      toast("已回滚 " + latest.label + "，上一版本重新生效");
      return loadVersions().then(refresh);
    }).catch(failed("回滚"));
  });
  window.plannerIdle = function () { return state.busy === 0 && !!state.refreshed; };
})();
