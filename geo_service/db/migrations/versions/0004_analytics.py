# ruff: noqa: S608 -- the SQL here is composed from constants only, never from input
"""Analytics: the H3 res-11 cell of each report, an H3 parent function, the heat roll-up.

``reports.h3_11`` is the report's H3 cell at resolution 11 as a bigint (H3 cannot be computed
in plain SQL, so intake fills it in the INSERT: ``geo_service.analytics.h3sql.cells_of_points``). ``h3_parent``
takes any cell to a coarser resolution with bit operations. ``heat_rollup`` counts reports per
(local day, H3 res-9 cell, grid, category, channel, status); statement-level triggers on
``reports`` keep it equal to a direct count in the same transaction as every insert, update
(status, category, re-location, the cell being filled in), delete or truncate. A report whose
``h3_11`` is NULL is not counted; moving a report's point clears its cell so it is recomputed.

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-24
"""

import h3
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None

# China has one time zone and no daylight saving: "a day" of reports is a Beijing-time day
_DAY = "(({t}.reported_at AT TIME ZONE 'Asia/Shanghai')::date)"
_KEY = "{t}.h3_11, {t}.reported_at, {t}.grid_code, {t}.category, {t}.channel, {t}.status"


def _cols(t: str) -> str:
    return (
        f"{_DAY.format(t=t)} AS day, h3_parent({t}.h3_11, 9) AS h3_9, "
        f"coalesce({t}.grid_code, '') AS grid_code, {t}.category, {t}.channel, {t}.status"
    )


_UPSERT = """
    INSERT INTO heat_rollup AS h (day, h3_9, grid_code, category, channel, status, n)
    SELECT day, h3_9, grid_code, category, channel, status, sum(delta)
    FROM ({rows}) AS d
    GROUP BY day, h3_9, grid_code, category, channel, status
    HAVING sum(delta) <> 0
    ORDER BY day, h3_9, grid_code, category, channel, status
    ON CONFLICT (day, h3_9, grid_code, category, channel, status)
    DO UPDATE SET n = h.n + EXCLUDED.n;
"""
_ADDED = f"SELECT {_cols('n')}, 1 AS delta FROM new_rows n WHERE n.h3_11 IS NOT NULL"
_REMOVED = f"SELECT {_cols('o')}, -1 AS delta FROM old_rows o WHERE o.h3_11 IS NOT NULL"
_CHANGED = (
    f"SELECT {_cols('n')}, 1 AS delta FROM new_rows n JOIN old_rows o ON o.id = n.id "
    f"WHERE n.h3_11 IS NOT NULL AND ({_KEY.format(t='o')}) IS DISTINCT FROM ({_KEY.format(t='n')}) "
    f"UNION ALL SELECT {_cols('o')}, -1 AS delta FROM old_rows o JOIN new_rows n ON n.id = o.id "
    f"WHERE o.h3_11 IS NOT NULL AND ({_KEY.format(t='o')}) IS DISTINCT FROM ({_KEY.format(t='n')})"
)


def _backfill_cells() -> None:
    """Compute ``h3_11`` for the reports already stored (in batches)."""
    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(
            sa.text(
                "SELECT id, ST_Y(geom) AS lat, ST_X(geom) AS lon FROM reports "
                "WHERE h3_11 IS NULL AND id > :last ORDER BY id LIMIT 50000"
            ),
            {"last": last},
        ).all()
        if not rows:
            return
        cells = [h3.str_to_int(h3.latlng_to_cell(r.lat, r.lon, 11)) for r in rows]
        conn.execute(
            sa.text(
                "UPDATE reports r SET h3_11 = u.c FROM unnest(CAST(:ids AS bigint[]), "
                "CAST(:cells AS bigint[])) AS u(id, c) WHERE r.id = u.id"
            ),
            {"ids": [r.id for r in rows], "cells": cells},
        )
        last = rows[-1].id


def upgrade() -> None:
    op.add_column("reports", sa.Column("h3_11", sa.BigInteger))
    op.create_index(
        "ix_reports_h3_missing", "reports", ["id"], postgresql_where=sa.text("h3_11 IS NULL")
    )
    # parent of an H3 cell at resolution `res` (<= its own): resolution bits 52-55 set to res,
    # digits res+1..15 set to 7 (unused); SQL-language and immutable, so the planner inlines it
    op.execute("""
        CREATE FUNCTION h3_parent(cell bigint, res integer) RETURNS bigint
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT (cell & ~(15::bigint << 52)) | (res::bigint << 52)
                   | ((1::bigint << (3 * (15 - res))) - 1)
        $$
    """)
    op.create_table(
        "heat_rollup",
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("h3_9", sa.BigInteger, nullable=False),
        sa.Column("grid_code", sa.String(32), nullable=False),  # '' outside coverage
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("day", "h3_9", "grid_code", "category", "channel", "status"),
    )
    _backfill_cells()
    op.execute(
        "INSERT INTO heat_rollup (day, h3_9, grid_code, category, channel, status, n) "
        f"SELECT {_cols('r')}, count(*) FROM reports r WHERE r.h3_11 IS NOT NULL "
        "GROUP BY 1, 2, 3, 4, 5, 6"
    )
    op.execute(f"""
        CREATE FUNCTION heat_rollup_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {_UPSERT.format(rows=_ADDED)} RETURN NULL; END $$
    """)
    op.execute(f"""
        CREATE FUNCTION heat_rollup_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {_UPSERT.format(rows=_CHANGED)} RETURN NULL; END $$
    """)
    op.execute(f"""
        CREATE FUNCTION heat_rollup_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {_UPSERT.format(rows=_REMOVED)} RETURN NULL; END $$
    """)
    op.execute("""
        CREATE FUNCTION heat_rollup_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN TRUNCATE heat_rollup; RETURN NULL; END $$
    """)
    op.execute("""
        CREATE FUNCTION reports_point_moved() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN NEW.h3_11 := NULL; RETURN NEW; END $$
    """)
    op.execute(
        "CREATE TRIGGER heat_rollup_ins AFTER INSERT ON reports REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION heat_rollup_insert()"
    )
    op.execute(
        "CREATE TRIGGER heat_rollup_upd AFTER UPDATE ON reports "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION heat_rollup_update()"
    )
    op.execute(
        "CREATE TRIGGER heat_rollup_del AFTER DELETE ON reports REFERENCING OLD TABLE AS old_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION heat_rollup_delete()"
    )
    op.execute(
        "CREATE TRIGGER heat_rollup_trunc AFTER TRUNCATE ON reports "
        "FOR EACH STATEMENT EXECUTE FUNCTION heat_rollup_truncate()"
    )
    op.execute(
        "CREATE TRIGGER reports_point_moved BEFORE UPDATE OF geom ON reports FOR EACH ROW "
        "WHEN (OLD.geom IS DISTINCT FROM NEW.geom AND NEW.h3_11 IS NOT DISTINCT FROM OLD.h3_11) "
        "EXECUTE FUNCTION reports_point_moved()"
    )


def downgrade() -> None:
    for trigger in (
        "reports_point_moved",
        "heat_rollup_trunc",
        "heat_rollup_del",
        "heat_rollup_upd",
        "heat_rollup_ins",
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON reports")
    for fn in (
        "reports_point_moved",
        "heat_rollup_truncate",
        "heat_rollup_delete",
        "heat_rollup_update",
        "heat_rollup_insert",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}()")
    op.drop_table("heat_rollup")
    op.execute("DROP FUNCTION IF EXISTS h3_parent(bigint, integer)")
    op.drop_index("ix_reports_h3_missing", table_name="reports")
    op.drop_column("reports", "h3_11")
