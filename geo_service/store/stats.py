"""The figures' data (``case_facts``, kept by the triggers of migration 0008), owning its SQL.

* :func:`overdue`: the one test of "overdue" on a table with ``status`` and
  ``handle_due_at`` (reports lists, tiles, Open311 notes use it);
* :func:`read_state` and the ``copy_*`` readers: what :mod:`geo_service.stats.facts` loads
  (binary COPY of fixed-width rows, read straight into numpy) from one REPEATABLE READ
  snapshot: the rows changed by transactions from ``since`` on;
* names of areas, units and dispatchers for the figures' rows;
* :func:`reference_figures`: the same figures computed the plain way, by one aggregate over
  ``reports`` and ``report_events`` (no facts, no roll-up): the benchmark and the tests
  check the fast path against it.

Every value is a bound parameter; the SQL text is constant.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from psycopg import sql
from sqlalchemy import (
    Connection,
    DateTime,
    Table,
    and_,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.sql.elements import ColumnElement

from geo_service.db.schema import UNHANDLED_STATUSES, api_keys, reports, units

# --------------------------------------------------------------------------- overdue


def overdue(t: Table = reports, clock: dt.datetime | None = None) -> ColumnElement[bool]:
    """A case is overdue when it was accepted, its handling is not done (accepted,
    dispatched or handling: :data:`~geo_service.db.schema.UNHANDLED_STATUSES`) and its
    handling deadline has passed (at ``clock``, the database's now by default). A handled,
    verified or fed-back case is not overdue: only the centre's steps remain."""
    now = func.now() if clock is None else literal(clock, DateTime(timezone=True))
    return and_(t.c.status.in_(UNHANDLED_STATUSES), t.c.handle_due_at < now)


# --------------------------------------------------------------------------- facts

# one row per report, every field fixed-width and never NULL, for binary COPY: times as epoch
# seconds (NaN: never), the place (the grid, or the district of a case outside coverage) as
# a number and its digit count (-1, 0: none or not numeric), vocabularies as 1-based
# positions in the arrays the caller binds (0: none)
FACT_FIELDS: Final = (
    ("report_id", "i8", "f.report_id"),
    ("changed", "i8", "f.changed"),
    ("place", "i8", "coalesce(CASE WHEN p.code ~ '^[1-9][0-9]{0,17}$' THEN p.code::int8 END, -1)"),
    ("place_len", "i2", "coalesce(length(p.code), 0)::int2"),
    ("unit_id", "i8", "coalesce(f.unit_id, -1)::int8"),
    ("dispatched_by", "i8", "coalesce(f.dispatched_by, -1)::int8"),
    ("category", "i2", "coalesce(array_position(%(categories)s::text[], f.category), 0)::int2"),
    ("channel", "i2", "coalesce(array_position(%(channels)s::text[], f.channel), 0)::int2"),
    ("status", "i2", "coalesce(array_position(%(statuses)s::text[], f.status), 0)::int2"),
    ("urgency", "i2", "coalesce(array_position(%(urgencies)s::text[], f.urgency), 0)::int2"),
    ("supervised", "i2", "f.supervised::int::int2"),
    *(
        (name, "f8", f"coalesce(date_part('epoch', f.{column}), 'NaN')")
        for name, column in (
            ("reported", "reported_at"), ("accepted", "accepted_at"),
            ("rejected", "rejected_at"), ("dispatched", "dispatched_at"),
            ("dispatch_due", "dispatch_due_at"), ("redispatched", "redispatched_at"),
            ("handled", "handled_at"), ("handled_due", "handled_due_at"),
            ("verified", "verified_at"), ("closed", "closed_at"), ("rework", "rework_at"),
            ("supervised_at", "supervised_at"),
        )
    ),
)  # fmt: skip
SPELL_FIELDS: Final = (
    ("report_id", "i8", "f.report_id"),
    ("lo", "f8", "date_part('epoch', lower(s))"),
    ("lo_inc", "i2", "lower_inc(s)::int::int2"),  # 0: strictly after ``lo``
    ("hi", "f8", "date_part('epoch', upper(s))"),  # Infinity: still overdue
)
# written by a transaction the previous snapshot did not see: at or above its xmax, or in
# progress then (its xip list)
_SINCE: Final = "(f.changed >= %(xmax)s OR f.changed = ANY(%(xip)s::int8[]))"
_FACTS_SQL: Final = sql.SQL(
    "COPY (SELECT {} FROM case_facts f, LATERAL (SELECT coalesce(f.grid_code, f.district_code) "
    "AS code) p WHERE {}) TO STDOUT (FORMAT binary)"
).format(sql.SQL(", ").join(sql.SQL(e) for _, _, e in FACT_FIELDS), sql.SQL(_SINCE))
_SPELLS_SQL: Final = sql.SQL(
    "COPY (SELECT {} FROM case_facts f, unnest(f.overdue) AS s WHERE {}) TO STDOUT (FORMAT binary)"
).format(sql.SQL(", ").join(sql.SQL(e) for _, _, e in SPELL_FIELDS), sql.SQL(_SINCE))
_STEPS_SQL: Final = sql.SQL(
    "COPY (SELECT f.report_id, s.action, s.seconds FROM case_facts f, "
    "unnest(f.step_actions, f.step_seconds) AS s(action, seconds) WHERE {}) "
    "TO STDOUT (FORMAT csv)"
).format(sql.SQL(_SINCE))
_STATE: Final = text(
    "SELECT pg_snapshot_xmax(s)::text::bigint AS xmax, "
    "ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(s) AS x) AS xip, "
    "(SELECT epoch FROM case_facts_epoch WHERE id = 1) AS epoch "
    "FROM pg_current_snapshot() AS s"
)


@dataclass(frozen=True)
class Seen:
    """What a snapshot saw: every transaction below ``xmax`` except those in ``xip`` (in
    progress then); the next read takes the rows the others wrote."""

    xmax: int
    xip: tuple[int, ...]

    @classmethod
    def nothing(cls) -> Seen:
        """Before the first read: every row is new."""
        return cls(0, ())


def read_state(conn: Connection) -> tuple[Seen, int]:
    """What the transaction's snapshot sees, and ``epoch`` (it moves when reports are
    deleted: then read everything again)."""
    row = conn.execute(_STATE).one()
    return Seen(int(row.xmax), tuple(int(x) for x in row.xip)), int(row.epoch or 0)


def _since(seen: Seen) -> dict[str, Any]:
    return {"xmax": seen.xmax, "xip": list(seen.xip)}


def _copy(conn: Connection, statement: sql.Composable, params: dict[str, Any]) -> bytes:
    raw = conn.connection.driver_connection
    if raw is None:
        raise RuntimeError("the connection is closed")
    out = bytearray()
    with raw.cursor() as cur, cur.copy(statement, params) as copy:
        for block in copy:
            out += block
    return bytes(out)


def copy_facts(conn: Connection, since: Seen, vocabularies: Mapping[str, Sequence[str]]) -> bytes:
    """Binary COPY of :data:`FACT_FIELDS` for the reports written since ``since`` saw them;
    ``vocabularies`` binds ``categories``, ``channels``, ``statuses`` and ``urgencies`` (the
    positions the rows carry)."""
    params = {k: list(v) for k, v in vocabularies.items()}
    return _copy(conn, _FACTS_SQL, {**params, **_since(since)})


def copy_spells(conn: Connection, since: Seen) -> bytes:
    """Binary COPY of :data:`SPELL_FIELDS`: the overdue stretches of those reports."""
    return _copy(conn, _SPELLS_SQL, _since(since))


def copy_steps(conn: Connection, since: Seen) -> bytes:
    """CSV (report id, action, seconds since the event before) of those reports' events."""
    return _copy(conn, _STEPS_SQL, _since(since))


# --------------------------------------------------------------------------- names

_AREA_NAMES: Final = text(
    "SELECT DISTINCT ON (code) code, name, level FROM areas "
    "WHERE code = ANY(CAST(:codes AS text[])) ORDER BY code, id DESC"
)


def area_names(conn: Connection, codes: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Name and level of areas by code, from the newest row of each (for codes the version
    in force no longer has)."""
    if not codes:
        return {}
    rows = conn.execute(_AREA_NAMES, {"codes": list(codes)}).all()
    return {r.code: (r.name, r.level) for r in rows}


def unit_rows(conn: Connection) -> Sequence[Any]:
    """Every unit: id, code, name, unit type, level, area code, active."""
    return conn.execute(
        select(
            units.c.id,
            units.c.code,
            units.c.name,
            units.c.unit_type,
            units.c.level,
            units.c.area_code,
            units.c.active,
        ).order_by(units.c.code)
    ).all()


def key_rows(conn: Connection, ids: Sequence[int]) -> Sequence[Any]:
    """The API keys of some ids: id, prefix, label, role (never the hash)."""
    if not ids:
        return []
    return conn.execute(
        select(api_keys.c.id, api_keys.c.prefix, api_keys.c.label, api_keys.c.role).where(
            api_keys.c.id.in_(list(ids))
        )
    ).all()


# --------------------------------------------------------------------------- reference

# The figures of a cohort straight from reports and events, as of a moment: the state of each
# case at :as_of is read from its events at or before it (ordered by time, then id). The
# handling deadline in force at an instant is the latest one an event at or before it set,
# else the case's own. ``:length`` cuts grid codes to an area level (out of coverage: the
# district code); ``:by_unit`` groups by unit id instead.
_REFERENCE: Final = text("""
WITH c AS (
    SELECT r.id, r.reported_at, r.handle_due_at AS h0, r.dispatch_due_at AS d0,
        CASE WHEN :by_unit THEN r.unit_id::text
             WHEN length(coalesce(r.grid_code, r.district_code)) >= :length
             THEN left(coalesce(r.grid_code, r.district_code), :length) END AS code
    FROM reports r
    WHERE r.reported_at >= :start AND r.reported_at < :stop AND r.reported_at <= :as_of
      AND (cardinality(CAST(:categories AS text[])) = 0
           OR r.category = ANY(CAST(:categories AS text[])))
      AND (cardinality(CAST(:channels AS text[])) = 0
           OR r.channel = ANY(CAST(:channels AS text[])))
), per AS (
    SELECT c.id, c.code, c.reported_at, c.h0, c.d0,
        min(e.at) FILTER (WHERE e.action = 'accept') AS accepted,
        min(e.at) FILTER (WHERE e.action = 'reject') AS rejected,
        min(e.at) FILTER (WHERE e.action = 'evaluate') AS closed,
        bool_or(e.action = 'rework') AS reworked,
        bool_or(e.action = 'supervise') AS supervised,
        (array_agg(e.id ORDER BY e.at, e.id) FILTER (WHERE e.action = 'dispatch'))[1]
            AS dispatch_id,
        (array_agg(e.id ORDER BY e.at DESC, e.id DESC) FILTER (WHERE e.action = 'complete'))[1]
            AS complete_id,
        (array_agg(e.action ORDER BY e.at DESC, e.id DESC)
            FILTER (WHERE e.action IN ('complete', 'rework')))[1] AS last_hr,
        (array_agg(e.handle_due_at ORDER BY e.at DESC, e.id DESC)
            FILTER (WHERE e.handle_due_at IS NOT NULL))[1] AS h_set
    FROM c LEFT JOIN report_events e ON e.report_id = c.id AND e.at <= :as_of
    GROUP BY c.id, c.code, c.reported_at, c.h0, c.d0
), cases AS (
    SELECT p.*, d.at AS dispatched, h.at AS handled,
        coalesce((SELECT x.dispatch_due_at FROM report_events x
                  WHERE x.report_id = p.id AND x.dispatch_due_at IS NOT NULL
                    AND (x.at, x.id) <= (d.at, d.id)
                  ORDER BY x.at DESC, x.id DESC LIMIT 1), p.d0) AS dispatch_due,
        coalesce((SELECT x.handle_due_at FROM report_events x
                  WHERE x.report_id = p.id AND x.handle_due_at IS NOT NULL
                    AND (x.at, x.id) <= (h.at, h.id)
                  ORDER BY x.at DESC, x.id DESC LIMIT 1), p.h0) AS handled_due,
        EXISTS (SELECT FROM report_events x
                WHERE x.report_id = p.id AND x.action IN ('return', 'reassign')
                  AND x.at <= :as_of AND (x.at, x.id) > (d.at, d.id)) AS redispatched,
        coalesce(p.h_set, p.h0) AS due_now
    FROM per p
    LEFT JOIN report_events d ON d.id = p.dispatch_id
    LEFT JOIN report_events h ON h.id = p.complete_id
), flagged AS (
    SELECT c.*,
        c.closed IS NOT NULL AS is_closed,
        c.accepted IS NOT NULL AND c.closed IS NULL AND c.rejected IS NULL
            AND c.last_hr IS DISTINCT FROM 'complete' AND c.due_now < :as_of AS is_overdue
    FROM cases c
)
SELECT code,
    count(*) AS reported,
    count(*) FILTER (WHERE accepted IS NOT NULL) AS accepted,
    count(*) FILTER (WHERE rejected IS NOT NULL) AS rejected,
    count(*) FILTER (WHERE is_closed) AS closed,
    count(*) FILTER (WHERE is_closed AND handled <= handled_due) AS closed_on_time,
    count(*) FILTER (WHERE is_overdue) AS overdue_open,
    count(*) FILTER (WHERE is_closed OR is_overdue) AS due,
    count(*) FILTER (WHERE reworked) AS rework,
    count(*) FILTER (WHERE supervised) AS supervised,
    count(*) FILTER (WHERE dispatched IS NOT NULL) AS dispatched,
    count(*) FILTER (WHERE dispatched <= dispatch_due) AS dispatched_on_time,
    count(*) FILTER (WHERE dispatched IS NOT NULL AND redispatched) AS redispatched,
    percentile_cont(0.5) WITHIN GROUP (
        ORDER BY extract(epoch FROM dispatched - reported_at) / 60.0)
        AS median_minutes_to_dispatch,
    percentile_cont(0.5) WITHIN GROUP (
        ORDER BY extract(epoch FROM closed - reported_at) / 3600.0)
        AS median_hours_to_close
FROM flagged
WHERE code IS NOT NULL AND code <> ''
GROUP BY code
ORDER BY code
""")


def reference_figures(
    conn: Connection,
    start: dt.datetime,
    stop: dt.datetime,
    as_of: dt.datetime,
    *,
    length: int = 15,
    by_unit: bool = False,
    categories: Sequence[str] = (),
    channels: Sequence[str] = (),
) -> Sequence[Any]:
    """The cohort's counts and medians per area code (``length`` digits) or unit id, the
    plain way (see the comment on ``_REFERENCE``); rows ordered by code."""
    return conn.execute(
        _REFERENCE,
        {
            "start": start,
            "stop": stop,
            "as_of": as_of,
            "length": length,
            "by_unit": by_unit,
            "categories": list(categories),
            "channels": list(channels),
        },
    ).all()


# --------------------------------------------------------------------------- case lists

# The printed lists' lines, as of a moment: each case's place, unit and deadline, read from
# its events at or before :as_of (the handling deadline in force then; its status then; its
# first supervision; its last ``complete`` unless a ``rework`` came after it). Public fields
# only: never the reporter, the description or the photos.
_CASE_ROWS: Final = text("""
SELECT r.id, r.category, r.urgency, r.grid_code, g.name AS grid_name, u.name AS unit_name,
    r.reported_at, coalesce(h.handle_due_at, r.handle_due_at) AS deadline,
    coalesce(s.to_status, 'discovered') AS status, sup.at AS supervised_at,
    CASE WHEN hr.action = 'complete' THEN hr.at END AS handled_at
FROM reports r
LEFT JOIN units u ON u.id = r.unit_id
LEFT JOIN LATERAL (
    SELECT a.name FROM areas a WHERE a.code = r.grid_code ORDER BY a.id DESC LIMIT 1
) g ON true
LEFT JOIN LATERAL (
    SELECT e.handle_due_at FROM report_events e
    WHERE e.report_id = r.id AND e.at <= :as_of AND e.handle_due_at IS NOT NULL
    ORDER BY e.at DESC, e.id DESC LIMIT 1
) h ON true
LEFT JOIN LATERAL (
    SELECT e.to_status FROM report_events e
    WHERE e.report_id = r.id AND e.at <= :as_of AND e.to_status IS NOT NULL
    ORDER BY e.at DESC, e.id DESC LIMIT 1
) s ON true
LEFT JOIN LATERAL (
    SELECT min(e.at) AS at FROM report_events e
    WHERE e.report_id = r.id AND e.at <= :as_of AND e.action = 'supervise'
) sup ON true
LEFT JOIN LATERAL (
    SELECT e.action, e.at FROM report_events e
    WHERE e.report_id = r.id AND e.at <= :as_of AND e.action IN ('complete', 'rework')
    ORDER BY e.at DESC, e.id DESC LIMIT 1
) hr ON true
WHERE r.id = ANY(CAST(:ids AS bigint[]))
ORDER BY r.id
""")


def case_rows(conn: Connection, ids: Sequence[int], as_of: dt.datetime) -> Sequence[Any]:
    """The printed lists' lines of some cases as of ``as_of``: id, category, urgency, grid
    code and name, unit name, reported_at, the handling ``deadline`` in force then, the
    ``status`` then, ``supervised_at`` and ``handled_at`` (None unless handling was done
    then); ordered by id. No personal data."""
    if not ids:
        return []
    return conn.execute(_CASE_ROWS, {"ids": [int(i) for i in ids], "as_of": as_of}).all()
