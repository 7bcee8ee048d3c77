# ruff: noqa: S608 -- the SQL here is composed from constants only, never from input
"""Layer generations: counters that change whenever what a map layer draws may have changed.

Tile caches (one per worker process) key their entries by these counters, so a tile made
before a change is never served after the process has read the new counters.
``layer_generations`` has one row per shard and one counter column per source: ``reports``
(any insert/update/delete/truncate of ``reports``) and ``boundaries`` (``boundary_versions``,
``version_areas``, ``areas``, ``units``). Statement-level triggers add 1 to the row of shard
``pg_backend_pid() % 16`` in the writer's own transaction, so the counters move exactly when
the change commits (never before: a reader cannot key a pre-commit tile with a post-commit
generation). Sharding keeps concurrent writers on different connections from queueing on one
row lock until commit; one row per shard holding every column means a transaction touching both
sources locks a single row, so two such transactions cannot deadlock. A source's generation is
the sum of its column over the shards: it only grows, and grows with every committed change.

``tile_areas`` is a derived, tile-ready copy of a version's areas (Web Mercator geometry, the
district/town/community chain and the area's own unit flattened in), so an area tile is one
index probe and no join or reprojection. ``tile_area_builds`` records the ``boundaries``
generation each version's copy was built at; the tile service rebuilds a copy whose generation
is behind (``geo_service.tiles.prepared``). Neither table has a generation trigger.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SHARDS = 16
_SOURCES = {
    "reports": ("reports",),
    "boundaries": ("boundary_versions", "version_areas", "areas", "units"),
}


def upgrade() -> None:
    op.create_table(
        "layer_generations",
        sa.Column("shard", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("reports", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("boundaries", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.execute(
        sa.text("INSERT INTO layer_generations (shard) SELECT generate_series(0, :last)")
        .bindparams(last=SHARDS - 1)
    )
    op.execute(f"""
        CREATE FUNCTION bump_layer_generation() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE layer_generations SET
                reports = reports + CASE WHEN TG_ARGV[0] = 'reports' THEN 1 ELSE 0 END,
                boundaries = boundaries + CASE WHEN TG_ARGV[0] = 'boundaries' THEN 1 ELSE 0 END,
                changed_at = now()
            WHERE shard = pg_backend_pid() % {SHARDS};
            RETURN NULL;
        END $$
    """)
    for source, tables in _SOURCES.items():
        for table in tables:
            op.execute(
                f"CREATE TRIGGER {table}_layer_generation "
                f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION bump_layer_generation('{source}')"
            )
    op.create_table(
        "tile_areas",
        sa.Column("version_id", sa.Integer, sa.ForeignKey("boundary_versions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("area_id", sa.BigInteger, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("parent_code", sa.String(32)),
        sa.Column("households", sa.Integer),
        sa.Column("population", sa.Integer),
        sa.Column("district_code", sa.String(32)),
        sa.Column("district_name", sa.Text),
        sa.Column("town_code", sa.String(32)),
        sa.Column("town_name", sa.Text),
        sa.Column("community_code", sa.String(32)),
        sa.Column("community_name", sa.Text),
        sa.Column("unit_name", sa.Text),
        sa.Column("geom", Geometry("MULTIPOLYGON", srid=3857, spatial_index=False), nullable=False),
        sa.PrimaryKeyConstraint("version_id", "area_id"),
    )
    op.create_index("ix_tile_areas_geom", "tile_areas", ["geom"], postgresql_using="gist")
    op.create_index("ix_tile_areas_version_level_code", "tile_areas", ["version_id", "level", "code"])
    op.create_table(
        "tile_area_builds",
        sa.Column("version_id", sa.Integer, sa.ForeignKey("boundary_versions.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("tile_area_builds")
    op.drop_table("tile_areas")
    for tables in _SOURCES.values():
        for table in tables:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_layer_generation ON {table}")
    op.execute("DROP FUNCTION IF EXISTS bump_layer_generation()")
    op.drop_table("layer_generations")
