/* geo_service command-centre console: figures, trend, ranking and the situation map from the
 * service's own API (session cookie; POSTs carry the page's X-CSRF-Token), kept live by a
 * conditional poll of /v1/console/summary (ETag / If-None-Match: 304 while nothing moved).
 * Every label comes from the page's dictionary (#gs-config .i18n); nothing is fetched from
 * another host. window.gsConsole exposes the state for the browser tests. */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("gs-config").textContent);
  var T = cfg.i18n;
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var PERIODS = ["day", "week", "month"];
  var TZ = "Asia/Shanghai";
  var locale = cfg.lang === "zh" ? "zh-CN" : "en-GB";
  var state = {
    token: null, etag: null, periods: {}, figures: {}, liveIds: [], heatLoads: 0,
    figureLoads: 0, refreshes: 0, polls: 0, notModified: 0, grid: null, caseId: null,
    caseStatus: null, areas: [], busy: false, pending: false, errors: []
  };
  window.gsConsole = state;

  /* ------------------------------------------------------------------ helpers */

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { e.textContent = attrs[k]; }
      else if (k === "cls") { e.className = attrs[k]; }
      else { e.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { e.appendChild(c); } });
    return e;
  }

  function query(params) {
    var q = new URLSearchParams();
    Object.keys(params).forEach(function (k) {
      var v = params[k];
      if (v !== null && v !== undefined && v !== "") { q.set(k, v); }
    });
    var s = q.toString();
    return s ? "?" + s : "";
  }

  /* a 429 (the session's rate for costly calls is spent) waits as long as the server's
   * Retry-After says and asks again, twice at most, so a busy wall screen falls behind by
   * seconds instead of showing an error */
  function getJSON(path, params, retries) {
    var left = retries === undefined ? 2 : retries;
    return fetch(path + query(params || {}), {
      credentials: "same-origin", headers: { Accept: "application/json" }
    }).then(function (r) {
      if (r.status === 429 && left > 0) {
        var wait = Math.min(30, Math.max(1, Number(r.headers.get("Retry-After")) || 1));
        return new Promise(function (done) { window.setTimeout(done, wait * 1000); })
          .then(function () { return getJSON(path, params, left - 1); });
      }
      if (!r.ok) {
        return r.json().catch(function () { return {}; }).then(function (b) {
          throw new Error(b.message || b.detail || ("HTTP " + r.status));
        });
      }
      return r.json();
    });
  }

  function postJSON(path, body) {
    return fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json",
                 "X-CSRF-Token": csrf },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (b) {
        if (!r.ok) { throw new Error(b.message || b.detail || ("HTTP " + r.status)); }
        return b;
      });
    });
  }

  function num(v) { return v === null || v === undefined ? T.text.none : Number(v).toLocaleString(locale); }
  function pct(v) { return v === null || v === undefined ? T.text.none : (100 * v).toFixed(1) + "%"; }
  function dec(v) { return v === null || v === undefined ? T.text.none : Number(v).toFixed(1); }
  var FORMAT = {
    reported: num, accepted: num, closed: num, overdue_open: num,
    closure_rate: pct, on_time_rate: pct, median_minutes_to_dispatch: dec
  };

  var timeFmt = new Intl.DateTimeFormat(locale, {
    timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", hour12: false
  });
  var clockFmt = new Intl.DateTimeFormat(locale, {
    timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit", weekday: "short",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false
  });
  var shortFmt = new Intl.DateTimeFormat(locale, {
    timeZone: TZ, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false
  });
  function when(iso) { return iso ? timeFmt.format(new Date(iso)) : T.text.none; }

  function took(seconds) {
    if (seconds === null || seconds === undefined) { return T.text.none; }
    var s = Math.round(seconds);
    if (s < 60) { return s + T.text.seconds; }
    var m = Math.round(s / 60);
    if (m < 60) { return m + T.text.minutes; }
    var h = Math.floor(m / 60);
    if (h < 48) { return h + T.text.hours + (m % 60 ? " " + (m % 60) + T.text.minutes : ""); }
    return Math.floor(h / 24) + T.text.days + (h % 24 ? " " + (h % 24) + T.text.hours : "");
  }

  function rem() { return parseFloat(getComputedStyle(document.documentElement).fontSize) || 16; }

  function fail(where, err) {
    state.errors.push(where + ": " + err.message);
    document.getElementById("live").classList.add("stale");
  }

  /* ------------------------------------------------------------------ filters */

  var form = document.getElementById("filters");
  function filters() {
    var f = new FormData(form);
    return {
      period: f.get("period") || "month",
      area: f.get("community") || f.get("town") || "",
      category: f.get("category") || "",
      channel: f.get("channel") || "",
      status: f.get("status") || ""
    };
  }

  function fillSelect(name, entries) {
    var sel = form.elements[name];
    entries.forEach(function (e) { sel.appendChild(el("option", { value: e[0], text: e[1] })); });
  }
  fillSelect("category", Object.entries(T.categories));
  fillSelect("channel", Object.entries(T.channels));
  fillSelect("status", [["open", T.text.open], ["closed", T.text.closed_cases]]
    .concat(Object.entries(T.statuses)));

  function fillCommunities() {
    var sel = form.elements.community;
    var town = form.elements.town.value;
    while (sel.options.length > 1) { sel.remove(1); }
    state.areas.filter(function (a) {
      return a.level === "community" && (!town || a.parent_code === town);
    }).forEach(function (a) { sel.appendChild(el("option", { value: a.code, text: a.name })); });
  }

  form.addEventListener("change", function (ev) {
    if (ev.target.name === "town") { fillCommunities(); }
    loadFigures().then(function () {
      loadMapLayers(true);
      loadTrend();
      loadRanking();
    });
  });

  /* ------------------------------------------------------------------ figures */

  function setCell(td, value, fmt) {
    var text = fmt(value);
    if (td.dataset.value !== undefined && td.dataset.value !== String(value) && td.textContent !== "–") {
      td.classList.remove("changed");
      void td.offsetWidth;
      td.classList.add("changed");
    }
    td.dataset.value = String(value);
    td.textContent = text;
  }

  function loadFigures() {
    var f = filters();
    return Promise.all(PERIODS.map(function (p) {
      return getJSON("/v1/console/figures", {
        period: p, area: f.area, category: f.category, channel: f.channel
      });
    })).then(function (answers) {
      var channelBody = document.querySelector("#channels tbody");
      if (!channelBody.rows.length) {
        Object.keys(T.channels).forEach(function (c) {
          channelBody.appendChild(el("tr", { "data-channel": c }, [
            el("th", { text: T.channels[c] }),
            el("td", { "data-period": "day", text: "–" }),
            el("td", { "data-period": "week", text: "–" }),
            el("td", { "data-period": "month", text: "–" })
          ]));
        });
      }
      answers.forEach(function (a, i) {
        var p = PERIODS[i];
        state.periods[p] = a.period;
        state.figures[p] = a.total;
        Object.keys(FORMAT).forEach(function (key) {
          var td = document.querySelector('#figures tr[data-figure="' + key + '"] td[data-period="' + p + '"]');
          setCell(td, a.total[key], FORMAT[key]);
        });
        Array.prototype.forEach.call(channelBody.rows, function (row) {
          var c = row.dataset.channel;
          var td = row.querySelector('td[data-period="' + p + '"]');
          setCell(td, a.channels[c] ? a.channels[c].reported : 0, num);
        });
      });
      channelPie(answers[PERIODS.length - 1]);
      state.figureLoads += 1;
    }).catch(function (e) { fail("figures", e); });
  }

  /* ------------------------------------------------------------------ charts */

  var CHANNEL_COLOURS = ["#37c2ff", "#3ddc84", "#ffb020", "#b18cff", "#ff6b8b"];
  var channelChart = echarts.init(document.getElementById("channel-chart"), null, { renderer: "canvas" });
  function channelPie(month) {
    var size = Math.round(rem());
    channelChart.resize();
    var data = Object.keys(T.channels).map(function (c) {
      return { name: T.channels[c], value: month.channels[c] ? month.channels[c].reported : 0 };
    });
    channelChart.setOption({
      color: CHANNEL_COLOURS,
      title: { text: T.text.month, left: "center", top: "center",
               textStyle: { color: "#8fa7c4", fontSize: size, fontWeight: 400 } },
      tooltip: { trigger: "item", textStyle: { fontSize: size } },
      series: [{ type: "pie", radius: ["42%", "68%"], data: data, minAngle: 4,
                 label: { color: "#dce8f6", fontSize: size, formatter: "{b}\n{d}%" },
                 labelLine: { length: size * 0.6, length2: size * 0.6 },
                 itemStyle: { borderColor: "#0b1a2f", borderWidth: 2 } }]
    }, true);
  }

  var trendChart = echarts.init(document.getElementById("trend"), null, { renderer: "canvas" });
  function loadTrend() {
    var f = filters();
    return getJSON("/v1/stats/trend", {
      period: "year", step: "month", by: "area", level: "district",
      area: f.area, category: f.category, channel: f.channel
    }).then(function (t) {
      var labels = t.steps.map(function (s) { return s.start.slice(0, 7); });
      var size = Math.round(rem());
      function series(name, key, colour, type) {
        return {
          name: name, type: type, data: t.total.map(function (r) { return r[key]; }),
          itemStyle: { color: colour }, lineStyle: { width: Math.max(2, size / 6) },
          symbolSize: size / 2, smooth: true, barMaxWidth: size * 1.2
        };
      }
      trendChart.setOption({
        textStyle: { fontSize: size, color: "#dce8f6" },
        grid: { left: size * 3.6, right: size * 1.2, top: size * 2.6, bottom: size * 2 },
        legend: { top: 0, textStyle: { color: "#dce8f6", fontSize: size }, itemWidth: size * 1.4, itemHeight: size * 0.8 },
        tooltip: { trigger: "axis", textStyle: { fontSize: size } },
        xAxis: { type: "category", data: labels, axisLabel: { color: "#8fa7c4", fontSize: size },
                 axisLine: { lineStyle: { color: "#1d3a5f" } } },
        yAxis: { type: "value", axisLabel: { color: "#8fa7c4", fontSize: size },
                 splitLine: { lineStyle: { color: "#14304f" } } },
        series: [
          series(T.text.reported, "reported", "#37c2ff", "bar"),
          series(T.text.closed, "closed", "#3ddc84", "line"),
          series(T.text.overdue_open, "overdue_open", "#ffb020", "line")
        ]
      }, true);
    }).catch(function (e) { fail("trend", e); });
  }
  window.addEventListener("resize", function () { trendChart.resize(); channelChart.resize(); });

  /* ------------------------------------------------------------------ ranking */

  var rankKind = "town";
  document.getElementById("rank-tabs").addEventListener("click", function (ev) {
    var b = ev.target.closest("button");
    if (!b) { return; }
    rankKind = b.dataset.rank;
    Array.prototype.forEach.call(this.querySelectorAll("button"), function (x) {
      x.classList.toggle("on", x === b);
    });
    loadRanking();
  });

  function loadRanking() {
    var f = filters();
    var params = rankKind === "unit"
      ? { by: "unit", level: "town" }
      : { by: "area", level: rankKind };
    params.period = f.period;
    params.category = f.category;
    params.channel = f.channel;
    if (rankKind === "community" && f.area) { params.area = f.area; }
    return getJSON("/v1/stats/indicators", params).then(function (t) {
      var body = document.querySelector("#ranking tbody");
      body.textContent = "";
      t.items.slice(0, 40).forEach(function (r) {
        body.appendChild(el("tr", { "data-code": r.code }, [
          el("td", { text: r.rank === null ? T.text.none : String(r.rank) }),
          el("td", { text: r.name || r.code, title: r.name || r.code }),
          el("td", { text: num(r.reported) }),
          el("td", { text: pct(r.closure_rate) }),
          el("td", { text: dec(r.score) }),
          el("td", {}, [r.grade ? el("span", {
            cls: "grade " + r.grade, text: r.grade, title: T.grades[r.grade] || ""
          }) : el("span", { text: T.text.none })])
        ]));
      });
    }).catch(function (e) { fail("ranking", e); });
  }

  /* ------------------------------------------------------------------ map */

  var EMPTY = { type: "FeatureCollection", features: [] };
  var heatColour = ["step", ["coalesce", ["get", "n"], 0], "rgba(0,0,0,0)"];
  cfg.heat_steps.forEach(function (s) { heatColour.push(s[0], s[1]); });
  var classColour = ["match", ["coalesce", ["get", "class"], ""]];
  Object.keys(cfg.classes).forEach(function (c) { classColour.push(c, cfg.classes[c]); });
  classColour.push("rgba(0,0,0,0)");
  var emergingColour = ["match", ["coalesce", ["get", "category"], ""]];
  Object.keys(cfg.emerging_colours).forEach(function (c) { emergingColour.push(c, cfg.emerging_colours[c]); });
  emergingColour.push("rgba(0,0,0,0)");

  function tiles(layer, params) {
    return { type: "vector", url: new URL("/tiles/" + layer + ".json" + query(params || {}), location.href).href };
  }

  var map = new maplibregl.Map({
    container: "map",
    center: [120.68, 30.78], zoom: 9.6,
    attributionControl: false,
    style: {
      version: 8,
      sources: {
        heat: { type: "geojson", data: EMPTY },
        hotspots: { type: "geojson", data: EMPTY },
        emerging: { type: "geojson", data: EMPTY },
        live: { type: "geojson", data: EMPTY },
        grids: tiles("grids"),
        communities: tiles("areas", { level: "community" }),
        towns: tiles("areas", { level: "town" })
      },
      layers: [
        { id: "background", type: "background", paint: { "background-color": "#06101f" } },
        { id: "towns-fill", type: "fill", source: "towns", "source-layer": "areas",
          paint: { "fill-color": "#0c2340", "fill-opacity": 0.9 } },
        { id: "heat", type: "fill", source: "heat",
          paint: { "fill-color": heatColour, "fill-opacity": 0.78 } },
        { id: "hotspots", type: "fill", source: "hotspots", layout: { visibility: "none" },
          filter: ["!=", ["get", "class"], "not_significant"],
          paint: { "fill-color": classColour, "fill-opacity": 0.72 } },
        { id: "emerging", type: "fill", source: "emerging", layout: { visibility: "none" },
          filter: ["!=", ["get", "category"], "no_pattern"],
          paint: { "fill-color": emergingColour, "fill-opacity": 0.72 } },
        { id: "grids-fill", type: "fill", source: "grids", "source-layer": "grids",
          paint: { "fill-color": "#ffffff", "fill-opacity": 0.01 } },
        { id: "grids-line", type: "line", source: "grids", "source-layer": "grids", minzoom: 12,
          paint: { "line-color": "#2a4f7a", "line-width": 0.6 } },
        { id: "communities", type: "line", source: "communities", "source-layer": "areas",
          paint: { "line-color": "#3d78b5", "line-width": 1 } },
        { id: "towns", type: "line", source: "towns", "source-layer": "areas",
          paint: { "line-color": "#7fd3ff", "line-width": 2.4 } },
        { id: "grid-selected", type: "line", source: "grids", "source-layer": "grids",
          filter: ["==", ["get", "code"], ""],
          paint: { "line-color": "#ffe14d", "line-width": 3.5 } },
        { id: "live", type: "circle", source: "live",
          paint: {
            "circle-color": ["case", ["get", "fresh"], "#ff3b6b", "#ffd166"],
            "circle-radius": ["case", ["get", "fresh"], 9, 4.5],
            "circle-stroke-color": "#06101f", "circle-stroke-width": 1.2, "circle-opacity": 0.95
          } }
      ]
    }
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
  map.addControl(new maplibregl.ScaleControl(), "bottom-right");
  state.map = map;
  var mapReady = new Promise(function (resolve) { map.on("load", resolve); });

  var labels = [];
  function placeLabels() {
    labels.forEach(function (m) { m.remove(); });
    labels = state.areas.map(function (a) {
      var div = el("div", { cls: "label " + a.level, text: a.name || a.code });
      return new maplibregl.Marker({ element: div }).setLngLat([a.lon, a.lat]).addTo(map);
    });
    zoomLabels();
  }
  function zoomLabels() {
    var z = map.getZoom();
    labels.forEach(function (m) {
      var community = m.getElement().classList.contains("community");
      m.getElement().style.display = community ? (z >= 11.3 ? "" : "none") : (z >= 13.5 ? "none" : "");
    });
  }
  map.on("zoomend", zoomLabels);

  var visible = { heat: true, hotspots: false, emerging: false, live: true };
  document.getElementById("layers").addEventListener("click", function (ev) {
    var b = ev.target.closest("button");
    if (!b) { return; }
    var id = b.dataset.layer;
    visible[id] = !visible[id];
    b.classList.toggle("on", visible[id]);
    map.setLayoutProperty(id, "visibility", visible[id] ? "visible" : "none");
    if (visible[id] && (id === "hotspots" || id === "emerging")) { loadSlowLayer(id); }
    legend();
  });

  function legend() {
    var box = document.getElementById("legend");
    box.textContent = "";
    function block(title, rows, note) {
      box.appendChild(el("h3", { text: title }));
      rows.forEach(function (r) {
        box.appendChild(el("div", { cls: "row" }, [
          el("span", { cls: "sw", style: "background:" + r[0] }), el("span", { text: r[1] })
        ]));
      });
      if (note) { box.appendChild(el("div", { cls: "note", text: note })); }
    }
    if (visible.emerging) {
      var present = state.emergingPresent || {};
      var rows = Object.keys(cfg.emerging_colours).filter(function (c) { return present[c]; })
        .map(function (c) { return [cfg.emerging_colours[c], T.emerging[c] + "（" + present[c] + "）"]; });
      if (!rows.length) { rows = [["transparent", T.text.none]]; }
      block(T.text.emerging_legend, rows, T.text.emerging_note);
    } else if (visible.hotspots) {
      block(T.text.hotspot_legend, Object.keys(cfg.classes).filter(function (c) {
        return c !== "not_significant";
      }).map(function (c) { return [cfg.classes[c], T.hotspot_classes[c]]; }));
    } else if (visible.heat) {
      var steps = cfg.heat_steps;
      block(T.text.heat_legend, steps.map(function (s, i) {
        var upper = i + 1 < steps.length ? "–" + (steps[i + 1][0] - 1) : "+";
        return [s[1], s[0] + upper];
      }));
    }
    if (visible.live) {
      block(T.text.layer_live, [["#ff3b6b", T.text.live], ["#ffd166", T.text.today]]);
    }
  }

  function layerParams() {
    var f = filters();
    var p = state.periods[f.period] || {};
    return { from: p.start, to: p.end, category: f.category, channel: f.channel,
             status: f.status, area: f.area, k: cfg.k };
  }

  function loadHeat() {
    var params = layerParams();
    params.res = 8;
    return getJSON("/v1/analytics/heat", params).then(function (fc) {
      return mapReady.then(function () {
        map.getSource("heat").setData(fc);
        state.heatLoads += 1;
        state.heatCells = fc.features.length;
      });
    }).catch(function (e) { fail("heat", e); });
  }

  var slowLoaded = {};
  function loadSlowLayer(id) {
    var params = layerParams();
    var path;
    if (id === "hotspots") { path = "/v1/analytics/hotspots"; params.res = 7; }
    else {
      path = "/v1/analytics/emerging-hotspots";
      params = { slice: "week", level: "community", category: params.category,
                 channel: params.channel, status: params.status, k: cfg.k };
    }
    slowLoaded[id] = Date.now();
    return getJSON(path, params).then(function (fc) {
      return mapReady.then(function () {
        map.getSource(id).setData(fc);
        if (id === "emerging") {
          var present = {};
          fc.features.forEach(function (ft) {
            var c = ft.properties.category;
            if (c && c !== "no_pattern") { present[c] = (present[c] || 0) + 1; }
          });
          state.emergingPresent = present;
          legend();
        }
      });
    }).catch(function (e) {
      /* too few reports for Gi* in a narrow filter is a 422: an empty layer, said in the legend */
      map.getSource(id) && map.getSource(id).setData(EMPTY);
      state.errors.push(id + ": " + e.message);
    });
  }

  function loadMapLayers(all) {
    var jobs = [loadHeat()];
    ["hotspots", "emerging"].forEach(function (id) {
      if (visible[id] && (all || !slowLoaded[id] || Date.now() - slowLoaded[id] > cfg.slow_ms)) {
        jobs.push(loadSlowLayer(id));
      } else if (all) { slowLoaded[id] = 0; }
    });
    return Promise.all(jobs);
  }

  function showLive(latest) {
    var fresh = {};
    var since = Date.now() - 10 * 60 * 1000;
    state.liveIds = latest.map(function (r) { return r.id; });
    var fc = {
      type: "FeatureCollection",
      features: latest.map(function (r) {
        fresh[r.id] = Date.parse(r.reported_at) >= since;
        return { type: "Feature", geometry: { type: "Point", coordinates: [r.lon, r.lat] },
                 properties: { id: r.id, status: r.status, fresh: fresh[r.id] } };
      })
    };
    return mapReady.then(function () { map.getSource("live").setData(fc); });
  }

  mapReady.then(function () {
    map.on("click", function (ev) {
      var live = map.queryRenderedFeatures(ev.point, { layers: ["live"] });
      if (live.length) { openCase(live[0].properties.id); return; }
      var hit = map.queryRenderedFeatures(ev.point, { layers: ["grids-fill"] });
      if (hit.length) { openGrid(hit[0].properties.code, hit[0].properties.name); }
    });
    map.on("mousemove", function (ev) {
      var n = map.queryRenderedFeatures(ev.point, { layers: ["live", "grids-fill"] }).length;
      map.getCanvas().style.cursor = n ? "pointer" : "";
    });
  });

  /* ------------------------------------------------------------------ live */

  var liveBadge = document.getElementById("live");
  function poll() {
    /* cache "no-cache": the browser revalidates its copy with If-None-Match (the server's
     * ETag) and the server answers 304 while nothing moved; the script then reads the cached
     * copy, whose token is unchanged (a page-set If-None-Match would turn each 304 into an
     * aborted request in Chromium's log) */
    state.polls += 1;
    return fetch("/v1/console/summary", {
      credentials: "same-origin", cache: "no-cache", headers: { Accept: "application/json" }
    })
      .then(function (r) {
        liveBadge.classList.remove("stale");
        if (r.status === 304) { state.notModified += 1; return null; }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        state.etag = r.headers.get("ETag");
        return r.json();
      })
      .then(function (s) {
        document.getElementById("updated").textContent = shortFmt.format(new Date());
        if (!s) { return null; }
        if (s.token === state.token) { state.notModified += 1; return null; }
        var changed = state.token !== null;
        state.token = s.token;
        showLive(s.latest);
        if (changed) { return refresh(); }
        return null;
      })
      .catch(function () { liveBadge.classList.add("stale"); })
      .then(function () { window.setTimeout(poll, cfg.poll_ms); });
  }

  function refresh() {
    if (state.busy) { state.pending = true; return Promise.resolve(); }
    state.busy = true;
    liveBadge.classList.remove("flash");
    void liveBadge.offsetWidth;
    liveBadge.classList.add("flash");
    return Promise.all([loadFigures(), loadMapLayers(false), loadTrend(), loadRanking()])
      .then(function () {
        state.refreshes += 1;
        if (state.caseId) { openCase(state.caseId, true); }
        else if (state.grid) { openGrid(state.grid.code, state.grid.name, true); }
      })
      .then(function () {
        state.busy = false;
        if (state.pending) { state.pending = false; return refresh(); }
        return null;
      });
  }

  /* ------------------------------------------------------------------ drawer */

  var drawer = document.getElementById("drawer");
  var drawerBody = document.getElementById("drawer-body");
  var drawerTitle = document.getElementById("drawer-title");
  var backButton = document.getElementById("drawer-back");
  var views = {
    list: el("div", { id: "view-list" }),
    caseView: el("div", { id: "view-case" })
  };
  drawerBody.appendChild(views.list);
  drawerBody.appendChild(views.caseView);
  var caseParts = {
    facts: el("dl", { cls: "facts", id: "case-facts" }),
    minimap: el("div", { cls: "minimap", id: "case-map" }),
    timeline: el("ol", { cls: "timeline", id: "case-timeline" }),
    actions: el("div", { cls: "actions", id: "case-actions" }),
    message: el("div", { cls: "message", id: "case-message" })
  };
  views.caseView.appendChild(caseParts.facts);
  views.caseView.appendChild(caseParts.minimap);
  views.caseView.appendChild(el("h3", { text: T.text.timeline }));
  views.caseView.appendChild(caseParts.timeline);
  views.caseView.appendChild(el("h3", { text: T.text.actions }));
  views.caseView.appendChild(caseParts.actions);
  views.caseView.appendChild(caseParts.message);

  function show(view) {
    views.list.hidden = view !== "list";
    views.caseView.hidden = view !== "case";
    drawer.classList.add("open");
    drawer.setAttribute("aria-hidden", "false");
  }

  document.getElementById("drawer-close").addEventListener("click", function () {
    drawer.classList.remove("open");
    drawer.setAttribute("aria-hidden", "true");
    state.grid = null;
    state.caseId = null;
    mapReady.then(function () { map.setFilter("grid-selected", ["==", ["get", "code"], ""]); });
  });
  backButton.addEventListener("click", function () {
    if (state.grid) { state.caseId = null; openGrid(state.grid.code, state.grid.name); }
  });

  function statusPill(r) {
    var closed = r.status === "evaluated" || r.status === "rejected";
    return el("span", { cls: "pill" + (closed ? " closed" : ""), text: T.statuses[r.status] || r.status });
  }

  function openGrid(code, name, quiet) {
    state.grid = { code: code, name: name };
    mapReady.then(function () { map.setFilter("grid-selected", ["==", ["get", "code"], code]); });
    var p = layerParams();
    if (!quiet) {
      state.caseId = null;
      backButton.hidden = true;
      drawerTitle.textContent = T.text.grid + "：" + (name || code);
      views.list.textContent = T.text.loading;
      show("list");
    }
    return getJSON("/v1/reports", {
      area: code, from: p.from, to: p.to, category: p.category, channel: p.channel,
      status: p.status && p.status !== "open" && p.status !== "closed" ? p.status : "",
      limit: 100
    }).then(function (list) {
      if (state.caseId) { return; }
      views.list.textContent = "";
      views.list.appendChild(el("p", { cls: "note", text: T.text.grid_cases + "（" + list.total + "）· " + code }));
      if (!list.items.length) { views.list.appendChild(el("p", { text: T.text.no_cases })); return; }
      var ul = el("ul", { cls: "cases" });
      list.items.forEach(function (r) {
        var li = el("li", { "data-id": String(r.id) }, [
          el("span", { cls: "id", text: "#" + r.id }),
          el("span", { text: (T.categories[r.category] || r.category) + " · " + when(r.reported_at) }),
          el("span", {}, [r.overdue ? el("span", { cls: "pill overdue", text: T.text.overdue }) : null, statusPill(r)])
        ]);
        li.addEventListener("click", function () { openCase(r.id); });
        ul.appendChild(li);
      });
      views.list.appendChild(ul);
    }).catch(function (e) { views.list.textContent = T.text.failed + "：" + e.message; });
  }

  var minimap = null;
  function showOnMinimap(report) {
    var pt = { type: "FeatureCollection", features: [{ type: "Feature",
      geometry: { type: "Point", coordinates: [report.location.lon, report.location.lat] }, properties: {} }] };
    if (!minimap) {
      minimap = new maplibregl.Map({
        container: caseParts.minimap, attributionControl: false, interactive: true,
        center: [report.location.lon, report.location.lat], zoom: 15,
        style: { version: 8, sources: { grids: tiles("grids"), point: { type: "geojson", data: pt } },
          layers: [
            { id: "bg", type: "background", paint: { "background-color": "#06101f" } },
            { id: "grids", type: "line", source: "grids", "source-layer": "grids",
              paint: { "line-color": "#2a4f7a", "line-width": 1 } },
            { id: "grid", type: "fill", source: "grids", "source-layer": "grids",
              filter: ["==", ["get", "code"], report.grid_code || ""],
              paint: { "fill-color": "#ffe14d", "fill-opacity": 0.12 } },
            { id: "grid-line", type: "line", source: "grids", "source-layer": "grids",
              filter: ["==", ["get", "code"], report.grid_code || ""],
              paint: { "line-color": "#ffe14d", "line-width": 3 } },
            { id: "point", type: "circle", source: "point",
              paint: { "circle-color": "#ff3b6b", "circle-radius": 8,
                       "circle-stroke-color": "#fff", "circle-stroke-width": 2 } }
          ] }
      });
      state.minimap = minimap;
      return;
    }
    minimap.resize();
    var apply = function () {
      minimap.getSource("point").setData(pt);
      minimap.setFilter("grid", ["==", ["get", "code"], report.grid_code || ""]);
      minimap.setFilter("grid-line", ["==", ["get", "code"], report.grid_code || ""]);
      minimap.jumpTo({ center: [report.location.lon, report.location.lat], zoom: 15 });
    };
    if (minimap.loaded()) { apply(); } else { minimap.once("load", apply); }
  }

  var STEP_DEADLINE = { accept: 1, dispatch: 1, start: 1, complete: 1, "return": 1, rework: 1 };

  function openCase(id, quiet) {
    state.caseId = id;
    if (!quiet) {
      backButton.hidden = !state.grid;
      drawerTitle.textContent = T.text.case + " #" + id;
      caseParts.message.textContent = "";
      show("case");
    }
    return Promise.all([getJSON("/v1/reports/" + id), getJSON("/v1/reports/" + id + "/events")])
      .then(function (both) {
        if (state.caseId !== id) { return; }
        var r = both[0], events = both[1].items;
        state.caseStatus = r.status;
        drawerTitle.textContent = T.text.case + " #" + r.id + " · " + (T.categories[r.category] || r.category);
        var facts = [
          [T.text.status, T.statuses[r.status] || r.status],
          [T.text.channel, T.channels[r.channel] || r.channel],
          [T.text.reported_at, when(r.reported_at)],
          [T.text.unit, r.unit ? r.unit.name : T.text.none],
          [T.text.due_at, when(r.due_at) + (r.overdue ? " · " + T.text.overdue : "")],
          [T.text.grid, r.grid_code || T.text.none],
          [T.text.duplicate_of, r.duplicate_of ? "#" + r.duplicate_of : T.text.no_duplicates]
        ];
        caseParts.facts.textContent = "";
        facts.forEach(function (f) {
          caseParts.facts.appendChild(el("dt", { text: f[0] }));
          var dd = el("dd", { text: f[1] });
          if (f[0] === T.text.due_at && r.overdue) { dd.appendChild(el("span", { cls: "pill overdue", text: T.text.overdue })); }
          if (f[0] === T.text.status && r.supervised) { dd.appendChild(el("span", { cls: "pill supervised", text: T.text.supervised })); }
          if (f[0] === T.text.duplicate_of && r.duplicate_of) {
            dd.style.cursor = "pointer";
            dd.addEventListener("click", function () { openCase(r.duplicate_of); });
          }
          caseParts.facts.appendChild(dd);
        });
        showOnMinimap(r);
        var due = Date.parse(r.due_at);
        caseParts.timeline.textContent = "";
        events.forEach(function (ev) {
          var late = ev.action === "escalate_overdue" || (STEP_DEADLINE[ev.action] && Date.parse(ev.at) > due);
          var who = ev.actor || (ev.unit ? ev.unit.name : T.text.system);
          var li = el("li", { cls: late ? "late" : "", "data-action": ev.action }, [
            el("div", { cls: "step", text: (T.actions[ev.action] || ev.action) +
              (ev.to_status ? " → " + (T.statuses[ev.to_status] || ev.to_status) : "") }),
            el("div", { cls: "meta", text: T.text.when + "：" + when(ev.at) + " · " + T.text.who + "：" + who +
              (ev.unit && ev.actor ? "（" + ev.unit.name + "）" : "") + " · " + T.text.took + "：" + took(ev.duration_s) }),
            ev.note ? el("div", { cls: "note", text: T.text.note + "：" + ev.note }) : null,
            late ? el("span", { cls: "pill overdue", text: T.text.overdue }) : null
          ]);
          caseParts.timeline.appendChild(li);
        });
        renderActions(r);
      }).catch(function (e) { caseParts.message.textContent = T.text.failed + "：" + e.message; });
  }

  function renderActions(r) {
    var box = caseParts.actions;
    /* a live refresh redraws the drawer: keep what the operator is typing for this case */
    var typed = box.dataset.caseId === String(r.id) ? {
      note: (document.getElementById("action-note") || {}).value || "",
      unit: (document.getElementById("action-unit") || {}).value || ""
    } : { note: "", unit: "" };
    box.textContent = "";
    box.dataset.caseId = String(r.id);
    var moves = cfg.actions[r.status] || [];
    if (!moves.length) { box.appendChild(el("p", { text: T.text.no_actions })); return; }
    var note = el("textarea", { id: "action-note", placeholder: T.text.note_prompt });
    var unit = el("input", { id: "action-unit", placeholder: T.text.unit_code_prompt });
    note.value = typed.note;
    unit.value = typed.unit;
    box.appendChild(note);
    if (moves.some(function (m) { return m.action === "reassign"; })) { box.appendChild(unit); }
    moves.forEach(function (m) {
      var b = el("button", { type: "button", "data-action": m.action, text: T.actions[m.action] || m.action });
      b.addEventListener("click", function () { act(r.id, m, note.value.trim(), unit.value.trim()); });
      box.appendChild(b);
    });
  }

  function act(id, move, note, unitCode) {
    var msg = caseParts.message;
    var path, body;
    if (move.to) {
      path = "/v1/reports/" + id + "/transitions";
      body = { to: move.to };
      if (note) { body.note = note; }
    } else {
      if (!note) { msg.className = "message bad"; msg.textContent = T.text.note_prompt; return; }
      path = "/v1/reports/" + id + "/" + move.action;
      body = { note: note };
      if (move.action === "reassign" && unitCode) { body.unit_code = unitCode; }
    }
    msg.className = "message";
    msg.textContent = T.text.loading;
    postJSON(path, body).then(function () {
      msg.className = "message good";
      msg.textContent = (T.actions[move.action] || move.action) + " · " + T.text.done;
      caseParts.actions.dataset.caseId = "";
      return openCase(id, true);
    }).catch(function (e) {
      msg.className = "message bad";
      msg.textContent = T.text.failed + "：" + e.message;
    });
  }

  /* ------------------------------------------------------------------ start */

  var clock = document.getElementById("clock");
  function tick() { clock.textContent = clockFmt.format(new Date()); }
  tick();
  window.setInterval(tick, 1000);

  legend();
  getJSON("/v1/console/areas").then(function (a) {
    state.areas = a.items;
    fillSelect("town", a.items.filter(function (x) { return x.level === "town"; })
      .map(function (x) { return [x.code, x.name]; }));
    fillCommunities();
    return mapReady.then(function () {
      map.fitBounds([[a.bounds[0], a.bounds[1]], [a.bounds[2], a.bounds[3]]], { padding: 20, duration: 0 });
      placeLabels();
    });
  }).catch(function (e) { fail("areas", e); });
  loadFigures().then(function () {
    state.ready = true;
    loadMapLayers(true);
    poll();
  });
  loadTrend();
  loadRanking();
})();
