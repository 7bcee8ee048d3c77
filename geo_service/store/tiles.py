# ruff: noqa: S608 -- SQL here is composed from constant column specs only; values are bound
"""The SQL that makes tiles, and the layer generation counters tile caches key on.

Tiles are PostGIS ``ST_AsMVT`` over ``ST_AsMVTGeom`` in ``ST_TileEnvelope``, in three shapes:
areas of a boundary version from its tile-ready copy (optionally joined with per-area figures
passed as arrays), features whose WGS84 geometry and attributes are passed as arrays (H3 cells,
cluster centres), and single reports. Every value is a bound parameter; the only text put
together here are column names from the constant specs of :mod:`geo_service.tiles.render`.
Everything here reads; nothing writes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import Connection, TextClause, func, literal_column, select, text
from sqlalchemy.sql.elements import ColumnElement

from geo_service.analytics.filters import AnalysisFilter
from geo_service.db.schema import layer_generations, reports, tile_areas
from geo_service.store import stats as stats_store
from geo_service.store.rollups import attribute_conditions, window_conditions
from geo_service.tiles.address import BUFFER, EXTENT, Tile

Columns = Sequence[tuple[str, str]]  # (attribute name, PostgreSQL type)

AREA_COLUMNS: Final = (
    "code", "name", "level", "parent_code", "households", "population", "district_code",
    "district_name", "town_code", "town_name", "community_code", "community_name", "unit_name",
)  # fmt: skip
"""The attributes of an area feature: the public columns of ``tile_areas`` (no ids)."""
assert set(AREA_COLUMNS) <= set(tile_areas.c.keys())

# --------------------------------------------------------------------------- generations


def generation_counters(conn: Connection) -> tuple[int, int]:
    """The ``boundaries`` and ``reports`` generations as committed now: each the sum of its
    counter over the shards (one small query over 16 rows)."""
    g = layer_generations
    row = conn.execute(
        select(
            func.coalesce(func.sum(g.c.boundaries), 0),
            func.coalesce(func.sum(g.c.reports), 0),
        )
    ).one()
    return int(row[0]), int(row[1])


# --------------------------------------------------------------------------- tiles


def _quoted(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a column name: {name!r}")
    return f'"{name}"'


def _unnest(prefix: str, columns: Columns) -> tuple[str, str]:
    """``unnest(CAST(:v_a AS t[]), ...)`` and its column list, for constant ``columns``."""
    arrays = ", ".join(f"CAST(:v_{n} AS {t}[])" for n, t in columns)
    names = ", ".join(_quoted(n) for n, _ in columns)
    return f"unnest({prefix}{arrays})", names


@functools.cache
def area_tile_sql(values: tuple[tuple[str, str], ...] = ()) -> TextClause:
    """Areas of ``:level`` in version ``:version`` meeting tile ``:z/:x/:y``, from the
    tile-ready copy (``tile_areas``), with figures joined by code from arrays when ``values``
    are given."""
    picked = "".join(f"u.{_quoted(n)}, " for n, _ in values)
    join = ""
    if values:
        source, names = _unnest("CAST(:v_code AS text[]), ", values)
        join = f"LEFT JOIN {source} AS u(code, {names}) ON u.code = ta.code"
    columns = ", ".join(f"ta.{c}" for c in AREA_COLUMNS)
    return text(f"""
        WITH env AS (SELECT ST_TileEnvelope(:z, :x, :y) AS m)
        SELECT ST_AsMVT(t, :name, :extent, 'geom') FROM (
            SELECT {columns}, {picked}
                   ST_AsMVTGeom(ta.geom, env.m, :extent, :buffer, true) AS geom
            FROM env
            JOIN tile_areas ta ON ta.geom && env.m
            {join}
            WHERE ta.version_id = :version AND ta.level = :level
        ) t WHERE t.geom IS NOT NULL
    """)


@functools.cache
def features_tile_sql(columns: tuple[tuple[str, str], ...]) -> TextClause:
    """Features whose WGS84 WKB (``:v_wkb``) and attributes come as arrays, in a tile."""
    source, names = _unnest("CAST(:v_wkb AS bytea[]), ", columns)
    picked = ", ".join(f"u.{_quoted(n)}" for n, _ in columns)
    return text(f"""
        WITH env AS (SELECT ST_TileEnvelope(:z, :x, :y) AS m)
        SELECT ST_AsMVT(t, :name, :extent, 'geom') FROM (
            SELECT {picked},
                   ST_AsMVTGeom(ST_Transform(ST_GeomFromWKB(u.wkb, 4326), 3857), env.m,
                                :extent, :buffer, true) AS geom
            FROM env, {source} AS u(wkb, {names})
        ) t WHERE t.geom IS NOT NULL
    """)


def _tile_params(tile: Tile, name: str) -> dict[str, Any]:
    return {
        "z": tile.z,
        "x": tile.x,
        "y": tile.y,
        "name": name,
        "extent": EXTENT,
        "buffer": BUFFER,
    }


def area_tile(
    conn: Connection,
    tile: Tile,
    name: str,
    version_id: int,
    level: str,
    values: Columns = (),
    data: dict[str, list[Any]] | None = None,
) -> bytes:
    """An MVT layer ``name`` of the ``level`` areas of a prepared version (see
    :mod:`geo_service.tiles.prepared`), with figures from ``data``."""
    params = _tile_params(tile, name)
    params.update(version=version_id, level=level)
    for column, series in (data or {}).items():
        params[f"v_{column}"] = series
    return bytes(conn.execute(area_tile_sql(tuple(values)), params).scalar_one() or b"")


def features_tile(
    conn: Connection,
    tile: Tile,
    name: str,
    wkb: list[bytes],
    columns: Columns,
    data: dict[str, list[Any]],
) -> bytes:
    """An MVT layer ``name`` of features given as WKB plus attribute arrays."""
    if not wkb:
        return b""
    params = _tile_params(tile, name)
    params["v_wkb"] = wkb
    for column, _ in columns:
        params[f"v_{column}"] = data[column]
    return bytes(conn.execute(features_tile_sql(tuple(columns)), params).scalar_one() or b"")


def _overdue() -> ColumnElement[bool]:
    return stats_store.overdue(reports)


def report_points_tile(conn: Connection, tile: Tile, name: str, f: AnalysisFilter) -> bytes:
    """An MVT layer ``name`` of single reports in a tile: no text, no contact, no photo."""
    since, until = f.window()
    envelope = func.ST_TileEnvelope(tile.z, tile.x, tile.y)
    sub = (
        select(
            reports.c.id,
            reports.c.category,
            reports.c.channel,
            reports.c.status,
            func.to_char(
                func.timezone("Asia/Shanghai", reports.c.reported_at),
                'YYYY-MM-DD"T"HH24:MI:SS"+08:00"',
            ).label("reported_at"),
            reports.c.grid_code,
            _overdue().label("overdue"),
            reports.c.supervised,
            func.ST_AsMVTGeom(
                func.ST_Transform(reports.c.geom, 3857), envelope, EXTENT, BUFFER, True
            ).label("geom"),
        )
        .where(
            reports.c.geom.op("&&")(func.ST_Transform(envelope, 4326)),
            *window_conditions(reports, since, until),
            *attribute_conditions(f, reports),
        )
        .subquery("t")
    )
    query = select(func.ST_AsMVT(literal_column("t"), name, EXTENT, "geom", "id")).where(
        sub.c.geom.isnot(None)
    )
    return bytes(conn.execute(query.select_from(sub)).scalar_one() or b"")
