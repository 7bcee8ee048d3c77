/* geo_service vector-tile page: MapLibre GL JS drawing /tiles/{layer}.json sources, with a
 * layer switcher, legends and hover details. Configuration comes from #gs-config. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("gs-config").textContent);

  function absolute(path) { return new URL(path, window.location.href).href; }

  function source(layer, params) {
    var qs = new URLSearchParams(params || []).toString();
    return { type: "vector", url: absolute("/tiles/" + layer + ".json" + (qs ? "?" + qs : "")) };
  }

  var heatSteps = config.heat_steps;
  var heatColour = ["step", ["coalesce", ["get", "n"], 0], "rgba(0,0,0,0)"];
  heatSteps.forEach(function (s) { heatColour.push(s[0], s[1]); });
  var classColour = ["match", ["coalesce", ["get", "class"], ""]];
  config.classes.forEach(function (c) { classColour.push(c[0], c[1]); });
  classColour.push("rgba(0,0,0,0)");

  var style = {
    version: 8,
    sources: {
      grids: source("grids"),
      communities: source("areas", [["level", "community"]]),
      towns: source("areas", [["level", "town"]]),
      heat: source("heat", config.filters),
      hotspots: source("hotspots", config.filters),
      reports: source("reports", config.filters)
    },
    layers: [
      { id: "background", type: "background", paint: { "background-color": "#eef0f2" } },
      { id: "heat", type: "fill", source: "heat", "source-layer": "heat",
        paint: { "fill-color": heatColour, "fill-opacity": 0.75 } },
      { id: "hotspots", type: "fill", source: "hotspots", "source-layer": "hotspots",
        layout: { visibility: "none" },
        paint: { "fill-color": classColour, "fill-opacity": 0.75 } },
      { id: "grids", type: "fill", source: "grids", "source-layer": "grids",
        paint: { "fill-color": "#ffffff", "fill-opacity": 0.01 } },
      { id: "grids-line", type: "line", source: "grids", "source-layer": "grids",
        paint: { "line-color": "#7a7a7a", "line-width": 0.5 } },
      { id: "communities", type: "line", source: "communities", "source-layer": "areas",
        layout: { visibility: "none" },
        paint: { "line-color": "#1f5fa8", "line-width": 1.4 } },
      { id: "towns", type: "line", source: "towns", "source-layer": "areas",
        paint: { "line-color": "#222222", "line-width": 2.2 } },
      { id: "reports", type: "circle", source: "reports", "source-layer": "reports",
        paint: {
          "circle-color": "#6a1b9a", "circle-opacity": 0.8,
          "circle-stroke-color": "#ffffff", "circle-stroke-width": 1,
          "circle-radius": ["interpolate", ["linear"], ["coalesce", ["get", "n"], 1],
                            1, 3, 10, 6, 100, 14]
        } }
    ]
  };
  if (config.basemap) {
    style.sources.basemap = { type: "raster", tiles: [config.basemap.url], tileSize: 256,
                              attribution: config.basemap.attribution || "" };
    style.layers.splice(1, 0, { id: "basemap", type: "raster", source: "basemap" });
  }

  var map = new maplibregl.Map({
    container: "map",
    style: style,
    bounds: config.bounds,
    fitBoundsOptions: { padding: 20 },
    attributionControl: { compact: true }
  });
  map.addControl(new maplibregl.NavigationControl(), "top-right");
  map.addControl(new maplibregl.ScaleControl(), "bottom-left");
  window.geoMap = map;

  /* layer switcher: one check box per entry, toggling the style layers it names */
  function switcher() {
    var box = document.getElementById("gs-layers");
    config.switcher.forEach(function (entry) { box.appendChild(toggle(entry)); });
  }

  function toggle(entry) {
    var label = document.createElement("label");
    var box = document.createElement("input");
    box.type = "checkbox";
    box.name = entry.id;
    box.checked = entry.layers.every(function (id) {
      return map.getLayoutProperty(id, "visibility") !== "none";
    });
    box.addEventListener("change", function () {
      entry.layers.forEach(function (id) {
        map.setLayoutProperty(id, "visibility", box.checked ? "visible" : "none");
      });
      legend();
    });
    label.appendChild(box);
    label.appendChild(document.createTextNode(" " + entry.title));
    return label;
  }

  /* legends of the visible layers */
  function legend() {
    var box = document.getElementById("gs-legend");
    box.innerHTML = "";
    config.legends.forEach(function (section) {
      if (map.getLayoutProperty(section.layer, "visibility") === "none") { return; }
      var part = document.createElement("div");
      part.className = "gs-legend-section";
      var title = document.createElement("div");
      title.className = "gs-legend-title";
      title.textContent = section.title;
      part.appendChild(title);
      section.items.forEach(function (item) {
        var row = document.createElement("div");
        row.className = "gs-legend-row";
        var swatch = document.createElement("span");
        swatch.className = "gs-swatch";
        swatch.style.background = item[0];
        var text = document.createElement("span");
        text.textContent = item[1];
        row.appendChild(swatch);
        row.appendChild(text);
        part.appendChild(row);
      });
      box.appendChild(part);
    });
    box.hidden = !box.childNodes.length;
  }

  var ready = false;
  map.on("load", function () {
    ready = true;
    switcher();
    legend();
  });

  /* hover details: the properties config.hover names, of every feature under the pointer */
  var hoverBox = document.getElementById("gs-hover");
  var interactive = config.hover.map(function (h) { return h.layer; });
  function visible(id) { return map.getLayoutProperty(id, "visibility") !== "none"; }
  map.on("mousemove", function (e) {
    if (!ready) { return; }
    var layers = interactive.filter(visible);
    var features = layers.length ? map.queryRenderedFeatures(e.point, { layers: layers }) : [];
    hoverBox.innerHTML = "";
    var table = document.createElement("table");
    var seen = {};
    features.forEach(function (f) {
      if (seen[f.layer.id]) { return; }
      seen[f.layer.id] = true;
      config.hover.forEach(function (h) {
        if (h.layer !== f.layer.id) { return; }
        h.fields.forEach(function (pair) {
          var value = f.properties[pair[0]];
          if (value === undefined || value === null || value === "") { return; }
          var names = config.value_names[pair[0]];
          if (names && names[value] !== undefined) { value = names[value]; }
          var row = table.insertRow();
          var th = document.createElement("th");
          th.textContent = pair[1];
          row.appendChild(th);
          row.insertCell().textContent = String(value);
        });
      });
    });
    if (table.rows.length) { hoverBox.appendChild(table); }
    hoverBox.hidden = !table.rows.length;
    map.getCanvas().style.cursor = table.rows.length ? "crosshair" : "";
  });
})();
