"""Import a layout file as a new boundary version: read, validate, write in one transaction.

Unchanged areas (same code, attributes and exact geometry as a stored row) are shared between
versions rather than copied; new rows also get their ``ST_Subdivide`` parts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Connection, Engine, text

from geo_service.boundaries import versions
from geo_service.boundaries.reader import REQUIRED_COLUMNS, read_layout
from geo_service.boundaries.validation import DEFAULT_TOLERANCE_M2, Problem, validate_layout
from geo_service.errors import BoundaryValidationFailed, Conflict
from geo_service.locator.locator import VersionInfo
from geo_service.routing import seed_units

SUBDIVIDE_MAX_VERTICES = 128
_CORE = (*REQUIRED_COLUMNS, "geometry", "households", "population")


@dataclass
class ImportSummary:
    """What an import wrote."""

    version: VersionInfo
    counts: dict[str, int]
    new_areas: int
    shared_areas: int
    problems: list[Problem] = field(default_factory=list)


def _plain(value: Any) -> Any:
    """A JSON-safe Python value from a pandas/numpy cell (NaN → None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def _int_or_none(value: Any) -> int | None:
    value = _plain(value)
    return None if value is None or value == "" else int(value)


def area_rows(frame: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    """One insertable dict per feature, with its content fingerprint."""
    extra = [c for c in frame.columns if c not in _CORE]
    wkbs = shapely.to_wkb(shapely.force_2d(frame.geometry.to_numpy()), hex=False)
    rows = []
    # records, not itertuples: attribute names need not be Python identifiers ("grid worker")
    records = pd.DataFrame(frame.drop(columns=frame.geometry.name)).to_dict("records")
    for i, r in enumerate(records):
        attrs = {c: _plain(r[c]) for c in extra if _plain(r[c]) is not None}
        row = {
            "code": r["code"],
            "name": r["name"],
            "level": r["level"],
            "parent_code": r["parent_code"] or None,
            "households": _int_or_none(r.get("households")),
            "population": _int_or_none(r.get("population")),
            "attributes": json.dumps(attrs, ensure_ascii=False, sort_keys=True),
            "wkb": wkbs[i],
        }
        digest = hashlib.sha256()
        for key in (
            "code",
            "name",
            "level",
            "parent_code",
            "households",
            "population",
            "attributes",
        ):
            digest.update(repr(row[key]).encode())
        digest.update(wkbs[i])
        row["fingerprint"] = digest.hexdigest()
        rows.append(row)
    return rows


def check_layout(frame: gpd.GeoDataFrame, tolerance_m2: float) -> None:
    """Raise :class:`BoundaryValidationFailed` listing every problem, if there is any."""
    problems = validate_layout(frame, tolerance_m2)
    if problems:
        kinds = sorted({p.kind for p in problems})
        raise BoundaryValidationFailed(
            f"layout refused: {len(problems)} problem(s) ({', '.join(kinds)}); "
            f"first: {problems[0].message}",
            details=[p.as_dict() for p in problems],
        )


def new_draft(conn: Connection, label: str, source: str, source_crs: str = "EPSG:4326") -> int:
    """Insert an empty draft version row and return its id (409 when the label is taken)."""
    taken = conn.execute(
        text("SELECT 1 FROM boundary_versions WHERE label = :l"), {"l": label}
    ).first()
    if taken:
        raise Conflict(f"a boundary version labelled {label!r} exists already")
    vid: int = conn.execute(
        text(
            "INSERT INTO boundary_versions (label, status, source, source_crs) "
            "VALUES (:l, 'draft', :s, :c) RETURNING id"
        ),
        {"l": label, "s": source, "c": source_crs},
    ).scalar_one()
    return vid


def write_version(
    conn: Connection, frame: gpd.GeoDataFrame, label: str, source: str, source_crs: str
) -> tuple[int, int, int]:
    """Insert a draft version holding ``frame``; return (version id, new rows, shared rows)."""
    vid = new_draft(conn, label, source, source_crs)
    rows = area_rows(frame)
    known = dict(
        conn.execute(
            text(
                "SELECT DISTINCT ON (fingerprint) fingerprint, id FROM areas "
                "WHERE fingerprint = ANY(:f) ORDER BY fingerprint, id"
            ),
            {"f": [r["fingerprint"] for r in rows]},
        ).all()
    )
    fresh = [r for r in rows if r["fingerprint"] not in known]
    new_ids: list[int] = []
    if fresh:
        conn.execute(
            text(
                "INSERT INTO areas (code, name, level, parent_code, households, population, "
                "attributes, fingerprint, geom) VALUES (:code, :name, :level, :parent_code, "
                ":households, :population, CAST(:attributes AS jsonb), :fingerprint, "
                "ST_Multi(ST_GeomFromWKB(:wkb, 4326)))"
            ),
            fresh,
        )
        inserted = conn.execute(
            text("SELECT id, fingerprint FROM areas WHERE fingerprint = ANY(:f)"),
            {"f": [r["fingerprint"] for r in fresh]},
        ).all()
        for area_id, fp in inserted:
            if fp not in known:
                known[fp] = area_id
                new_ids.append(area_id)
    conn.execute(
        text(
            "INSERT INTO version_areas (version_id, area_id, code, level) "
            "VALUES (:v, :a, :code, :level)"
        ),
        [
            {"v": vid, "a": known[r["fingerprint"]], "code": r["code"], "level": r["level"]}
            for r in rows
        ],
    )
    if new_ids:
        conn.execute(
            text(
                "INSERT INTO area_parts (area_id, geom) SELECT id, ST_Subdivide(geom, :n) "
                "FROM areas WHERE id = ANY(:ids)"
            ),
            {"n": SUBDIVIDE_MAX_VERTICES, "ids": new_ids},
        )
    return int(vid), len(new_ids), len(rows) - len(new_ids)


def import_layout(
    engine: Engine,
    path: str | Path,
    label: str,
    crs: str | None = None,
    effective_from: dt.date | None = None,
    publish: bool = False,
    tolerance_m2: float = DEFAULT_TOLERANCE_M2,
) -> ImportSummary:
    """Read, validate and store ``path`` as version ``label`` (published when asked).

    Everything happens in one transaction: a refused or failing import writes nothing.
    """
    layout = read_layout(path, crs=crs)
    check_layout(layout.frame, tolerance_m2)
    with engine.begin() as conn:
        vid, new, shared = write_version(
            conn, layout.frame, label, Path(path).name, layout.source_crs
        )
        seed_units(conn, vid)
        info = versions.get_version(conn, vid)
        if publish:
            info = versions.publish(conn, vid, effective_from or dt.date.today())
    counts = layout.frame["level"].value_counts().to_dict()
    return ImportSummary(info, {str(k): int(v) for k, v in counts.items()}, new, shared)
