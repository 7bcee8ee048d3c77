"""Reports remember the signed-in user who filed them (``filed_by_user_id``).

A reporter reads the reports it filed; with an API key that is ``filed_by_key_id``, but a
report filed from a signed-in session had no filer, so its reporter could never read it back.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "reports",
        sa.Column("filed_by_user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
    )
    op.create_index("ix_reports_filed_by_user_id", "reports", ["filed_by_user_id"])


def downgrade() -> None:
    op.drop_index("ix_reports_filed_by_user_id", table_name="reports")
    op.drop_column("reports", "filed_by_user_id")
