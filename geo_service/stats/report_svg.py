"""A small SVG writer for the printed reports: bar and line charts of a period's series and a
map of area outlines filled by class. Plain SVG elements to inline in HTML (the HTML parser
gives them their namespace, so no ``xmlns``), no script, no link, no network: a browser and
WeasyPrint draw them the same.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

import shapely
from shapely.geometry.base import BaseGeometry

FONT: Final = "'Noto Sans CJK SC', 'Noto Sans CJK', sans-serif"
INK: Final = "#1f2933"
GRID_LINE: Final = "#d9dee4"
MUTED: Final = "#6b7785"


def _f(x: float) -> str:
    """A coordinate with at most one decimal (small files, no visible loss)."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, s: str, size: float = 12, anchor: str = "start",
          fill: str = INK, weight: str = "normal") -> str:  # fmt: skip
    return (
        f'<text x="{_f(x)}" y="{_f(y)}" font-size="{_f(size)}" text-anchor="{anchor}" '
        f'fill="{fill}" font-weight="{weight}">{escape(s)}</text>'
    )


def _svg(width: float, height: float, body: Iterable[str], label: str) -> str:
    return (
        f'<svg width="{_f(width)}" height="{_f(height)}" '
        f'viewBox="0 0 {_f(width)} {_f(height)}" role="img" aria-label="{escape(label)}" '
        f'font-family="{escape(FONT)}">' + "".join(body) + "</svg>"
    )


def nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10ⁿ at or above ``value`` (1 for nothing), for an axis."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


@dataclass(frozen=True)
class Series:
    """One named series of a chart (None: no value at that step) and its colour."""

    name: str
    values: Sequence[float | None]
    colour: str


def _legend(series: Sequence[Series], x: float, y: float) -> list[str]:
    out = []
    for s in series:
        out.append(f'<rect x="{_f(x)}" y="{_f(y - 10)}" width="12" height="12" fill="{s.colour}"/>')
        out.append(_text(x + 16, y, s.name, 12))
        x += 24 + 13 * len(s.name)
    return out


def axis_step(value: float) -> tuple[float, int]:
    """A round step (1, 2 or 5 × 10ⁿ) and how many of them reach ``value`` (at most 5), for
    an axis from 0; (1, 1) for nothing."""
    if value <= 0 or not math.isfinite(value):
        return 1.0, 1
    step = 10.0 ** math.floor(math.log10(value / 5))
    for m in (1, 2, 5, 10):
        if m * step * 5 >= value:
            step *= m
            break
    return step, max(1, math.ceil(value / step - 1e-9))


def _axes(
    labels: Sequence[str], top: float, left: float, width: float, height: float,
    step: float, ticks: int, percent: bool,
) -> list[str]:  # fmt: skip
    """Horizontal grid lines with their values, and every n-th step's label below."""
    out = []
    for i in range(ticks + 1):
        v = step * i
        y = top + height - height * i / ticks
        out.append(
            f'<line x1="{_f(left)}" y1="{_f(y)}" x2="{_f(left + width)}" y2="{_f(y)}" '
            f'stroke="{GRID_LINE}" stroke-width="1"/>'
        )
        tick = f"{v * 100:.0f}%" if percent else (f"{v:,.0f}" if step >= 1 else f"{v:g}")
        out.append(_text(left - 6, y + 4, tick, 11, "end", MUTED))
    every = max(1, math.ceil(len(labels) / 12))
    slot = width / max(1, len(labels))
    for i, label in enumerate(labels):
        if i % every == 0:
            out.append(
                _text(left + slot * (i + 0.5), top + height + 16, label, 11, "middle", MUTED)
            )
    return out


def bar_chart(
    labels: Sequence[str], series: Sequence[Series], title: str,
    width: float = 900, height: float = 260,
) -> str:  # fmt: skip
    """Grouped bars, one group per step (``labels``), one bar per series."""
    left, top, right, bottom = 56.0, 44.0, 12.0, 28.0
    w, h = width - left - right, height - top - bottom
    values = [v for s in series for v in s.values if v is not None]
    step, ticks = axis_step(max(values, default=0.0))
    y_max = step * ticks
    out = [_text(left, 18, title, 14, weight="bold"), *_legend(series, left, 36)]
    out += _axes(labels, top, left, w, h, step, ticks, percent=False)
    slot = w / max(1, len(labels))
    bar = slot * 0.8 / max(1, len(series))
    for j, s in enumerate(series):
        for i, v in enumerate(s.values):
            if not v:
                continue
            bh = h * v / y_max
            x = left + slot * i + slot * 0.1 + bar * j
            out.append(
                f'<rect x="{_f(x)}" y="{_f(top + h - bh)}" width="{_f(max(bar - 1, 0.5))}" '
                f'height="{_f(bh)}" fill="{s.colour}"/>'
            )
    return _svg(width, height, out, title)


def line_chart(
    labels: Sequence[str], series: Sequence[Series], title: str, *, percent: bool = True,
    width: float = 900, height: float = 260,
) -> str:  # fmt: skip
    """Lines with dots, one per series; a step without a value breaks the line."""
    left, top, right, bottom = 56.0, 44.0, 12.0, 28.0
    w, h = width - left - right, height - top - bottom
    values = [v for s in series for v in s.values if v is not None]
    step, ticks = (0.25, 4) if percent else axis_step(max(values, default=0.0))
    y_max = step * ticks
    out = [_text(left, 18, title, 14, weight="bold"), *_legend(series, left, 36)]
    out += _axes(labels, top, left, w, h, step, ticks, percent)
    slot = w / max(1, len(labels))
    for n, s in enumerate(series):  # earlier lines wider, so equal values still show
        stroke = 2 + 1.5 * (len(series) - 1 - n)
        runs: list[list[tuple[float, float]]] = [[]]
        for i, v in enumerate(s.values):
            if v is None:
                runs.append([])
                continue
            runs[-1].append((left + slot * (i + 0.5), top + h - h * min(v, y_max) / y_max))
        for run in runs:
            if len(run) > 1:
                points = " ".join(f"{_f(x)},{_f(y)}" for x, y in run)
                out.append(
                    f'<polyline points="{points}" fill="none" stroke="{s.colour}" '
                    f'stroke-width="{_f(stroke)}"/>'
                )
            for x, y in run:
                out.append(f'<circle cx="{_f(x)}" cy="{_f(y)}" r="2.5" fill="{s.colour}"/>')
    return _svg(width, height, out, title)


def hbar_chart(
    labels: Sequence[str], values: Sequence[float | None], colours: Sequence[str], title: str,
    *, width: float = 900, maximum: float = 100.0,
) -> str:  # fmt: skip
    """One horizontal bar per label (a score out of ``maximum``), its value at its end."""
    row, top, left = 22.0, 30.0, 170.0
    height = top + row * len(labels) + 10
    w = width - left - 60
    out = [_text(0, 18, title, 14, weight="bold")]
    for i, (label, v, colour) in enumerate(zip(labels, values, colours, strict=True)):
        y = top + row * i
        out.append(_text(left - 8, y + 15, label, 12, "end"))
        if v is None:
            out.append(_text(left + 4, y + 15, "—", 12, fill=MUTED))
            continue
        bw = w * max(0.0, min(v, maximum)) / maximum
        out.append(
            f'<rect x="{_f(left)}" y="{_f(y + 3)}" width="{_f(bw)}" height="{_f(row - 6)}" '
            f'fill="{colour}"/>'
        )
        out.append(_text(left + bw + 6, y + 15, f"{v:.1f}", 12))
    return _svg(width, height, out, title)


# --------------------------------------------------------------------------- map


@dataclass(frozen=True)
class Shape:
    """One area to draw: its outline (lon/lat) and fill colour."""

    geometry: BaseGeometry
    fill: str


def _rings(geom: BaseGeometry) -> Iterable[Sequence[tuple[float, float]]]:
    for poly in getattr(geom, "geoms", [geom]):
        if poly.is_empty or poly.geom_type != "Polygon":
            continue
        yield poly.exterior.coords
        for hole in poly.interiors:
            yield hole.coords


def area_map(
    shapes: Sequence[Shape], outlines: Sequence[BaseGeometry], legend: Sequence[tuple[str, str]],
    title: str, *, labels: Sequence[tuple[BaseGeometry, str]] = (), max_width: float = 900,
    height: float = 600,
) -> str:  # fmt: skip
    """Areas filled by class (thin white edges), heavier ``outlines`` on top (e.g. towns)
    named by ``labels`` (placed at a point inside each), a legend of (colour, label) beside
    the map and a scale bar; lon/lat drawn equirectangular at the map's middle latitude,
    simplified to about a pixel. The map is as wide as its shape needs."""
    geoms = [s.geometry for s in shapes] + list(outlines)
    if not geoms:
        return _svg(max_width, 60, [_text(0, 30, title + "：无区域", 14)], title)
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    k = math.cos(math.radians((miny + maxy) / 2))
    top, pad, legend_w = 30.0, 6.0, 170.0
    avail_w, avail_h = max_width - legend_w - 2 * pad, height - top - 2 * pad
    scale = min(avail_w / max((maxx - minx) * k, 1e-9), avail_h / max(maxy - miny, 1e-9))
    map_w = (maxx - minx) * k * scale
    width = max(map_w + 2 * pad + legend_w, 420.0)
    tolerance = 0.8 / scale

    def xy(x: float, y: float) -> tuple[float, float]:
        return pad + (x - minx) * k * scale, top + pad + (maxy - y) * scale

    def path(geom: BaseGeometry) -> str:
        geom = geom.simplify(tolerance, preserve_topology=True)
        parts = []
        for ring in _rings(geom):
            pts = ["{} {}".format(*map(_f, xy(x, y))) for x, y in ring]
            parts.append("M" + "L".join(pts) + "Z")
        return "".join(parts)

    out = [_text(0, 18, title, 14, weight="bold")]
    for s in shapes:
        d = path(s.geometry)
        if d:
            out.append(
                f'<path d="{d}" fill="{s.fill}" fill-rule="evenodd" stroke="#ffffff" '
                'stroke-width="0.3"/>'
            )
    for g in outlines:
        d = path(g)
        if d:
            out.append(f'<path d="{d}" fill="none" stroke="{INK}" stroke-width="1.2"/>')
    for g, name in labels:
        p = g.representative_point()
        x, y = xy(p.x, p.y)
        out.append(
            f'<text x="{_f(x)}" y="{_f(y)}" font-size="12" text-anchor="middle" fill="#ffffff" '
            f'stroke="#ffffff" stroke-width="3" opacity="0.85">{escape(name)}</text>'
        )
        out.append(_text(x, y, name, 12, "middle", INK, "bold"))
    lx = pad + map_w + 24
    for i, (colour, label) in enumerate(legend):
        y = top + 20 + 22 * i
        out.append(
            f'<rect x="{_f(lx)}" y="{_f(y - 11)}" width="14" height="14" fill="{colour}" '
            f'stroke="{GRID_LINE}"/>'
        )
        out.append(_text(lx + 20, y + 1, label, 12))
    # a scale bar of a round number of kilometres, about a fifth of the map wide
    km_per_px = 111.32 / scale
    km = nice_max(km_per_px * map_w / 5) / 2
    bar = km / km_per_px
    y = height - 14
    out.append(
        f'<line x1="{_f(lx)}" y1="{_f(y)}" x2="{_f(lx + bar)}" y2="{_f(y)}" '
        f'stroke="{INK}" stroke-width="2"/>'
    )
    out.append(_text(lx, y - 6, f"{km:g} 公里", 11))
    return _svg(width, height, out, title)
