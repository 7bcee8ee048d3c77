"""The near-duplicate probe's indexes: reports not linked to another, by place and by spot.

Intake links a new report to the nearest open case of its category within 50 m and 72 h
(ties: the oldest). Probed through the GiST index on every report's ``geom``, a spot where
thousands of reports were filed made each probe step over all of them: a bulk of 10,000
identical reports took minutes. Only reports not linked to another can be the case a new one
duplicates, so both indexes hold those only: ``ix_reports_undup_geom`` for the nearest-first
scan, and ``ix_reports_undup_spot`` (category, x, y, id) for a case at the very same spot,
the nearest there is, taken oldest first straight from the index.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-11
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_reports_undup_geom",
        "reports",
        ["geom"],
        postgresql_using="gist",
        postgresql_where=sa.text("duplicate_of IS NULL"),
    )
    op.create_index(
        "ix_reports_undup_spot",
        "reports",
        ["category", sa.text("st_x(geom)"), sa.text("st_y(geom)"), "id"],
        postgresql_where=sa.text("duplicate_of IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_reports_undup_spot", table_name="reports")
    op.drop_index("ix_reports_undup_geom", table_name="reports")
