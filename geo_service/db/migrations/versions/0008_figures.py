# ruff: noqa: S608 -- the SQL here is composed from constants only, never from input
"""The command centre's figures: case deadlines in working time, and the per-case fact table
the indicators are read from, kept by triggers as reports and events arrive.

Cases carry the deadlines acceptance fixed (``geo_service.stats.catalogue``): ``urgency``,
``dispatch_due_at`` and ``handle_due_at`` (computed in Python from the State Council calendar;
``due_at`` stays the escalation clock, equal to ``handle_due_at`` until an overdue escalation
moves it). Events that set deadlines (accept, reassign) carry them too, so the deadline in
force at any past moment is known. ``categories.sla_hours`` goes: the catalogue is the one
definition of time limits.

``case_facts`` has one row per report: the report's grouping attributes, and what its events
say, each with its time, so a figure "as of" any moment is a comparison per row:

* first ``accept``, ``reject``, ``dispatch`` (who dispatched, the dispatch deadline in force
  then), the first ``return``/``reassign`` after a dispatch (a wrong dispatch), the last
  ``complete`` (and the handling deadline in force then), the ``verify`` after it,
  ``evaluate`` (closed), the first ``rework`` and ``supervise``;
* ``overdue``: when the case was *open past its handling deadline*, as a multirange: every
  stretch between two events in which the case was accepted, not ended (evaluated or
  rejected), its handling not done (no ``complete`` since the last ``rework``) and strictly
  past the deadline then in force (the latest one an event set, else the case's
  ``handle_due_at``). An event at T counts at T, so "overdue at T" is ``overdue @> T``,
  exact for any T;
* ``step_actions``/``step_seconds``: each event after the first and the seconds since the
  event before it (by id), for the median time per loop step.

``case_facts_refresh(ids)`` recomputes the rows of some reports from their events (one
window pass per report, in (time, id) order; it runs without JIT, which costs more than it
saves here, and with ``random_page_cost`` 1.1, so that the events of a few thousand reports
are read by their index rather than by scanning all events);
statement-level triggers call it for the reports an INSERT/UPDATE/DELETE of ``report_events``
touched and for reports whose mirrored columns changed, in the writer's transaction; an
inserted report gets its row (no events yet) unless its events' trigger made it already. ``changed`` is the writing transaction's id (``pg_current_xact_id``), so a reader
holding the rows up to a snapshot's ``xmin`` re-reads exactly what may have changed since.
Deleting or truncating reports removes their rows and bumps ``case_facts_epoch`` (readers
then read everything again).

Revision ID: 0008
Revises: 0009
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, TSTZMULTIRANGE

revision = "0008"
down_revision = "0009"
branch_labels = None
depends_on = None

URGENCIES = ("normal", "urgent")
# columns of reports mirrored into case_facts: a change to any of them refreshes the row
MIRRORED = (
    "reported_at", "grid_code", "district_code", "unit_id", "category", "channel", "status",
    "urgency", "supervised", "dispatch_due_at", "handle_due_at",
)  # fmt: skip
_LATER_TIMES = (
    "dispatch_due_at", "redispatched_at", "handled_at", "handled_due_at", "verified_at",
    "closed_at", "rework_at", "supervised_at",
)  # fmt: skip
FACTS = (
    "report_id", "reported_at", "grid_code", "district_code", "unit_id", "category", "channel",
    "status", "urgency", "supervised", "accepted_at", "rejected_at", "dispatched_at",
    "dispatched_by", "dispatch_due_at", "redispatched_at", "handled_at", "handled_due_at",
    "verified_at", "closed_at", "rework_at", "supervised_at", "overdue", "step_actions",
    "step_seconds", "changed",
)  # fmt: skip

_REFRESH = f"""
CREATE FUNCTION case_facts_refresh(ids bigint[]) RETURNS void LANGUAGE sql
SET jit = off SET random_page_cost = 1.1 AS $$
WITH ev AS (
    SELECT e.report_id, e.id, e.at, e.action, e.actor_key_id,
        lead(e.at, 1, 'infinity') OVER w AS next_at,
        count(*) FILTER (WHERE e.action = 'accept') OVER w > 0 AS accepted,
        count(*) FILTER (WHERE e.action IN ('evaluate', 'reject')) OVER w > 0 AS ended,
        count(*) FILTER (WHERE e.action = 'dispatch') OVER w > 0 AS dispatched,
        array_agg(e.action) FILTER (WHERE e.action IN ('complete', 'rework')) OVER w AS hr,
        array_agg(e.handle_due_at) FILTER (WHERE e.handle_due_at IS NOT NULL) OVER w AS hd,
        array_agg(e.dispatch_due_at) FILTER (WHERE e.dispatch_due_at IS NOT NULL) OVER w AS dd,
        e.at - lag(e.at) OVER (PARTITION BY e.report_id ORDER BY e.id) AS lag
    FROM report_events e
    WHERE e.report_id = ANY(ids)
    WINDOW w AS (PARTITION BY e.report_id ORDER BY e.at, e.id ROWS UNBOUNDED PRECEDING)
), facts AS (
    -- the state after each event: the last complete/rework, the deadlines last set
    SELECT ev.*, ev.hr[cardinality(ev.hr)] AS last_hr,
        coalesce(ev.hd[cardinality(ev.hd)], r.handle_due_at) AS h_now,
        coalesce(ev.dd[cardinality(ev.dd)], r.dispatch_due_at) AS d_now
    FROM ev JOIN reports r ON r.id = ev.report_id
)
INSERT INTO case_facts AS cf ({", ".join(FACTS)})
SELECT r.id, r.reported_at, r.grid_code, r.district_code, r.unit_id, r.category, r.channel,
    r.status, r.urgency, r.supervised,
    min(f.at) FILTER (WHERE f.action = 'accept'),
    min(f.at) FILTER (WHERE f.action = 'reject'),
    min(f.at) FILTER (WHERE f.action = 'dispatch'),
    (array_agg(f.actor_key_id ORDER BY f.at, f.id) FILTER (WHERE f.action = 'dispatch'))[1],
    (array_agg(f.d_now ORDER BY f.at, f.id) FILTER (WHERE f.action = 'dispatch'))[1],
    min(f.at) FILTER (WHERE f.action IN ('return', 'reassign') AND f.dispatched),
    max(f.at) FILTER (WHERE f.action = 'complete'),
    (array_agg(f.h_now ORDER BY f.at DESC, f.id DESC) FILTER (WHERE f.action = 'complete'))[1],
    max(f.at) FILTER (WHERE f.action = 'verify'),
    min(f.at) FILTER (WHERE f.action = 'evaluate'),
    min(f.at) FILTER (WHERE f.action = 'rework'),
    min(f.at) FILTER (WHERE f.action = 'supervise'),
    coalesce(
        range_agg(CASE WHEN f.h_now >= f.at THEN tstzrange(f.h_now, f.next_at, '()')
                       ELSE tstzrange(f.at, f.next_at, '[)') END) FILTER (
            WHERE f.accepted AND NOT f.ended AND f.last_hr IS DISTINCT FROM 'complete'
            AND f.h_now IS NOT NULL AND greatest(f.at, f.h_now) < f.next_at),
        '{{}}'),
    coalesce(array_agg(f.action ORDER BY f.id) FILTER (WHERE f.lag IS NOT NULL), '{{}}'),
    coalesce(array_agg(greatest(0, extract(epoch FROM f.lag))::float8 ORDER BY f.id)
        FILTER (WHERE f.lag IS NOT NULL), '{{}}'),
    pg_current_xact_id()::text::bigint
FROM reports r LEFT JOIN facts f ON f.report_id = r.id
WHERE r.id = ANY(ids)
GROUP BY r.id
ON CONFLICT (report_id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in FACTS[1:])}
$$
"""
_EPOCH = "UPDATE case_facts_epoch SET epoch = epoch + 1"
_CHANGED = " OR ".join(f"o.{c} IS DISTINCT FROM n.{c}" for c in MIRRORED)
# a new report's row before any event (its events, usually inserted by the same statement,
# fill it in: whichever trigger runs first, the events' recomputation wins)
_FIRST_ROW = """
INSERT INTO case_facts (report_id, reported_at, grid_code, district_code, unit_id, category,
    channel, status, urgency, supervised, overdue, step_actions, step_seconds, changed)
SELECT n.id, n.reported_at, n.grid_code, n.district_code, n.unit_id, n.category, n.channel,
    n.status, n.urgency, n.supervised, '{}', '{}', '{}', pg_current_xact_id()::text::bigint
FROM new_rows n
ON CONFLICT (report_id) DO NOTHING;
"""
_FUNCTIONS = {
    "case_facts_reports_ins": _FIRST_ROW,
    "case_facts_reports_upd": (
        "PERFORM case_facts_refresh(ARRAY(SELECT n.id FROM new_rows n "
        f"JOIN old_rows o ON o.id = n.id WHERE {_CHANGED}));"
    ),
    "case_facts_reports_del": (
        "DELETE FROM case_facts f USING old_rows o WHERE f.report_id = o.id; "
        f"{_EPOCH};"
    ),
    "case_facts_reports_trunc": f"TRUNCATE case_facts; {_EPOCH};",
    "case_facts_events_new": (
        "PERFORM case_facts_refresh(ARRAY(SELECT DISTINCT n.report_id FROM new_rows n));"
    ),
    "case_facts_events_old": (
        "PERFORM case_facts_refresh(ARRAY(SELECT DISTINCT o.report_id FROM old_rows o));"
    ),
}
# (trigger, table, event, transition tables, function)
_TRIGGERS = (
    ("case_facts_ins", "reports", "INSERT", "NEW TABLE AS new_rows", "case_facts_reports_ins"),
    ("case_facts_upd", "reports", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows",
     "case_facts_reports_upd"),
    ("case_facts_del", "reports", "DELETE", "OLD TABLE AS old_rows", "case_facts_reports_del"),
    ("case_facts_trunc", "reports", "TRUNCATE", "", "case_facts_reports_trunc"),
    ("case_facts_ev_ins", "report_events", "INSERT", "NEW TABLE AS new_rows",
     "case_facts_events_new"),
    ("case_facts_ev_upd", "report_events", "UPDATE", "NEW TABLE AS new_rows",
     "case_facts_events_new"),
    ("case_facts_ev_del", "report_events", "DELETE", "OLD TABLE AS old_rows",
     "case_facts_events_old"),
)  # fmt: skip


def _backfill_deadlines() -> None:
    """Deadlines of the cases already accepted, from their first acceptance (in Python: the
    working-time calendar is not SQL)."""
    import numpy as np

    from geo_service.stats.catalogue import deadlines, default_urgency

    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT r.id, r.category, extract(epoch FROM min(e.at)) AS accepted "
            "FROM reports r JOIN report_events e ON e.report_id = r.id AND e.action = 'accept' "
            "GROUP BY r.id"
        )
    ).all()
    if not rows:
        return
    ids = [r.id for r in rows]
    cats = np.array([r.category for r in rows], dtype=object)
    accepted = np.array([float(r.accepted) for r in rows])
    urgency = [default_urgency(c) for c in cats.tolist()]
    dispatch = deadlines(cats, "dispatch", accepted, urgency)
    handle = deadlines(cats, "handle", accepted, urgency)
    conn.execute(
        sa.text(
            "UPDATE reports r SET urgency = u.urgency, dispatch_due_at = to_timestamp(u.d), "
            "handle_due_at = to_timestamp(u.h) FROM unnest(CAST(:ids AS bigint[]), "
            "CAST(:urgency AS text[]), CAST(:d AS float8[]), CAST(:h AS float8[])) "
            "AS u(id, urgency, d, h) WHERE r.id = u.id"
        ),
        {"ids": ids, "urgency": urgency, "d": dispatch.tolist(), "h": handle.tolist()},
    )


def upgrade() -> None:
    op.add_column("reports", sa.Column("urgency", sa.String(8)))
    op.add_column("reports", sa.Column("dispatch_due_at", sa.DateTime(timezone=True)))
    op.add_column("reports", sa.Column("handle_due_at", sa.DateTime(timezone=True)))
    op.create_check_constraint(
        "ck_reports_urgency", "reports", f"urgency IN {URGENCIES!r}"
    )
    op.create_index(
        "ix_reports_handling_due",
        "reports",
        ["handle_due_at"],
        postgresql_where=sa.text("status IN ('accepted', 'dispatched', 'handling')"),
    )
    op.add_column("report_events", sa.Column("dispatch_due_at", sa.DateTime(timezone=True)))
    op.add_column("report_events", sa.Column("handle_due_at", sa.DateTime(timezone=True)))
    op.drop_constraint("ck_categories_sla", "categories", type_="check")
    op.drop_column("categories", "sla_hours")
    _backfill_deadlines()

    op.create_table(
        "case_facts",
        sa.Column("report_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("grid_code", sa.String(32)),
        sa.Column("district_code", sa.String(32)),
        sa.Column("unit_id", sa.Integer),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("urgency", sa.String(8)),
        sa.Column("supervised", sa.Boolean, nullable=False),
        *(
            sa.Column(c, sa.DateTime(timezone=True))
            for c in ("accepted_at", "rejected_at", "dispatched_at")
        ),
        sa.Column("dispatched_by", sa.Integer),
        *(sa.Column(c, sa.DateTime(timezone=True)) for c in _LATER_TIMES),
        sa.Column("overdue", TSTZMULTIRANGE, nullable=False),
        sa.Column("step_actions", ARRAY(sa.String(20)), nullable=False),
        sa.Column("step_seconds", ARRAY(sa.Float(53)), nullable=False),
        sa.Column("changed", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_case_facts_changed", "case_facts", ["changed"])
    op.create_table(
        "case_facts_epoch",
        sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO case_facts_epoch (id, epoch) VALUES (1, 0)")
    op.execute(_REFRESH)
    for name, body in _FUNCTIONS.items():
        op.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {body} RETURN NULL; END $$"
        )
    for trigger, table, event, transitions, fn in _TRIGGERS:
        referencing = f"REFERENCING {transitions} " if transitions else ""
        op.execute(
            f"CREATE TRIGGER {trigger} AFTER {event} ON {table} {referencing}"
            f"FOR EACH STATEMENT EXECUTE FUNCTION {fn}()"
        )
    op.execute("SELECT case_facts_refresh(ARRAY(SELECT id FROM reports))")


def downgrade() -> None:
    for trigger, table, *_ in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    for name in _FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.execute("DROP FUNCTION IF EXISTS case_facts_refresh(bigint[])")
    op.drop_table("case_facts_epoch")
    op.drop_table("case_facts")
    op.add_column(
        "categories",
        sa.Column("sla_hours", sa.Integer, nullable=False, server_default=sa.text("24")),
    )
    op.create_check_constraint("ck_categories_sla", "categories", "sla_hours > 0")
    op.drop_column("report_events", "handle_due_at")
    op.drop_column("report_events", "dispatch_due_at")
    op.drop_index("ix_reports_handling_due", table_name="reports")
    op.drop_constraint("ck_reports_urgency", "reports", type_="check")
    op.drop_column("reports", "handle_due_at")
    op.drop_column("reports", "dispatch_due_at")
    op.drop_column("reports", "urgency")
