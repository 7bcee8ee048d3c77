"""The reports aggregate (``reports``, ``report_contacts``, ``report_events``): every read and
every write of a case except the bulk COPY loads (:mod:`geo_service.store.report_copy`).

As a tipg collection owns its query, this module owns the filters a caller can ask for (the
``/v1`` list's :class:`ReportFilter`, the public Open311/OGC view's :class:`RequestFilter`),
what each role may read (:func:`visible_to`), id reservation and idempotency look-ups, the
near-duplicate probe, the loop's locks and writes, and the relocation of open cases. Domain
modules decide; they hand this module values and get rows back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from geoalchemy2.functions import ST_X, ST_Y, ST_MakeEnvelope
from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    Select,
    and_,
    any_,
    cast,
    column,
    false,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    text,
    true,
    update,
    values,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.sql.elements import ColumnElement

from geo_service.auth import Principal
from geo_service.db.schema import (
    OPEN_STATUSES,
    UNHANDLED_STATUSES,
    areas,
    report_contacts,
    report_events,
    reports,
    units,
    version_areas,
)
from geo_service.store import stats as stats_store

# a degree is at least 55 km below 60° N: a box this many degrees per metre holds the circle
DEGREES_PER_METRE: Final = 1 / 55_000.0

# --------------------------------------------------------------------------- filters


@dataclass
class ReportFilter:
    """What ``GET /v1/reports`` can filter on."""

    status: list[str] | None = None
    area: str | None = None  # grid, community, town or district code
    unit: str | None = None  # unit code
    category: str | None = None
    channel: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    bbox: tuple[float, float, float, float] | None = None
    overdue: bool | None = None
    supervised: bool | None = None
    limit: int = 100
    offset: int = 0


@dataclass
class RequestFilter:
    """What the public view (Open311 ``GET requests``, OGC report items) filters on: all
    WGS84; dates compare with the time reported, both ends inclusive."""

    ids: list[int] | None = None
    service_codes: list[str] | None = None
    statuses: set[str] | None = None  # subset of {"open", "closed"}
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    bbox: tuple[float, float, float, float] | None = None
    near: tuple[float, float, float] | None = None  # lon, lat, radius in metres
    limit: int = 1000
    offset: int = 0
    # who reads (geo_service.reports.disclosure): rows ``exact`` for them are matched on their
    # point, the others on their coarse cell (the H3 res ``coarse_res`` parent of ``h3_11``),
    # which bbox/near then match through ``coarse_cells`` (the cells whose centre is inside)
    viewer: Principal | None = None
    exact_for_all: bool = False
    public_categories: tuple[str, ...] = ()
    coarse_res: int = 8
    coarse_cells: tuple[int, ...] | None = None


def in_area(code: str) -> ColumnElement[bool]:
    """Reports whose grid lies in the area ``code`` (any level of the chain)."""
    return or_(
        reports.c.grid_code == code,
        reports.c.community_code == code,
        reports.c.town_code == code,
        reports.c.district_code == code,
    )


def visible_to(principal: Principal) -> ColumnElement[bool] | None:
    """The rows a role may read: reporters their own (filed with their key, or signed in as
    them), grid workers their area, others all."""
    if principal.role == "reporter":
        if principal.key_id is None:  # signed in; neither id would match every NULL row
            if principal.user_id is None:
                return false()
            return reports.c.filed_by_user_id == principal.user_id
        return reports.c.filed_by_key_id == principal.key_id
    if principal.role == "grid_worker":
        return in_area(principal.scope) if principal.scope else false()
    return None


def _overdue() -> ColumnElement[bool]:
    return stats_store.overdue(reports)


def _report_conditions(f: ReportFilter, principal: Principal) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    scope = visible_to(principal)
    if scope is not None:
        conds.append(scope)
    if f.status:
        conds.append(reports.c.status.in_(f.status))
    if f.area:
        conds.append(in_area(f.area))
    if f.unit:
        conds.append(reports.c.unit_id.in_(select(units.c.id).where(units.c.code == f.unit)))
    if f.category:
        conds.append(reports.c.category == f.category)
    if f.channel:
        conds.append(reports.c.channel == f.channel)
    if f.since:
        conds.append(reports.c.reported_at >= f.since)
    if f.until:
        conds.append(reports.c.reported_at < f.until)
    if f.bbox:
        conds.append(reports.c.geom.op("&&")(ST_MakeEnvelope(*f.bbox, 4326)))
    if f.overdue is not None:
        conds.append(_overdue() if f.overdue else ~_overdue())
    if f.supervised is not None:
        conds.append(reports.c.supervised == f.supervised)
    return conds


def exact_for(f: RequestFilter) -> ColumnElement[bool]:
    """Whether a row's point and text are shown to ``f.viewer``: every row for staff, else the
    rows it may read on ``/v1`` (its own reports, its grid scope) and public cases (staff
    marked them public and their category is a public one)."""
    if f.exact_for_all:
        return true()
    shown: list[ColumnElement[bool]] = []
    if f.public_categories:
        shown.append(
            and_(reports.c.public, _any_of(reports.c.category, list(f.public_categories)))
        )
    if f.viewer is not None and f.viewer.role in ("reporter", "grid_worker"):
        scope = visible_to(f.viewer)
        if scope is not None:
            shown.append(scope)
    return or_(false(), *shown)


def coarse_cell(res: int) -> ColumnElement[int]:
    """A row's coarse cell: the H3 resolution-``res`` parent of its stored res-11 cell."""
    return func.h3_parent(reports.c.h3_11, literal(res, Integer), type_=BigInteger)


def _coarse_in(f: RequestFilter) -> ColumnElement[bool]:
    """Rows whose coarse cell is one of ``f.coarse_cells`` (none when they are unresolved)."""
    cells = list(f.coarse_cells or ())
    return _any_of(coarse_cell(f.coarse_res), cells) if cells else false()


def _spatial(f: RequestFilter, exact_match: ColumnElement[bool]) -> ColumnElement[bool]:
    """``exact_match`` for rows shown exactly, the coarse cell's match for the others."""
    if f.exact_for_all:
        return exact_match
    exact = exact_for(f)
    return or_(and_(exact, exact_match), and_(not_(exact), _coarse_in(f)))


def _request_conditions(f: RequestFilter) -> list[ColumnElement[bool]]:
    if f.ids is not None:  # Open311: an id list overrides every other filter
        return [reports.c.id.in_(f.ids)]
    conds = _plain_request_conditions(f)
    if f.bbox:
        conds.append(_spatial(f, reports.c.geom.op("&&")(ST_MakeEnvelope(*f.bbox, 4326))))
    if f.near:
        x, y, r = f.near
        point = func.ST_SetSRID(func.ST_MakePoint(x, y), 4326)
        near = and_(
            reports.c.geom.op("&&")(func.ST_Expand(point, r * DEGREES_PER_METRE)),
            func.ST_DWithin(func.geography(reports.c.geom), func.geography(point), r),
        )
        conds.append(_spatial(f, near))
    return conds


def _plain_request_conditions(f: RequestFilter) -> list[ColumnElement[bool]]:
    """The request filter's conditions but the spatial ones."""
    conds: list[ColumnElement[bool]] = []
    if f.service_codes:
        conds.append(reports.c.category.in_(f.service_codes))
    if f.statuses == {"open"}:
        conds.append(reports.c.status.in_(OPEN_STATUSES))
    elif f.statuses == {"closed"}:
        conds.append(reports.c.status.not_in(OPEN_STATUSES))
    if f.start:
        conds.append(reports.c.reported_at >= f.start)
    if f.end:
        conds.append(reports.c.reported_at <= f.end)
    return conds


def candidate_cells(
    conn: Connection, f: RequestFilter, box: tuple[float, float, float, float]
) -> list[int]:
    """The distinct coarse cells (resolution ``f.coarse_res``) of the reports matching ``f``'s
    other filters whose point lies in ``box``: a superset of the cells whose centre matches
    ``f``'s bbox or circle when ``box`` is that grown by the farthest a point lies from its
    coarse cell's centre (the caller keeps the cells whose centre matches)."""
    cell = coarse_cell(f.coarse_res)
    rows = conn.execute(
        select(cell)
        .where(
            *_plain_request_conditions(f),
            reports.c.geom.op("&&")(ST_MakeEnvelope(*box, 4326)),
            reports.c.h3_11.is_not(None),
        )
        .distinct()
    ).scalars()
    return [int(c) for c in rows]


def _any_of(column: ColumnElement[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """``column = ANY(<values as one array parameter>)``: one bound value however many."""
    return column == any_(literal(list(values), ARRAY(column.type)))


def _count(conn: Connection, conds: Sequence[ColumnElement[bool]]) -> int:
    return int(conn.execute(select(func.count()).select_from(reports).where(*conds)).scalar_one())


# --------------------------------------------------------------------------- /v1 reads


def _report_select(contacts: bool) -> Select[Any]:
    cols: list[Any] = [
        reports,
        ST_X(reports.c.geom).label("lon"),
        ST_Y(reports.c.geom).label("lat"),
        units.c.code.label("unit_code"),
        units.c.name.label("unit_name"),
        units.c.unit_type.label("unit_type"),
        _overdue().label("overdue"),
    ]
    joined = reports.outerjoin(units, units.c.id == reports.c.unit_id)
    if contacts:
        cols += [
            report_contacts.c.name.label("reporter_name"),
            report_contacts.c.phone.label("reporter_phone"),
        ]
        joined = joined.outerjoin(report_contacts, report_contacts.c.report_id == reports.c.id)
    return select(*cols).select_from(joined)


def count_reports(conn: Connection, f: ReportFilter, principal: Principal) -> int:
    """How many reports ``principal`` may see match ``f`` (paging ignored)."""
    return _count(conn, _report_conditions(f, principal))


def report_page(
    conn: Connection, f: ReportFilter, principal: Principal, *, contacts: bool
) -> Sequence[Any]:
    """One page of the reports ``principal`` may see matching ``f``, newest first: every
    column, ``lon``/``lat``, the unit's ``unit_code``/``unit_name``/``unit_type``,
    ``overdue``, and with ``contacts`` the ``reporter_name``/``reporter_phone``."""
    return conn.execute(
        _report_select(contacts)
        .where(*_report_conditions(f, principal))
        .order_by(reports.c.reported_at.desc(), reports.c.id.desc())
        .limit(f.limit)
        .offset(f.offset)
    ).all()


def report_row(
    conn: Connection, report_id: int, principal: Principal, *, contacts: bool
) -> Any | None:
    """One report as :func:`report_page` reads it, or None when ``principal`` may not see it."""
    return conn.execute(
        _report_select(contacts).where(*_visible(report_id, principal))
    ).one_or_none()


# --------------------------------------------------------------------------- public view


def _chain_names() -> Any:
    """The names of the report's district → town → community → grid in its boundary version."""
    codes = (
        reports.c.district_code,
        reports.c.town_code,
        reports.c.community_code,
        reports.c.grid_code,
    )
    return (
        select(func.array_agg(aggregate_order_by(areas.c.name, func.length(version_areas.c.code))))
        .select_from(version_areas.join(areas, areas.c.id == version_areas.c.area_id))
        .where(
            version_areas.c.version_id == reports.c.boundary_version_id,
            version_areas.c.code.in_(codes),
        )
        .scalar_subquery()
    )


def request_page(conn: Connection, f: RequestFilter) -> Sequence[Any]:
    """One page of reports matching ``f``, newest first, with only what the public view may
    show (never ``report_contacts``): status, category, description, photos, times, coverage,
    grid and community, WGS84 ``lon``/``lat``, ``h3_11``, whether it is ``exact`` for the
    viewer (else the caller must coarsen it), ``unit_name``/``unit_type``, the area ``chain``
    names, the clock ``now`` and whether it is ``overdue``."""
    return conn.execute(
        select(
            reports.c.id,
            reports.c.status,
            reports.c.category,
            reports.c.description,
            reports.c.photos,
            reports.c.reported_at,
            reports.c.status_at,
            reports.c.due_at,
            reports.c.in_coverage,
            reports.c.grid_code,
            reports.c.community_code,
            ST_X(reports.c.geom).label("lon"),
            ST_Y(reports.c.geom).label("lat"),
            reports.c.h3_11,
            exact_for(f).label("exact"),
            units.c.name.label("unit_name"),
            units.c.unit_type.label("unit_type"),
            _chain_names().label("chain"),
            func.now().label("now"),
            _overdue().label("overdue"),
        )
        .select_from(reports.outerjoin(units, units.c.id == reports.c.unit_id))
        .where(*_request_conditions(f))
        .order_by(reports.c.reported_at.desc(), reports.c.id.desc())
        .limit(f.limit)
        .offset(f.offset)
    ).all()


def count_requests(conn: Connection, f: RequestFilter) -> int:
    """How many reports match ``f`` in the public view (paging ignored)."""
    return _count(conn, _request_conditions(f))


def extent(conn: Connection) -> tuple[list[float] | None, dt.datetime | None, dt.datetime | None]:
    """The bounds of every report (minx, miny, maxx, maxy; None when there is none) and the
    first and last time reported."""
    sub = select(
        func.ST_Extent(reports.c.geom).label("e"),
        func.min(reports.c.reported_at).label("first"),
        func.max(reports.c.reported_at).label("last"),
    ).subquery()
    edges = (func.ST_XMin, func.ST_YMin, func.ST_XMax, func.ST_YMax)
    row = conn.execute(select(*(fn(sub.c.e) for fn in edges), sub.c.first, sub.c.last)).one()
    box = None if row[0] is None else [float(v) for v in row[:4]]
    return box, row[4], row[5]


# --------------------------------------------------------------------------- ids and keys

_NEXT_IDS = text("SELECT nextval('reports_id_seq') FROM generate_series(1, :n)")


def reserve_ids(conn: Connection, n: int) -> list[int]:
    """``n`` new report ids from the table's sequence, increasing."""
    return [int(i) for i in conn.execute(_NEXT_IDS, {"n": n}).scalars().all()] if n else []


def responses_by_key(conn: Connection, keys: Sequence[str]) -> dict[str, tuple[str | None, Any]]:
    """Idempotency key → (request hash, first response) of the reports stored under ``keys``."""
    if not keys:
        return {}
    rows = conn.execute(
        select(reports.c.idempotency_key, reports.c.request_hash, reports.c.response).where(
            _any_of(reports.c.idempotency_key, keys)
        )
    ).all()
    return {k: (h, resp) for k, h, resp in rows}


def stored_keys(conn: Connection, keys: Sequence[str]) -> set[str]:
    """Those of ``keys`` some report is stored under."""
    if not keys:
        return set()
    return set(
        conn.execute(
            select(reports.c.idempotency_key).where(_any_of(reports.c.idempotency_key, keys))
        )
        .scalars()
        .all()
    )


def count_keys_starting(conn: Connection, prefix: str) -> int:
    """How many reports are stored under an idempotency key starting with ``prefix``."""
    return _count(conn, [reports.c.idempotency_key.startswith(prefix, autoescape=True)])


# --------------------------------------------------------------------------- duplicates

# the nearest open case of the same category within the distance and time window (ties: the
# older id), per new report: a case at the very same spot first (the nearest there is: the
# oldest, straight from ix_reports_undup_spot), else a nearest-first (KNN) scan of the GiST
# index ix_reports_undup_geom that stops after the DUPLICATE_CANDIDATES nearest cases. Only
# cases not linked to another are indexed (migration 0012), so the work per report stays
# bounded however many reports share a spot (10,000 identical reports in one bulk were
# quadratic: minutes); the answer is exact unless more cases than that lie nearer
DUPLICATE_CANDIDATES: Final = 64
_CANDIDATE = """
    n.category = r.category AND n.id <> r.id AND n.duplicate_of IS NULL
    AND n.status = ANY(:open)
    AND n.reported_at BETWEEN r.reported_at - make_interval(secs => CAST(:hours AS float8) * 3600)
                          AND r.reported_at
    AND (n.reported_at < r.reported_at OR n.id < r.id)"""
_NEAR_DUPLICATES = text(f"""
SELECT r.id, COALESCE(same.id, near.id) AS duplicate_of
FROM reports r
LEFT JOIN LATERAL (
    SELECT n.id FROM reports n
    WHERE ST_X(n.geom) = ST_X(r.geom) AND ST_Y(n.geom) = ST_Y(r.geom) AND {_CANDIDATE}
    ORDER BY n.id
    LIMIT 1) same ON true
LEFT JOIN LATERAL (
    SELECT o.id
    FROM (
        SELECT n.id, n.geom FROM reports n
        WHERE same.id IS NULL AND n.geom && ST_Expand(r.geom, :deg) AND {_CANDIDATE}
        ORDER BY n.geom <-> r.geom
        LIMIT :candidates) o
    WHERE ST_DWithin(o.geom::geography, r.geom::geography, :metres)
    ORDER BY ST_Distance(o.geom::geography, r.geom::geography), o.id
    LIMIT 1) near ON true
WHERE r.id = ANY(CAST(:ids AS bigint[])) AND COALESCE(same.id, near.id) IS NOT NULL
""")  # noqa: S608 - _CANDIDATE is a constant of this module, the values are bound
_LINK_DUPLICATES = text("""
UPDATE reports r SET duplicate_of = v.dup,
    response = jsonb_set(r.response, '{suspected_duplicate_of}', to_jsonb(v.dup))
FROM unnest(CAST(:ids AS bigint[]), CAST(:dups AS bigint[])) AS v(id, dup)
WHERE r.id = v.id
""")


def link_near_duplicates(
    conn: Connection,
    ids: list[int],
    open_statuses: Sequence[str],
    distance_m: float,
    window_h: float,
) -> dict[int, int]:
    """Link each of the new reports ``ids`` to its suspected duplicate (a case in one of
    ``open_statuses``, of its category, within ``distance_m`` and ``window_h``), if any; new
    id → the case's id."""
    if not ids:
        return {}
    found = conn.execute(
        _NEAR_DUPLICATES,
        {
            "ids": ids,
            "open": list(open_statuses),
            "hours": window_h,
            "metres": distance_m,
            "deg": distance_m * DEGREES_PER_METRE,  # an over-wide box
            "candidates": DUPLICATE_CANDIDATES,
        },
    ).all()
    linked = {int(rid): int(dup) for rid, dup in found}
    if linked:
        conn.execute(_LINK_DUPLICATES, {"ids": list(linked), "dups": list(linked.values())})
    return linked


# --------------------------------------------------------------------------- the loop

# what a step of the loop reads of its case, and the database clock
_CASE_COLUMNS: Final = (
    reports.c.id,
    reports.c.status,
    reports.c.category,
    reports.c.handling_level,
    reports.c.hard,
    reports.c.unit_id,
    reports.c.in_coverage,
    reports.c.grid_code,
    reports.c.community_code,
    reports.c.town_code,
    reports.c.district_code,
    reports.c.reported_at,
    reports.c.due_at,
    func.now().label("now"),
)


def _visible(report_id: int, principal: Principal) -> list[ColumnElement[bool]]:
    """The conditions for one report ``principal`` may see (ids are bigint in the table)."""
    conds: list[ColumnElement[bool]] = [reports.c.id == literal(report_id, BigInteger)]
    scope = visible_to(principal)
    if scope is not None:
        conds.append(scope)
    return conds


def is_visible(conn: Connection, report_id: int, principal: Principal) -> bool:
    """Whether the report exists and ``principal`` may see it."""
    return (
        conn.execute(select(reports.c.id).where(*_visible(report_id, principal))).first()
        is not None
    )


def lock_case(conn: Connection, report_id: int, principal: Principal) -> Any | None:
    """The case's row (status, category, level, hardness, unit, coverage, code chain, times,
    the clock ``now``), locked until the transaction ends; None when ``principal`` may not
    see it."""
    return conn.execute(
        select(*_CASE_COLUMNS).where(*_visible(report_id, principal)).with_for_update()
    ).one_or_none()


def lock_overdue(conn: Connection, now: dt.datetime, top_level: str) -> Sequence[Any]:
    """Open cases past their due time at ``now`` and not yet at ``top_level``, in id order,
    locked and read as :func:`lock_case` reads one; rows another transaction holds are skipped."""
    return conn.execute(
        select(*_CASE_COLUMNS)
        .where(
            # not yet accepted, or accepted and not yet handled: a handled case waits on
            # the centre, not on a unit one level up
            reports.c.status.in_(("discovered", *UNHANDLED_STATUSES)),
            reports.c.due_at < now,
            reports.c.handling_level != top_level,
        )
        .order_by(reports.c.id)
        .with_for_update(skip_locked=True)
    ).all()


def update_case(conn: Connection, report_id: int, values: Mapping[str, Any]) -> None:
    """Set columns of one report."""
    conn.execute(
        update(reports).where(reports.c.id == literal(report_id, BigInteger)).values(**values)
    )


MAX_PARAMETERS: Final = 65_535
"""Bound values one PostgreSQL statement may carry: batches are cut to fit."""


def _batches(rows: Sequence[Any], width: int) -> Iterator[Sequence[Any]]:
    """``rows`` in slices of at most ``MAX_PARAMETERS // width`` (``width`` values a row)."""
    size = max(1, MAX_PARAMETERS // max(width, 1))
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def update_cases(conn: Connection, changes: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
    """Set columns of many reports, one statement per set of columns changed and batch (so
    the roll-up triggers run once per statement, not once per case: a sweep of 1,000 cases
    was 1,000 statements); ``changes`` are (report id, column → value)."""
    groups: dict[tuple[str, ...], list[tuple[int, Mapping[str, Any]]]] = {}
    for report_id, values_of in changes:
        if values_of:
            groups.setdefault(tuple(sorted(values_of)), []).append((report_id, values_of))
    for names, rows in groups.items():
        for batch in _batches(rows, len(names) + 1):
            given = values(
                column("id", BigInteger), *(column(n, reports.c[n].type) for n in names), name="v"
            ).data([(report_id, *(v[n] for n in names)) for report_id, v in batch])
            conn.execute(
                update(reports)
                .where(reports.c.id == cast(given.c.id, BigInteger))
                # a column of NULLs arrives untyped: each value is cast to its column's type
                .values({n: cast(given.c[n], reports.c[n].type) for n in names})
            )


def add_events(conn: Connection, events: Sequence[Mapping[str, Any]]) -> None:
    """Append loop events (``report_id``, ``at``, ``action``, ``from_status``, ``to_status``,
    ``unit_id``, ``actor_key_id``, ``actor``, ``note``, the deadlines set), in order: each
    batch one multi-row INSERT, so the case-facts trigger runs once per batch, not per event."""
    if events:
        for batch in _batches(events, len(events[0])):
            conn.execute(insert(report_events).values([dict(e) for e in batch]))


def events_of(conn: Connection, report_id: int) -> Sequence[Any]:
    """A report's events, oldest first, with their unit's ``unit_code`` and ``unit_name``."""
    return conn.execute(
        select(
            report_events,
            units.c.code.label("unit_code"),
            units.c.name.label("unit_name"),
        )
        .select_from(report_events.outerjoin(units, units.c.id == report_events.c.unit_id))
        .where(report_events.c.report_id == report_id)
        .order_by(report_events.c.id)
    ).all()


# --------------------------------------------------------------------------- relocation


def open_points(conn: Connection) -> Sequence[Any]:
    """Every open case's ``id``, WGS84 ``x``/``y`` and ``grid_code``, in id order (no locks)."""
    return conn.execute(
        select(
            reports.c.id,
            ST_X(reports.c.geom).label("x"),
            ST_Y(reports.c.geom).label("y"),
            reports.c.grid_code,
        )
        .where(reports.c.status.in_(OPEN_STATUSES))
        .order_by(reports.c.id)
    ).all()


def lock_open(conn: Connection, ids: Sequence[int]) -> Sequence[Any]:
    """Those of ``ids`` still open, locked in id order (two sweeps cannot deadlock): ``id``,
    ``x``/``y``, ``status``, ``category``, ``handling_level``, ``unit_id``, ``routed_by``,
    ``grid_code`` and the clock ``now``."""
    return conn.execute(
        select(
            reports.c.id,
            ST_X(reports.c.geom).label("x"),
            ST_Y(reports.c.geom).label("y"),
            reports.c.status,
            reports.c.category,
            reports.c.handling_level,
            reports.c.unit_id,
            reports.c.routed_by,
            reports.c.grid_code,
            func.now().label("now"),
        )
        .where(
            _any_of(reports.c.id, ids),
            reports.c.status.in_(OPEN_STATUSES),
        )
        .order_by(reports.c.id)
        .with_for_update()
    ).all()


_RELOCATE = text(
    "UPDATE reports r SET grid_code = u.grid, community_code = u.community, "
    "town_code = u.town, district_code = u.district, in_coverage = u.inside, "
    "boundary_version_id = :version, unit_id = u.unit, routed_by = u.routed_by, "
    "status = u.status, status_at = CASE WHEN u.status <> r.status THEN u.at ELSE r.status_at END "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:grid AS text[]), CAST(:community AS text[]), "
    "CAST(:town AS text[]), CAST(:district AS text[]), CAST(:inside AS boolean[]), "
    "CAST(:unit AS integer[]), CAST(:routed_by AS text[]), CAST(:status AS text[]), "
    "CAST(:at AS timestamptz[])) "
    "AS u(id, grid, community, town, district, inside, unit, routed_by, status, at) "
    "WHERE r.id = u.id"
)
_RELOCATE_EVENTS = text(
    "INSERT INTO report_events (report_id, at, action, from_status, to_status, unit_id, "
    "actor_key_id, actor, note) SELECT e.id, e.at, 'relocate', e.from_status, e.to_status, "
    "e.unit, CAST(:key AS integer), CAST(:actor AS text), e.note "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:at AS timestamptz[]), "
    "CAST(:from_status AS text[]), CAST(:to_status AS text[]), CAST(:unit AS integer[]), "
    "CAST(:note AS text[])) AS e(id, at, from_status, to_status, unit, note)"
)
RELOCATION_COLUMNS: Final = (
    "ids", "grid", "community", "town", "district", "inside", "unit", "routed_by", "status",
    "at", "from_status", "note",
)  # fmt: skip


def relocate(
    conn: Connection,
    changes: Mapping[str, Sequence[Any]],
    version_id: int | None,
    key_id: int | None,
    actor: str,
) -> None:
    """Move cases to their new place in version ``version_id`` and record a ``relocate``
    event each (by ``key_id`` as ``actor``); ``changes`` holds one list per name of
    :data:`RELOCATION_COLUMNS`, a position per case (``status``/``at``: after the move)."""
    conn.execute(
        _RELOCATE,
        {k: list(v) for k, v in changes.items() if k not in ("from_status", "note")}
        | {"version": version_id},
    )
    conn.execute(
        _RELOCATE_EVENTS,
        {
            "ids": list(changes["ids"]),
            "at": list(changes["at"]),
            "from_status": list(changes["from_status"]),
            "to_status": list(changes["status"]),
            "unit": list(changes["unit"]),
            "note": list(changes["note"]),
            "key": key_id,
            "actor": actor,
        },
    )
