"""The diff map of a draft against a base version: a folium page on the service's own assets.

Draft grids in the communities a draft touches, coloured by what happened to them (new,
geometry changed, attributes only, unchanged), the removed base grids as red dashed outlines,
the base grids' outlines (off at first) and the draft's community boundaries. The page shows
layout data only (codes, names, households, areas), never personal data or case figures; it
is for signed-in planners, operators and admins (the route checks). The page is in Chinese.
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
    "new": "新增网格",
    "changed": "边界变化",
    "attributes": "仅属性变化",
    "unchanged": "未变化",
}
REMOVED_COLOUR: Final = "#d73027"
_KIND_NAMES: Final = {**KIND_LABELS, "removed": "撤销"}  # what the hover says
FIELDS: Final = (
    ("code", "网格编码"),
    ("name", "名称"),
    ("kind", "变化"),
    ("households", "户数"),
    ("area_m2", "面积（m²）"),
)


def _public(frame: gpd.GeoDataFrame, kinds: list[str]) -> gpd.GeoDataFrame:
    """Code, name, change, households and area of each grid (no other attribute)."""
    households = pd.to_numeric(frame["households"], errors="coerce")
    return gpd.GeoDataFrame(
        {
            "code": frame["code"].to_numpy(),
            "name": frame["name"].to_numpy(),
            "kind": [_KIND_NAMES[k] for k in kinds],
            "households": [None if pd.isna(h) else int(h) for h in households],
            "area_m2": [round(float(a)) for a in area_m2(frame.geometry.to_numpy())],
        },
        geometry=frame.geometry.to_numpy(),
        crs="EPSG:4326",
    )


def _panel(base: Side, draft: Side, diff: GridDiff) -> str:
    s = diff.summary()
    lines = [
        f"草案 {draft.info.label} 对比 {base.info.label}。",
        f"新增 {s['new']} 个、撤销 {s['removed']} 个、变化 {s['changed']} 个网格"
        f"（其中边界变化 {s['geometry_changed']} 个）；未变化 {s['unchanged']} 个。",
        f"改变所属网格的土地 {s['area_shifted_m2'] / 1e6:.3f} km²，约 "
        f"{s['households_shifted_est']:.0f} 户。",
        f"案件影响：GET /v1/boundaries/versions/{draft.info.id}/impact（规划、值班、管理员）。",
    ]
    body = "".join(f"<div>{escape(line)}</div>" for line in lines)
    return f'<div class="gs-title">网格边界对比</div><div class="gs-summary">{body}</div>'


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
        (float(minx), float(miny), float(maxx), float(maxy)), title="网格边界对比 · 网格化治理"
    )
    kinds = [diff.draft_kind.get(c, "unchanged") for c in shown["code"]]
    draft_layer = geojson_layer(
        _public(shown, kinds),
        name="草案网格（按变化着色）",
        fields=FIELDS,
        styles=[fill(KIND_COLOURS[k], 0.2 if k == "unchanged" else 0.7) for k in kinds],
        id_column="code",
        overlay=True,
    )
    removed_layer = geojson_layer(
        _public(removed, ["removed"] * len(removed)),
        name="撤销的网格（原版本）",
        fields=FIELDS,
        styles=[{**outline(REMOVED_COLOUR, 2.5), "dashArray": "6 4"}] * len(removed),
        id_column="code",
        overlay=True,
    )
    base_lines = boundary_layer(
        b.loc[b["code"].str[:12].isin(communities)], "原版本网格轮廓", outline("#333333", 1.0)
    )
    base_lines.show = False
    comm = draft.areas.loc[draft.areas["level"] == "community"]
    comm_lines = boundary_layer(comm, "村(社区)边界", outline("#1f5fa8", 1.6))
    legend = Legend()
    for layer in (draft_layer, removed_layer, base_lines, comm_lines):
        layer.add_to(m)
    folium.LayerControl(position="topright", collapsed=False).add_to(m)
    Panel(_panel(base, draft, diff)).add_to(m)
    legend.add(draft_layer, "草案网格", [(KIND_COLOURS[k], KIND_LABELS[k]) for k in KIND_LABELS])
    legend.add(removed_layer, "撤销的网格", [(REMOVED_COLOUR, "撤销（虚线轮廓）")])
    legend.add(comm_lines, "村(社区)", [("#1f5fa8", "村(社区)边界")])
    legend.add_to(m)
    return render_page(m)
