/* geo_service operator maps (folium pages): hover details, legends, panels, filter form.
 * Values reach the page as data and are written with textContent, never as HTML. */
(function () {
  "use strict";

  function text(value, props) {
    if (value === null || value === undefined) {
      return props && props.suppressed ? "已隐藏（小数抑制）" : "\u2014";
    }
    return String(value);
  }

  function detailsTable(props, fields, aliases) {
    var table = document.createElement("table");
    fields.forEach(function (field, i) {
      var row = table.insertRow();
      var th = document.createElement("th");
      th.textContent = aliases[i];
      row.appendChild(th);
      row.insertCell().textContent = text(props[field], props);
    });
    return table;
  }

  function control(map, position, className, fill) {
    var ctl = L.control({ position: position });
    ctl.onAdd = function () {
      var div = L.DomUtil.create("div", "gs-panel " + className);
      fill(div);
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      return div;
    };
    return ctl.addTo(map);
  }

  window.GeoMaps = {
    /* onEachFeature: a sticky tooltip of the named properties and an outline on hover. */
    hover: function (fields, aliases) {
      return function (feature, layer) {
        layer.bindTooltip(function () {
          var div = document.createElement("div");
          div.className = "gs-hover";
          div.appendChild(detailsTable(feature.properties, fields, aliases));
          return div;
        }, { sticky: true });
        layer.on({
          mouseover: function (e) {
            e.target.setStyle({ weight: 3, color: "#111111" });
            if (e.target.bringToFront) { e.target.bringToFront(); }
          },
          mouseout: function (e) { e.target.setStyle(feature.properties.style || {}); }
        });
      };
    },

    /* A GeoJSON layer from the JSON element ``id``: each feature's properties.style styles it;
     * fields = [properties, labels] for the hover, or null. */
    geojson: function (id, fields, interactive) {
      var data = JSON.parse(document.getElementById(id).textContent);
      var options = {
        style: function (feature) { return feature.properties.style; },
        smoothFactor: 0.5,
        interactive: interactive
      };
      if (fields) { options.onEachFeature = window.GeoMaps.hover(fields[0], fields[1]); }
      var layer = L.geoJson(data, options);
      if (!interactive) {
        /* outlines stay above whichever exclusive layer is switched on */
        var hooked = null;
        layer.on("add", function (e) {
          var map = e.target._map;
          if (hooked === map) { return; }
          hooked = map;
          map.on("baselayerchange", function () {
            if (map.hasLayer(layer)) { layer.bringToFront(); }
          });
        });
      }
      return layer;
    },

    /* A panel of server-rendered (escaped) HTML: title, navigation, filter form, notes. */
    panel: function (map, position, html) {
      return control(map, position, "gs-side", function (div) { div.innerHTML = html; });
    },

    /* The legends of the layers on the map, kept in step with the layer switcher. */
    legend: function (map, sections) {
      var box = null;
      function refresh() {
        if (!box) { return; }
        box.innerHTML = "";
        sections.forEach(function (s) {
          if (!map.hasLayer(s.layer)) { return; }
          var part = document.createElement("div");
          part.className = "gs-legend-section";
          part.innerHTML = s.html;
          box.appendChild(part);
        });
        box.style.display = box.childNodes.length ? "" : "none";
      }
      control(map, "bottomright", "gs-legend", function (div) { box = div; });
      map.on("baselayerchange overlayadd overlayremove", refresh);
      refresh();
    }
  };

  /* The filter form leaves empty fields out of the URL it reloads with. */
  document.addEventListener("submit", function (e) {
    if (!e.target || e.target.id !== "gs-filter-form") { return; }
    Array.prototype.forEach.call(e.target.elements, function (el) {
      if (el.name && !el.value) { el.disabled = true; }
    });
  });
})();
