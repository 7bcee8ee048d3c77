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
AREA_FIELDS: Final = (("code", "Grid code"), ("name", "Name"), ("unit", "Responsible unit"))


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
    if k <= 1:
        return f"No small-count suppression (k = {k})."
    hidden = ", ".join(f"{n} {what}" for what, n in counts.items())
    return f"Features of 1–{k - 1} reports are hidden (k = {k}): {hidden}."


BOUNDARY_STYLES: Final = {"community": ("#1f5fa8", 1.6), "town": ("#222222", 2.6)}

LegendLayer = tuple[Layer, str, list[tuple[str, str]]]


def _boundaries(conn: Connection, level: str) -> LegendLayer:
    """An outline overlay of the ``level`` areas, with its legend row."""
    colour, weight = BOUNDARY_STYLES[level]
    title = f"{level.title()} boundaries"
    layer = boundary_layer(area_data.areas(conn, level), title, outline(colour, weight))
    return layer, title, [(colour, f"{level} boundary")]


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
        rows.append((SUPPRESSED_COLOUR, f"1–{k - 1} (hidden)"))
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
        name=f"Reports per H3 cell (resolution {res})",
        fields=(("cell", "H3 cell"), ("n", "Reports")),
        styles=count_styles(list(cells["n"]), cell_breaks),
        id_column="cell",
    )
    grid_layer = geojson_layer(
        grids,
        name="Reports per grid",
        fields=(*AREA_FIELDS, ("n", "Reports"), ("per_household", "Reports per household")),
        styles=count_styles(list(grids["n"]), grid_breaks, _hidden(grids)),
        id_column="code",
        show=False,
    )
    centres = shapely.centroid(np.asarray(cells.geometry.values))
    top = float(cells["n"].max()) if len(cells) else 1.0
    points = [
        (float(c.y), float(c.x), float(n) / top) for c, n in zip(centres, cells["n"], strict=True)
    ]
    surface = heat_surface(points, "Heat surface (H3 cell centres)")

    m = operator_map(study_bounds(conn, q), basemap=ctx.basemap, title="Heat · geo_service")
    drawn = int(cells["n"].sum())
    panel = panel_html(
        "heat",
        "Heat: reports per place",
        q,
        summary=[
            f"{drawn} reports in {len(cells)} H3 cells drawn at resolution {res}.",
            _suppression_note(
                ctx.k, {"cells": cells.attrs["suppressed"], "grids": grids.attrs["suppressed"]}
            ),
            f"Boundary version {grids.attrs.get('version')}.",
        ],
        notices=[] if len(cells) else ["No report matches these filters."],
        singles=[res_choice(res, [r for r in HEAT_RES if r <= ctx.max_res] or [res])],
    )
    return _finish(
        m,
        [
            (cell_layer, "Reports per H3 cell", _count_rows(cell_breaks, ctx.k, areas=False)),
            (grid_layer, "Reports per grid", _count_rows(grid_breaks, ctx.k, areas=True)),
            surface,
            _boundaries(conn, "town"),
        ],
        panel,
    )


# --------------------------------------------------------------------------- hot spots


def _hotspot_frame(
    conn: Connection, q: MapQuery, ctx: PageContext, what: str, **kw: Any
) -> tuple[gpd.GeoDataFrame | None, str | None]:
    """Gi* suppressed for the page, or None and the reason it cannot be computed."""
    try:
        frame = hotspots.hotspots(conn, q.analysis_filter, **kw)
    except InvalidInput as exc:
        return None, f"Gi* on {what}: {exc.message}"
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
    cells, cell_note = _hotspot_frame(conn, q, ctx, f"H3 cells (resolution {res})", res=res)
    grids, grid_note = _hotspot_frame(conn, q, ctx, "grids", level="grid")
    gi = (("n", "Reports"), ("z", "Gi* z-score"), ("q", "p (FDR)"), ("confidence", "Class"))
    layers: list[LegendLayer | Layer] = []
    summary = []
    if cells is not None:
        layer = geojson_layer(
            cells,
            name=f"Gi* on H3 cells (resolution {res})",
            fields=(("cell", "H3 cell"), *gi),
            styles=class_styles(list(cells["class"])),
            id_column="cell",
        )
        layers.append((layer, "Gi* hot spots, H3 cells", _class_rows()))
        band = cells.attrs.get("distance_band_m")
        summary.append(f"H3: {cells.attrs.get('features')} cells, distance band {band} m.")
    if grids is not None:
        layer = geojson_layer(
            grids,
            name="Gi* on grids (queen contiguity)",
            fields=(*AREA_FIELDS, *gi),
            styles=class_styles(list(grids["class"])),
            id_column="code",
            show=cells is None,
        )
        rows = _class_rows()
        if ctx.k > 1:
            rows.append((SUPPRESSED_COLOUR, f"1–{ctx.k - 1} reports (hidden)"))
        layers.append((layer, "Gi* hot spots, grids", rows))
        summary.append(f"Grids: {grids.attrs.get('features')} grids, queen contiguity.")
    summary.append("Classes after the False Discovery Rate correction.")
    summary.append(
        _suppression_note(
            ctx.k,
            {
                what: int(fr.attrs["suppressed"])
                for what, fr in (("cells", cells), ("grids", grids))
                if fr is not None
            },
        )
    )
    layers.append(_boundaries(conn, "town"))
    m = operator_map(study_bounds(conn, q), basemap=ctx.basemap, title="Hot spots · geo_service")
    panel = panel_html(
        "hotspots",
        "Hot spots: Getis-Ord Gi*",
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
        ("reports", "Reports"),
        ("open", "Open cases"),
        ("overdue", "Overdue cases"),
        ("supervised_open", "Supervised, open"),
        ("households", "Households"),
    )
    shown = frame[~frame["suppressed"]]
    layers: list[LegendLayer | Layer] = []
    for column, title in (("open", "Open cases per grid"), ("overdue", "Overdue cases per grid")):
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
            rows.append((SUPPRESSED_COLOUR, f"grid of 1–{ctx.k - 1} reports (hidden)"))
        layers.append((layer, title, rows))
    layers.append(_boundaries(conn, "community"))
    layers.append(_boundaries(conn, "town"))
    m = operator_map(study_bounds(conn, q), basemap=ctx.basemap, title="Grids · geo_service")
    panel = panel_html(
        "grids",
        "Grids: case stages",
        q,
        summary=[
            f"{len(frame)} grids; {int(shown['open'].sum())} open and "
            f"{int(shown['overdue'].sum())} overdue cases drawn.",
            _suppression_note(ctx.k, {"grids": int(frame.attrs["suppressed"])}),
            f"Boundary version {frame.attrs.get('version')}.",
        ],
    )
    return _finish(m, layers, panel)
