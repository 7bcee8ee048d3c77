"""Publishing lineage: which version a publish replaced, and when a version was rolled back.

``replaces_id`` is set when a draft is published: the version whose range the publish closed.
Rolling back a version restores exactly that one (dates alone can be ambiguous once a rollback
has left two ranges ending on the same day). ``rolled_back_at`` marks a version taken back.

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "boundary_versions",
        sa.Column(
            "replaces_id",
            sa.Integer,
            sa.ForeignKey("boundary_versions.id", name="fk_boundary_versions_replaces"),
        ),
    )
    op.add_column(
        "boundary_versions", sa.Column("rolled_back_at", sa.DateTime(timezone=True))
    )


def downgrade() -> None:
    op.drop_column("boundary_versions", "rolled_back_at")
    op.drop_column("boundary_versions", "replaces_id")
