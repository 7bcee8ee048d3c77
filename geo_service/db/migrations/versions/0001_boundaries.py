"""Boundary versions, areas of every level, version membership, subdivided parts.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "boundary_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("label", sa.String(200), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False, server_default="draft"),
        sa.Column("effective_from", sa.Date),
        sa.Column("effective_to", sa.Date),
        sa.Column("source", sa.Text),
        sa.Column("source_crs", sa.String(32)),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            "status IN ('draft', 'published', 'retired')", name="ck_boundary_versions_status"
        ),
        sa.CheckConstraint(
            "effective_to IS NULL OR effective_from IS NULL OR effective_to > effective_from",
            name="ck_boundary_versions_range",
        ),
    )
    op.create_table(
        "areas",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("parent_code", sa.String(32)),
        sa.Column("households", sa.Integer),
        sa.Column("population", sa.Integer),
        sa.Column("attributes", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint(
            "level IN ('district', 'town', 'community', 'grid')", name="ck_areas_level"
        ),
    )
    op.create_index("ix_areas_geom", "areas", ["geom"], postgresql_using="gist")
    op.create_index("ix_areas_fingerprint", "areas", ["fingerprint"])
    op.create_index("ix_areas_level_code", "areas", ["level", "code"])
    op.create_table(
        "version_areas",
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey("boundary_versions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("area_id", sa.BigInteger, sa.ForeignKey("areas.id"), primary_key=True),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.UniqueConstraint("version_id", "code", name="uq_version_areas_code"),
    )
    op.create_index("ix_version_areas_area", "version_areas", ["area_id"])
    op.create_index("ix_version_areas_level", "version_areas", ["version_id", "level"])
    op.create_table(
        "area_parts",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column(
            "area_id", sa.BigInteger, sa.ForeignKey("areas.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("geom", Geometry("POLYGON", srid=4326, spatial_index=False), nullable=False),
    )
    op.create_index("ix_area_parts_area_id", "area_parts", ["area_id"])
    op.create_index("ix_area_parts_geom", "area_parts", ["geom"], postgresql_using="gist")


def downgrade() -> None:
    op.drop_table("area_parts")
    op.drop_table("version_areas")
    op.drop_table("areas")
    op.drop_table("boundary_versions")
