"""Storing accepted reports: one binary COPY into a staging table, one statement to insert.

Why: a bulk of 10,000 reports sent as 25 array parameters spends most of its time in the
driver quoting array elements in Python; a binary COPY of the same rows costs a few
milliseconds. The staging table is a temporary table of the session (created once per pooled
connection, emptied at each commit), so intake adds no catalog churn per request. One
statement then inserts the new reports (``ON CONFLICT (idempotency_key) DO NOTHING``), their
discovery events and their reporters' contacts, and answers the ids it stored.

Near-duplicate suggestion runs after: each new report probes the GiST index for an open case
of its category nearby and recently; only reports that find one are updated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import Connection, text

# (column, PostgreSQL type) of a staged row, in the order of the tuples given to ``store``
STAGING: Final = (
    ("id", "int8"), ("key", "text"), ("hash", "text"), ("channel", "text"),
    ("category", "text"), ("description", "text"), ("photos", "text"),
    ("reported_at", "timestamptz"), ("lon0", "float8"), ("lat0", "float8"), ("crs", "text"),
    ("lon", "float8"), ("lat", "float8"), ("in_cov", "bool"), ("grid", "text"),
    ("community", "text"), ("town", "text"), ("district", "text"), ("level", "text"),
    ("unit", "int4"), ("routed_by", "text"), ("due_at", "timestamptz"), ("hard", "bool"),
    ("response", "text"), ("h3", "int8"), ("has_reporter", "bool"), ("name", "text"),
    ("phone", "text"),
)  # fmt: skip
_COLUMNS = ", ".join(c for c, _ in STAGING)
_CREATE = text(
    "CREATE TEMP TABLE IF NOT EXISTS intake_staging ("
    + ", ".join(f"{c} {t}" for c, t in STAGING)
    + ") ON COMMIT DELETE ROWS"
)
# a bulk's statements look costly enough to the planner to compile them (JIT), which takes
# longer than running them: off for the rest of the intake transaction
_NO_JIT = text("SET LOCAL jit = off")
_CLEAR = text("DELETE FROM intake_staging")  # rows of an earlier call in this transaction
_COPY = f"COPY intake_staging ({_COLUMNS}) FROM STDIN (FORMAT binary)"
_INSERT = text("""
WITH ins AS (
    INSERT INTO reports (id, idempotency_key, request_hash, channel, category, description,
        photos, reported_at, lon_original, lat_original, crs_original, geom, in_coverage,
        grid_code, community_code, town_code, district_code, boundary_version_id,
        handling_level, unit_id, routed_by, status, status_at, due_at, hard, filed_by_key_id,
        response, h3_11)
    SELECT s.id, s.key, s.hash, s.channel, s.category, s.description, CAST(s.photos AS jsonb),
        s.reported_at, s.lon0, s.lat0, s.crs, ST_Point(s.lon, s.lat, 4326), s.in_cov, s.grid,
        s.community, s.town, s.district, CAST(:version AS integer), s.level, s.unit,
        s.routed_by, 'discovered', s.reported_at, s.due_at, s.hard, CAST(:key_id AS integer),
        CAST(s.response AS jsonb), s.h3
    FROM intake_staging s
    ORDER BY s.id
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
), events AS (
    INSERT INTO report_events (report_id, at, action, to_status, unit_id, actor_key_id, actor,
        note)
    SELECT s.id, s.reported_at, 'discover', 'discovered', s.unit, CAST(:key_id AS integer),
        s.channel, 'routed by ' || s.routed_by
    FROM intake_staging s JOIN ins ON ins.id = s.id
    ORDER BY s.id
), contacts AS (
    INSERT INTO report_contacts (report_id, name, phone)
    SELECT s.id, s.name, s.phone
    FROM intake_staging s JOIN ins ON ins.id = s.id
    WHERE s.has_reporter
)
SELECT id FROM ins
""")
_NEXT_IDS = text("SELECT nextval('reports_id_seq') FROM generate_series(1, :n)")

# the nearest open case of the same category within the distance and time window (ties: the
# older id), probed per new report through the GiST index on geom: OFFSET 0 keeps the planner
# from scanning another index instead (duplicate_of IS NULL looks selective to it before the
# table's statistics catch up with a bulk load, and then every probe reads the whole table)
_NEAR_DUPLICATES = text("""
SELECT r.id, d.id AS duplicate_of
FROM reports r
CROSS JOIN LATERAL (
    SELECT o.id
    FROM (SELECT * FROM reports n WHERE n.geom && ST_Expand(r.geom, :deg) OFFSET 0) o
    WHERE o.category = r.category AND o.id <> r.id AND o.duplicate_of IS NULL
      AND o.status = ANY(:open)
      AND o.reported_at BETWEEN r.reported_at - make_interval(secs => CAST(:hours AS float8) * 3600)
                            AND r.reported_at
      AND (o.reported_at < r.reported_at OR o.id < r.id)
      AND ST_DWithin(o.geom::geography, r.geom::geography, :metres)
    ORDER BY ST_Distance(o.geom::geography, r.geom::geography), o.id
    LIMIT 1) d
WHERE r.id = ANY(CAST(:ids AS bigint[]))
""")
_LINK_DUPLICATES = text("""
UPDATE reports r SET duplicate_of = v.dup,
    response = jsonb_set(r.response, '{suspected_duplicate_of}', to_jsonb(v.dup))
FROM unnest(CAST(:ids AS bigint[]), CAST(:dups AS bigint[])) AS v(id, dup)
WHERE r.id = v.id
""")


def reserve_ids(conn: Connection, n: int) -> list[int]:
    """``n`` new report ids, increasing."""
    return [int(i) for i in conn.execute(_NEXT_IDS, {"n": n}).scalars().all()] if n else []


def store(
    conn: Connection, rows: Sequence[tuple[Any, ...]], version_id: int | None, key_id: int | None
) -> set[int]:
    """Insert staged ``rows`` (tuples laid out as :data:`STAGING`) that are new, in the
    caller's transaction; the ids stored (a row whose key exists is not)."""
    if not rows:
        return set()
    conn.execute(_NO_JIT)
    conn.execute(_CREATE)
    conn.execute(_CLEAR)
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(_COPY) as copy:
        copy.set_types([t for _, t in STAGING])
        for row in rows:
            copy.write_row(row)
    result = conn.execute(_INSERT, {"version": version_id, "key_id": key_id})
    return {int(i) for i in result.scalars().all()}


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
            "deg": distance_m / 55_000.0,  # over-wide box: a degree is >= 55 km below 60° N
        },
    ).all()
    linked = {int(rid): int(dup) for rid, dup in found}
    if linked:
        conn.execute(_LINK_DUPLICATES, {"ids": list(linked), "dups": list(linked.values())})
    return linked
