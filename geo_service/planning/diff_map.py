"""The diff map of a draft against a base version: a folium page on the service's own assets.

Draft grids in the communities a draft touches, coloured by what happened to them (new,
geometry changed, attributes only, unchanged), the removed base grids as red dashed outlines,
the base grids' outlines (off at first) and the draft's community boundaries. The page shows
layout data only (codes, names, households, areas), never personal data or case figures: like
the other ``/maps`` pages it needs no key, since a browser cannot send one with a page load.
"""

from __future__ import annotations

from typing import Final

import folium
import geopandas as gpd
import pandas as pd
from markupsafe import escape

from geo_service.maps.base import operator_map, render_page
from geo_service.maps.controls import Legend, Panel
from geo_service.maps.layers import boundary_layer, fill, geojson_layer, outline
from geo_service.metric import lonlat_area_m2 as area_m2
from geo_service.planning.grid_diff import GridDiff
from geo_service.planning.impact import Side

KIND_COLOURS: Final = {
    "new": "#1a9850",
    "changed": "#f46d43",
    "attributes": "#fee08b",
    "unchanged": "#d9d9d9",
}
KIND_LABELS: Final = {
    "new": "New grid",
    "changed": "Geometry changed",
    "attributes": "Attributes changed",
    "unchanged": "Unchanged",
}
REMOVED_COLOUR: Final = "#d73027"
FIELDS: Final = (
    ("code", "Grid code"),
    ("name", "Name"),
    ("kind", "Change"),
    ("households", "Households"),
    ("area_m2", "Area (m²)"),
)


def _public(frame: gpd.GeoDataFrame, kinds: list[str]) -> gpd.GeoDataFrame:
    """Code, name, change, households and area of each grid (no other attribute)."""
    households = pd.to_numeric(frame["households"], errors="coerce")
    return gpd.GeoDataFrame(
        {
            "code": frame["code"].to_numpy(),
            "name": frame["name"].to_numpy(),
            "kind": [KIND_LABELS.get(k, k) for k in kinds],
            "households": [None if pd.isna(h) else int(h) for h in households],
            "area_m2": [round(float(a)) for a in area_m2(frame.geometry.to_numpy())],
        },
        geometry=frame.geometry.to_numpy(),
        crs="EPSG:4326",
    )


def _panel(base: Side, draft: Side, diff: GridDiff) -> str:
    s = diff.summary()
    lines = [
        f"Draft {draft.info.label} against {base.info.label}.",
        f"{s['new']} new, {s['removed']} removed, {s['changed']} changed grids "
        f"({s['geometry_changed']} in geometry); {s['unchanged']} unchanged.",
        f"Land changing grid: {s['area_shifted_m2'] / 1e6:.3f} km², about "
        f"{s['households_shifted_est']:.0f} households.",
        f"Case figures: GET /v1/boundaries/versions/{draft.info.id}/impact (planner, operator, "
        "admin keys).",
    ]
    body = "".join(f"<div>{escape(line)}</div>" for line in lines)
    return f'<div class="gs-title">Boundary diff</div><div class="gs-summary">{body}</div>'


def diff_page(base: Side, draft: Side, diff: GridDiff) -> str:
    """The page's HTML (only local scripts and style sheets: checked by ``render_page``)."""
    b = base.areas.loc[base.areas["level"] == "grid"]
    d = draft.areas.loc[draft.areas["level"] == "grid"]
    touched = {k for k, v in diff.draft_kind.items() if v != "unchanged"}
    touched |= {r["code"] for r in diff.removed}
    communities = {c[:12] for c in touched}
    shown = d.loc[d["code"].str[:12].isin(communities)] if communities else d
    removed = b.loc[b["code"].isin({r["code"] for r in diff.removed})]
    focus = pd.concat([shown.geometry, removed.geometry]) if len(shown) else d.geometry
    minx, miny, maxx, maxy = gpd.GeoSeries(focus, crs="EPSG:4326").total_bounds
    m = operator_map(
        (float(minx), float(miny), float(maxx), float(maxy)), title="Boundary diff · geo_service"
    )
    kinds = [diff.draft_kind.get(c, "unchanged") for c in shown["code"]]
    draft_layer = geojson_layer(
        _public(shown, kinds),
        name="Draft grids by change",
        fields=FIELDS,
        styles=[fill(KIND_COLOURS[k], 0.2 if k == "unchanged" else 0.7) for k in kinds],
        id_column="code",
        overlay=True,
    )
    removed_layer = geojson_layer(
        _public(removed, ["removed"] * len(removed)),
        name="Removed grids (base)",
        fields=FIELDS,
        styles=[{**outline(REMOVED_COLOUR, 2.5), "dashArray": "6 4"}] * len(removed),
        id_column="code",
        overlay=True,
    )
    base_lines = boundary_layer(
        b.loc[b["code"].str[:12].isin(communities)], "Base grid outlines", outline("#333333", 1.0)
    )
    base_lines.show = False
    comm = draft.areas.loc[draft.areas["level"] == "community"]
    comm_lines = boundary_layer(comm, "Community boundaries", outline("#1f5fa8", 1.6))
    legend = Legend()
    for layer in (draft_layer, removed_layer, base_lines, comm_lines):
        layer.add_to(m)
    folium.LayerControl(position="topright", collapsed=False).add_to(m)
    Panel(_panel(base, draft, diff)).add_to(m)
    legend.add(draft_layer, "Draft grids", [(KIND_COLOURS[k], KIND_LABELS[k]) for k in KIND_LABELS])
    legend.add(removed_layer, "Removed grids", [(REMOVED_COLOUR, "removed (dashed outline)")])
    legend.add(comm_lines, "Communities", [("#1f5fa8", "community boundary")])
    legend.add_to(m)
    return render_page(m)
