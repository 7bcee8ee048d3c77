"""Import a layout file as a new boundary version: read, validate, write in one transaction
(published in that transaction through the one publish path, :mod:`geo_service.boundaries.publish`,
when asked).

Unchanged areas (same code, attributes and exact geometry as a stored row) are shared between
versions rather than copied; new rows also get their ``ST_Subdivide`` parts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
from sqlalchemy import Connection, Engine

from geo_service import audit
from geo_service.auth import Principal
from geo_service.boundaries import publish as publishing
from geo_service.boundaries import versions
from geo_service.boundaries.reader import read_layout
from geo_service.boundaries.validation import DEFAULT_TOLERANCE_M2, Problem, validate_layout
from geo_service.errors import BoundaryValidationFailed, Conflict
from geo_service.locator.locator import VersionInfo
from geo_service.locator.registry import VersionRegistry
from geo_service.routing import seed_units
from geo_service.settings import PlanningSettings
from geo_service.store import versions as store


@dataclass
class ImportSummary:
    """What an import wrote."""

    version: VersionInfo
    counts: dict[str, int]
    new_areas: int
    shared_areas: int
    problems: list[Problem] = field(default_factory=list)
    published: publishing.Switch | None = None  # the publish, when asked for


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


def new_draft(
    conn: Connection,
    label: str,
    source: str,
    source_crs: str = "EPSG:4326",
    *,
    principal: Principal | None = None,
) -> int:
    """Insert an empty draft version row and return its id (409 when the label is taken);
    audited as made by ``principal`` (None: the local account)."""
    if store.label_taken(conn, label):
        raise Conflict(f"a boundary version labelled {label!r} exists already")
    vid = store.insert_draft(conn, label, source, source_crs)
    what = {"label": label, "source": source}
    audit.record(conn, "boundary.draft_create", "boundary_version", vid, principal, what)
    return vid


def write_version(
    conn: Connection,
    frame: gpd.GeoDataFrame,
    label: str,
    source: str,
    source_crs: str,
    *,
    principal: Principal | None = None,
) -> tuple[int, int, int]:
    """Insert a draft version holding ``frame``; return (version id, new rows, shared rows)."""
    vid = new_draft(conn, label, source, source_crs, principal=principal)
    added = store.add_areas(conn, vid, frame)
    return vid, added.inserted, added.shared


def import_layout(
    engine: Engine,
    path: str | Path,
    label: str,
    crs: str | None = None,
    effective_from: dt.date | None = None,
    publish: bool = False,
    tolerance_m2: float = DEFAULT_TOLERANCE_M2,
    limits: PlanningSettings | None = None,
    registry: VersionRegistry | None = None,
) -> ImportSummary:
    """Read, validate and store ``path`` as version ``label``; when ``publish``, publish it
    from ``effective_from`` (today by default) as any draft is published: refused on a
    validation error (grid limits from ``limits``, else the environment's, with
    ``tolerance_m2``), units seeded, open cases re-routed, ``registry`` told.

    Everything happens in one transaction: a refused or failing import writes nothing.
    """
    layout = read_layout(path, crs=crs)
    check_layout(layout.frame, tolerance_m2)
    switch = None
    with engine.begin() as conn:
        vid, new, shared = write_version(
            conn, layout.frame, label, Path(path).name, layout.source_crs
        )
        seed_units(conn, vid)
        info = versions.get_version(conn, vid)
        if publish:
            switch = publishing.publish_draft(
                conn,
                vid,
                effective_from or dt.date.today(),
                limits=limits or PlanningSettings(tolerance_m2=tolerance_m2),
            )
            info = switch.version
    if switch is not None:
        publishing.announce(engine, switch, registry)
    counts = layout.frame["level"].value_counts().to_dict()
    return ImportSummary(
        info, {str(k): int(v) for k, v in counts.items()}, new, shared, published=switch
    )
