"""The folium operator pages: heat, hot spots and grids (case stages), built from the analyses.

Each page draws the same frames the ``/v1/analytics`` layers serve, suppressed with the same k
(features of 1 to k − 1 reports dropped, or blanked for areas), and never personal data: areas
carry their public columns and the name of their responsible unit. Pages are HTML strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from folium.map import Layer
from sqlalchemy import Connection

from geo_service.analytics import areas as area_data
from geo_service.analytics import heat, hotspots, stages
from geo_service.analytics.hotspots import why_not_zh
from geo_service.analytics.privacy import suppress
from geo_service.errors import InvalidInput
from geo_service.maps.base import Basemap, Bounds, heat_surface, operator_map, render_page
from geo_service.maps.controls import Legend, Panel
from geo_service.maps.layers import (
    CLASS_COLOURS,
    CLASS_LABELS,
    SUPPRESSED_COLOUR,
    ZERO_COLOUR,
    boundary_layer,
    class_styles,
    count_breaks,
    count_legend,
    count_styles,
    geojson_layer,
    outline,
)
from geo_service.maps.panel import panel_html, res_choice
from geo_service.maps.params import MapQuery
from geo_service.maps.units import responsible_units
from geo_service.routing import RoutingTable

HEAT_RES: Final = (6, 7, 8, 9)
HOTSPOT_RES: Final = (6, 7, 8, 9)
DEFAULT_RES: Final = 8
AREA_FIELDS: Final = (("code", "网格编码"), ("name", "名称"), ("unit", "责任单位"))


@dataclass(frozen=True)
class PageContext:
    """What every page needs besides its query: the suppression k, the routing table (for
    responsible units) and the optional internal base map."""

    k: int
    routing: RoutingTable
    basemap: Basemap | None = None
    max_res: int = 15  # the finest H3 resolution the caller may see (the select offers no finer)


def study_bounds(conn: Connection, q: MapQuery) -> Bounds:
    """The study area's extent: the area filter's polygon, else every grid."""
    minx, miny, maxx, maxy = shapely.bounds(area_data.coverage(conn, q.area))
    return float(minx), float(miny), float(maxx), float(maxy)


def _rounded(values: pd.Series, digits: int) -> list[float | None]:
    return [None if v is None or pd.isna(v) else round(float(v), digits) for v in values]


def _with_units(frame: gpd.GeoDataFrame, ctx: PageContext, level: str) -> gpd.GeoDataFrame:
    out = frame.copy()
    out["unit"] = responsible_units(ctx.routing, level, out["code"])
    return out


def _hidden(frame: gpd.GeoDataFrame) -> list[bool]:
    return [bool(v) for v in frame["suppressed"]] if "suppressed" in frame else []


def _suppression_note(k: int, counts: dict[str, int]) -> str:
    """The panel's line on small-count suppression; ``counts``: what (in Chinese) → hidden."""
    if k <= 1:
        return f"未做小数抑制（k = {k}）。"
    hidden = "，".join(f"{what} {n} 个" for what, n in counts.items())
    return f"上报数为 1–{k - 1} 件的要素已隐藏（k = {k}）：{hidden}。"


BOUNDARY_STYLES: Final = {"community": ("#1f5fa8", 1.6), "town": ("#222222", 2.6)}
BOUNDARY_TITLES: Final = {"community": "村(社区)边界", "town": "镇(街道)边界"}

LegendLayer = tuple[Layer, str, list[tuple[str, str]]]


def _boundaries(conn: Connection, level: str) -> LegendLayer:
    """An outline overlay of the ``level`` areas, with its legend row."""
    colour, weight = BOUNDARY_STYLES[level]
    title = BOUNDARY_TITLES[level]
    layer = boundary_layer(area_data.areas(conn, level), title, outline(colour, weight))
    return layer, title, [(colour, title)]


def _finish(
    m: folium.Map,
    layers: Sequence[LegendLayer | Layer],
    panel: str,
) -> str:
    """Add the layers, the switcher, the panel and the legends; the page's HTML."""
    legend = Legend()
    for item in layers:
        if isinstance(item, tuple):
            layer, title, rows = item
            layer.add_to(m)
            legend.add(layer, title, rows)
        else:
            item.add_to(m)
    folium.LayerControl(position="topright", collapsed=False).add_to(m)
    Panel(panel).add_to(m)
    legend.add_to(m)
    return render_page(m)


def _count_rows(breaks: list[int], k: int, *, areas: bool) -> list[tuple[str, str]]:
    rows = [(ZERO_COLOUR, "0")] if areas else []
    rows += count_legend(breaks, low=max(k, 1))
    if areas and k > 1:
        rows.append((SUPPRESSED_COLOUR, f"1–{k - 1}（已隐藏）"))
    return rows


def _class_rows() -> list[tuple[str, str]]:
    return [(CLASS_COLOURS[c], label) for c, label in CLASS_LABELS.items()]


# --------------------------------------------------------------------------- heat


def heat_page(conn: Connection, q: MapQuery, ctx: PageContext) -> str:
    """Reports per H3 cell and per grid (exclusive layers) and a heat surface overlay."""
    res = q.res or DEFAULT_RES
    f = q.analysis_filter
    cells = suppress(heat.heat(conn, f, res=res), ctx.k, drop=True)
    grids = suppress(heat.heat(conn, f, level="grid", per_household=True), ctx.k, drop=False)
    grids = _with_units(grids, ctx, "grid")
    grids["per_household"] = _rounded(grids["per_household"], 4)
    shown = grids[~grids["suppressed"]]

    cell_breaks = count_breaks(cells["n"])
    grid_breaks = count_breaks(shown["n"].astype("float64"))
    cell_layer = geojson_layer(
        cells,
        name=f"H3 六边形上报数（分辨率 {res}）",
        fields=(("cell", "H3 六边形"), ("n", "上报数")),
        styles=count_styles(list(cells["n"]), cell_breaks),
        id_column="cell",
    )
    grid_layer = geojson_layer(
        grids,
        name="网格上报数",
        fields=(*AREA_FIELDS, ("n", "上报数"), ("per_household", "户均上报数")),
        styles=count_styles(list(grids["n"]), grid_breaks, _hidden(grids)),
        id_column="code",
        show=False,
    )
    centres = shapely.centroid(np.asarray(cells.geometry.values))
    top = float(cells["n"].max()) if len(cells) else 1.0
    points = [
        (float(c.y), float(c.x), float(n) / top) for c, n in zip(centres, cells["n"], strict=True)
    ]
    surface = heat_surface(points, "热力面（按 H3 六边形中心）")

    m = operator_map(study_bounds(conn, q), basemap=ctx.basemap, title="上报热力 · 网格化治理")
    drawn = int(cells["n"].sum())
    panel = panel_html(
        "heat",
        "上报热力：问题在哪里",
        q,
        summary=[
            f"分辨率 {res}：{len(cells)} 个 H3 六边形，共 {drawn} 件上报。",
            _suppression_note(
                ctx.k, {"六边形": cells.attrs["suppressed"], "网格": grids.attrs["suppressed"]}
            ),
            f"边界版本 {grids.attrs.get('version')}。",
        ],
        notices=[] if len(cells) else ["没有符合筛选条件的上报。"],
        singles=[res_choice(res, [r for r in HEAT_RES if r <= ctx.max_res] or [res])],
    )
    return _finish(
        m,
        [
            (cell_layer, "H3 六边形上报数", _count_rows(cell_breaks, ctx.k, areas=False)),
            (grid_layer, "网格上报数", _count_rows(grid_breaks, ctx.k, areas=True)),
            surface,
            _boundaries(conn, "town"),
        ],
        panel,
    )


# --------------------------------------------------------------------------- hot spots


def _hotspot_frame(
    conn: Connection, q: MapQuery, ctx: PageContext, what: str, noun: str, **kw: Any
) -> tuple[gpd.GeoDataFrame | None, str | None]:
    """Gi* suppressed for the page, or None and the reason it cannot be computed."""
    try:
        frame = hotspots.hotspots(conn, q.analysis_filter, **kw)
    except InvalidInput as exc:
        return None, f"{what}未作 Gi* 分析：{why_not_zh(exc, noun)}。"
    level = kw.get("level")
    frame = suppress(frame, ctx.k, drop=level is None)
    if level is not None:
        frame = _with_units(frame, ctx, level)
    frame["z"] = _rounded(frame["z"], 2)
    frame["q"] = _rounded(frame["q"], 4)
    frame["confidence"] = [CLASS_LABELS.get(c, None) for c in frame["class"]]
    return frame, None


def hotspots_page(conn: Connection, q: MapQuery, ctx: PageContext) -> str:
    """Gi* hot and cold spots (FDR-corrected) on H3 cells and on grids, exclusive layers."""
    res = q.res or DEFAULT_RES
    cells, cell_note = _hotspot_frame(conn, q, ctx, f"H3 六边形（分辨率 {res}）", "六边形", res=res)
    grids, grid_note = _hotspot_frame(conn, q, ctx, "网格", "网格", level="grid")
    gi = (("n", "上报数"), ("z", "Gi* z 值"), ("q", "p 值（FDR 校正）"), ("confidence", "类别"))
    layers: list[LegendLayer | Layer] = []
    summary = []
    if cells is not None:
        layer = geojson_layer(
            cells,
            name=f"H3 六边形 Gi*（分辨率 {res}）",
            fields=(("cell", "H3 六边形"), *gi),
            styles=class_styles(list(cells["class"])),
            id_column="cell",
        )
        layers.append((layer, "Gi* 冷热点：H3 六边形", _class_rows()))
        band = cells.attrs.get("distance_band_m")
        summary.append(f"H3：{cells.attrs.get('features')} 个六边形，距离带 {band} 米。")
    if grids is not None:
        layer = geojson_layer(
            grids,
            name="网格 Gi*（共边共点邻接）",
            fields=(*AREA_FIELDS, *gi),
            styles=class_styles(list(grids["class"])),
            id_column="code",
            show=cells is None,
        )
        rows = _class_rows()
        if ctx.k > 1:
            rows.append((SUPPRESSED_COLOUR, f"1–{ctx.k - 1} 件上报（已隐藏）"))
        layers.append((layer, "Gi* 冷热点：网格", rows))
        summary.append(f"网格：{grids.attrs.get('features')} 个，共边共点（queen）邻接。")
    summary.append("类别经错误发现率（FDR）校正。")
    summary.append(
        _suppression_note(
            ctx.k,
            {
                what: int(fr.attrs["suppressed"])
                for what, fr in (("六边形", cells), ("网格", grids))
                if fr is not None
            },
        )
    )
    layers.append(_boundaries(conn, "town"))
    m = operator_map(study_bounds(conn, q), basemap=ctx.basemap, title="冷热点 · 网格化治理")
    panel = panel_html(
        "hotspots",
        "冷热点分析：Getis-Ord Gi*",
        q,
        summary=summary,
        notices=[n for n in (cell_note, grid_note) if n],
        singles=[res_choice(res, [r for r in HOTSPOT_RES if r <= ctx.max_res] or [res])],
    )
    return _finish(m, layers, panel)


# --------------------------------------------------------------------------- grids


def grids_page(conn: Connection, q: MapQuery, ctx: PageContext) -> str:
    """Grids with their case stages (open, overdue, supervised) and the boundaries above."""
    frame = stages.case_stages(conn, q.analysis_filter, "grid")
    frame = _with_units(suppress(frame, ctx.k, count="reports", drop=False), ctx, "grid")
    hidden = _hidden(frame)
    fields = (
        *AREA_FIELDS,
        ("reports", "上报数"),
        ("open", "未结案件"),
        ("overdue", "超期案件"),
        ("supervised_open", "督办未结"),
        ("households", "户数"),
    )
    shown = frame[~frame["suppressed"]]
    layers: list[LegendLayer | Layer] = []
    for column, title in (("open", "各网格未结案件"), ("overdue", "各网格超期案件")):
        breaks = count_breaks(shown[column].astype("float64"))
        layer = geojson_layer(
            frame,
            name=title,
            fields=fields,
            styles=count_styles(list(frame[column]), breaks, hidden),
            id_column="code",
            show=column == "open",
        )
        rows = [(ZERO_COLOUR, "0"), *count_legend(breaks)]
        if ctx.k > 1:
            rows.append((SUPPRESSED_COLOUR, f"上报 1–{ctx.k - 1} 件的网格（已隐藏）"))
        layers.append((layer, title, rows))
    layers.append(_boundaries(conn, "community"))
    layers.append(_boundaries(conn, "town"))
    m = operator_map(study_bounds(conn, q), basemap=ctx.basemap, title="网格案件 · 网格化治理")
    panel = panel_html(
        "grids",
        "网格：案件环节",
        q,
        summary=[
            f"{len(frame)} 个网格；图上未结案件 {int(shown['open'].sum())} 件，"
            f"超期 {int(shown['overdue'].sum())} 件。",
            _suppression_note(ctx.k, {"网格": int(frame.attrs["suppressed"])}),
            f"边界版本 {frame.attrs.get('version')}。",
        ],
    )
    return _finish(m, layers, panel)
