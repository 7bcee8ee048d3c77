"""Batch roll-ups: counts made on a Dask cluster (``geo-service batch rollup --load``).

``batch_rollups`` holds report counts per (by, period, start, code, category, channel):
``by`` is ``grid``, ``community``, ``town`` or ``h3:RES``; ``period`` is ``day``, ``week`` or
``month`` and ``start`` its first Beijing day; ``code`` is the area code or the H3 cell's hex
name. A load replaces one (by, period) whole, in one transaction, and records in
``batch_rollup_loads`` where it came from, how many rows and reports it holds and when.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_rollups",
        sa.Column("by", sa.String(12), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("start", sa.Date, nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("by", "period", "start", "code", "category", "channel"),
    )
    op.create_table(
        "batch_rollup_loads",
        sa.Column("by", sa.String(12), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("reports", sa.BigInteger, nullable=False),
        sa.Column(
            "loaded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("by", "period"),
    )


def downgrade() -> None:
    op.drop_table("batch_rollup_loads")
    op.drop_table("batch_rollups")
