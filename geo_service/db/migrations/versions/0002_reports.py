"""Units, routing rules, categories, reports and their loop events, API keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "categories",
        sa.Column("code", sa.String(40), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("name_en", sa.Text, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("sla_hours", sa.Integer, nullable=False),
        sa.CheckConstraint("level IN ('community', 'town', 'county')", name="ck_categories_level"),
        sa.CheckConstraint("sla_hours > 0", name="ck_categories_sla"),
    )
    op.create_table(
        "routing_rules",
        sa.Column("category_code", sa.String(40), sa.ForeignKey("categories.code", ondelete="CASCADE"), primary_key=True),
        sa.Column("level", sa.String(16), primary_key=True),
        sa.Column("unit_type", sa.String(40), nullable=False),
    )
    op.create_table(
        "units",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("unit_type", sa.String(40), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("area_code", sa.String(32), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.UniqueConstraint("unit_type", "area_code", name="uq_units_type_area"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(12), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("label", sa.Text),
        sa.Column("scope_area_code", sa.String(32)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("role IN ('reporter', 'grid_worker', 'operator', 'planner', 'admin')", name="ck_api_keys_role"),
    )
    op.create_table(
        "reports",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("idempotency_key", sa.String(200), unique=True),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("category", sa.String(40), sa.ForeignKey("categories.code"), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("photos", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("lon_original", sa.Float(53), nullable=False),
        sa.Column("lat_original", sa.Float(53), nullable=False),
        sa.Column("crs_original", sa.String(24), nullable=False),
        sa.Column("geom", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column("in_coverage", sa.Boolean, nullable=False),
        sa.Column("grid_code", sa.String(32)),
        sa.Column("community_code", sa.String(32)),
        sa.Column("town_code", sa.String(32)),
        sa.Column("district_code", sa.String(32)),
        sa.Column("boundary_version_id", sa.Integer, sa.ForeignKey("boundary_versions.id")),
        sa.Column("handling_level", sa.String(16), nullable=False),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id")),
        sa.Column("routed_by", sa.String(16), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="discovered"),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("supervised", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("hard", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("rating", sa.SmallInteger),
        sa.Column("duplicate_of", sa.BigInteger, sa.ForeignKey("reports.id")),
        sa.Column("filed_by_key_id", sa.Integer, sa.ForeignKey("api_keys.id")),
        sa.Column("response", JSONB),
        sa.CheckConstraint("channel IN ('grid_app', 'wechat', 'hotline_12345', 'video_patrol', 'visit')", name="ck_reports_channel"),
        sa.CheckConstraint("handling_level IN ('community', 'town', 'county')", name="ck_reports_level"),
        sa.CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="ck_reports_rating"),
    )
    op.create_index("ix_reports_geom", "reports", ["geom"], postgresql_using="gist")
    for col in ("status", "grid_code", "community_code", "town_code", "unit_id", "category", "channel", "reported_at", "filed_by_key_id", "duplicate_of"):
        op.create_index(f"ix_reports_{col}", "reports", [col])
    op.create_table(
        "report_contacts",
        sa.Column("report_id", sa.BigInteger, sa.ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("phone", sa.String(32)),
    )
    op.create_table(
        "report_events",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("report_id", sa.BigInteger, sa.ForeignKey("reports.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("from_status", sa.String(20)),
        sa.Column("to_status", sa.String(20)),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id")),
        sa.Column("actor_key_id", sa.Integer, sa.ForeignKey("api_keys.id")),
        sa.Column("actor", sa.Text),
        sa.Column("note", sa.Text),
    )
    op.create_index("ix_report_events_report", "report_events", ["report_id", "at"])


def downgrade() -> None:
    for table in ("report_events", "report_contacts", "reports", "api_keys", "units", "routing_rules", "categories"):
        op.drop_table(table)
