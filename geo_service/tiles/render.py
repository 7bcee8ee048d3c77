"""Make one tile of a layer: pick the boundary version, the analysis and its privacy rule,
then let PostGIS encode it (:mod:`geo_service.store.tiles`). Cells of reports (heat, hot
spots, clusters) are never finer than the query's ``max_res``: the public H3 resolution
(``GEO_PRIVACY_PUBLIC_H3_RES``) for callers without an operator, planner or admin key."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Hashable
from typing import Final

import geopandas as gpd
import shapely
from sqlalchemy import Connection

from geo_service.analytics import h3sql
from geo_service.analytics.filters import AnalysisFilter
from geo_service.analytics.heat import cell_counts, heat_areas, heat_cells
from geo_service.analytics.hotspots import NotEnoughFeatures, NoVariation, hotspots
from geo_service.analytics.privacy import suppress
from geo_service.store.tiles import area_tile, features_tile, report_points_tile
from geo_service.tiles.address import Tile
from geo_service.tiles.cache import CachedTile
from geo_service.tiles.features import AnalysisCache, AreaFigures, FeatureSet, column_values
from geo_service.tiles.generations import Generation
from geo_service.tiles.prepared import PreparedVersions
from geo_service.tiles.query import TileQuery

CELL_COLUMNS: Final = (("cell", "text"), ("n", "bigint"))
STAT_COLUMNS: Final = (
    ("z", "float8"),
    ("p", "float8"),
    ("q", "float8"),
    ("gi_bin", "int"),
    ("class", "text"),
)
HOT_CELL_COLUMNS: Final = (*CELL_COLUMNS, *STAT_COLUMNS)
HEAT_AREA_COLUMNS: Final = (("n", "bigint"), ("per_household", "float8"), ("suppressed", "boolean"))
HOT_AREA_COLUMNS: Final = (("n", "bigint"), *STAT_COLUMNS, ("suppressed", "boolean"))
CLUSTER_MAX_RES: Final = 9  # clusters come from the roll-up (res 9) and never pinpoint more
Box = tuple[float, float, float, float]


@dataclasses.dataclass(frozen=True)
class RenderContext:
    """What every tile of a request shares: the generation, the analysis cache, settings."""

    generation: Generation
    analyses: AnalysisCache
    prepared: PreparedVersions
    points_min_zoom: int

    def version_id(self, conn: Connection, as_of: dt.date | None) -> int:
        """The version in force on ``as_of`` (today by default; 404 naming the day when none
        is), with its tile-ready copy up to date with the generation."""
        return self.prepared.in_force(conn, as_of or today(), self.generation.boundaries)


def _note(tile: bytes, note: str | None) -> CachedTile:
    return CachedTile.of(tile, note)


def _areas(
    conn: Connection, tile: Tile, name: str, q: TileQuery, level: str, ctx: RenderContext
) -> CachedTile:
    version_id = ctx.version_id(conn, q.as_of)
    return _note(area_tile(conn, tile, name, version_id, level), None)


def _filter(q: TileQuery) -> AnalysisFilter:
    return q.filter or AnalysisFilter()


def _cells(conn: Connection, tile: Tile, name: str, fs: FeatureSet, columns: tuple) -> CachedTile:
    part = fs.within(tile.lonlat_bounds())  # features whose bounding box meets the tile
    return _note(features_tile(conn, tile, name, part.wkb, columns, part.data), fs.note)


def _area_figures(
    conn: Connection, tile: Tile, name: str, figures: AreaFigures, columns: tuple
) -> CachedTile:
    body = area_tile(conn, tile, name, figures.version_id, figures.level, columns, figures.data)
    return _note(body, figures.note)


def _figures(
    frame: gpd.GeoDataFrame, k: int, columns: tuple, version_id: int, level: str
) -> AreaFigures:
    shown = suppress(frame, k, drop=False)
    data = {"code": column_values(shown["code"].to_numpy(), "text")}
    for column, sql_type in columns:
        values = shown[column].to_numpy() if column in shown else [None] * len(shown)
        data[column] = column_values(values, sql_type)
    return AreaFigures(version_id, level, data)


def _widened(box: Box, metres: float) -> Box:
    """``box`` (degrees) grown by ``metres`` on every side: every cell meeting the tile has
    its centre inside when ``metres`` is over a cell's radius."""
    lat = max(abs(box[1]), abs(box[3]))
    dy = metres / 111_320.0
    dx = dy / max(math.cos(math.radians(lat)), 0.01)
    return box[0] - dx, box[1] - dy, box[2] + dx, box[3] + dy


def _key(kind: str, q: TileQuery, ctx: RenderContext, *extra: Hashable) -> Hashable:
    return (kind, q.filter, q.as_of, q.k, ctx.generation, *extra)


def heat_tile(conn: Connection, tile: Tile, q: TileQuery, ctx: RenderContext) -> CachedTile:
    """Reports per H3 cell at the zoom's resolution, or per area of ``q.level``."""
    f = _filter(q)
    if q.level is not None:
        level = q.level
        version_id = ctx.version_id(conn, q.as_of)

        def per_area() -> AreaFigures:
            frame = heat_areas(conn, f, level, per_household=True, as_of=q.as_of)
            return _figures(frame, q.k, HEAT_AREA_COLUMNS, version_id, level)

        figures = ctx.analyses.get(_key("heat-areas", q, ctx, level, version_id), per_area)
        return _area_figures(conn, tile, "heat", figures, HEAT_AREA_COLUMNS)
    res = min(h3sql.res_for_zoom(tile.z), q.max_res)

    def cells(bbox: Box | None) -> FeatureSet:
        frame = heat_cells(conn, dataclasses.replace(f, bbox=bbox), res)
        return FeatureSet.from_frame(suppress(frame, q.k, drop=True), CELL_COLUMNS)

    if res <= h3sql.ROLLUP_RES:  # the whole layer from the roll-up, once per generation
        fs = ctx.analyses.get(_key("heat", q, ctx, res), lambda: cells(None))
    else:  # fine cells read reports one by one: just this tile's (and its margin's)
        fs = cells(_widened(tile.lonlat_bounds(), 2 * h3sql.edge_m(res)))
    return _cells(conn, tile, "heat", fs, CELL_COLUMNS)


def hotspots_tile(conn: Connection, tile: Tile, q: TileQuery, ctx: RenderContext) -> CachedTile:
    """Gi* classes on H3 cells at the zoom's resolution (at most 10) or on areas."""
    f = _filter(q)
    version_id = ctx.version_id(conn, q.as_of)
    if q.level is not None:
        level = q.level

        def per_area() -> AreaFigures:
            try:
                frame = hotspots(conn, f, level=level, as_of=q.as_of)
            except (NotEnoughFeatures, NoVariation) as exc:
                return AreaFigures(version_id, level, {"code": []}, exc.message)
            return _figures(frame, q.k, HOT_AREA_COLUMNS, version_id, level)

        figures = ctx.analyses.get(_key("hot-areas", q, ctx, level, version_id), per_area)
        if not figures.data["code"]:
            return _note(b"", figures.note)
        return _area_figures(conn, tile, "hotspots", figures, HOT_AREA_COLUMNS)
    res = min(h3sql.res_for_zoom(tile.z), 10, q.max_res)

    def cells() -> FeatureSet:
        try:
            frame = hotspots(conn, f, res=res, as_of=q.as_of)
        except (NotEnoughFeatures, NoVariation) as exc:
            return FeatureSet.empty(HOT_CELL_COLUMNS, exc.message)
        return FeatureSet.from_frame(suppress(frame, q.k, drop=True), HOT_CELL_COLUMNS)

    fs = ctx.analyses.get(_key("hot", q, ctx, res, version_id), cells)
    return _cells(conn, tile, "hotspots", fs, HOT_CELL_COLUMNS)


def reports_tile(conn: Connection, tile: Tile, q: TileQuery, ctx: RenderContext) -> CachedTile:
    """Single reports for staff from the points zoom on; clusters per H3 cell otherwise."""
    f = _filter(q)
    if q.staff and tile.z >= ctx.points_min_zoom:
        return _note(report_points_tile(conn, tile, "reports", f), None)
    res = min(h3sql.res_for_zoom(tile.z), CLUSTER_MAX_RES, q.max_res)

    def clusters() -> FeatureSet:
        counts = cell_counts(conn, f, res)
        counts = suppress(counts, q.k)
        cells = counts["h3"].to_numpy()
        lon, lat = h3sql.centres(cells)
        frame = gpd.GeoDataFrame(
            {"cell": h3sql.to_hex(cells), "n": counts["n"].to_numpy()},
            geometry=shapely.points(lon, lat) if len(cells) else [],
            crs="EPSG:4326",
        )
        return FeatureSet.from_frame(frame, CELL_COLUMNS)

    fs = ctx.analyses.get(_key("clusters", q, ctx, res), clusters)
    return _cells(conn, tile, "reports", fs, CELL_COLUMNS)


def render(
    conn: Connection, layer: str, tile: Tile, q: TileQuery, ctx: RenderContext
) -> CachedTile:
    """One tile of ``layer`` (already checked) for query ``q``."""
    if layer == "grids":
        return _areas(conn, tile, "grids", q, "grid", ctx)
    if layer == "areas":
        return _areas(conn, tile, "areas", q, q.level or "town", ctx)
    if layer == "heat":
        return heat_tile(conn, tile, q, ctx)
    if layer == "hotspots":
        return hotspots_tile(conn, tile, q, ctx)
    if layer == "reports":
        return reports_tile(conn, tile, q, ctx)
    raise ValueError(f"no renderer for layer {layer!r}")


def today() -> dt.date:
    """The day a request without ``as_of`` is answered for (the version in force changes at
    midnight without any write, so the day is part of a tile's cache key)."""
    return dt.date.today()
