"""Audit log, revocable keys, public cases.

* ``audit_log``: who changed boundaries, cases, units, keys and users — the API key (id and
  role) or the local account, the action, its target, when (the writing transaction's time)
  and from where (the client address, or the local host). Rows are written in the transaction
  of the change they record, and only ever appended: a trigger refuses every ``UPDATE``,
  ``DELETE`` and ``TRUNCATE`` (:func:`audit_log_append_only`).
* ``api_key_generation``: one counter bumped by a statement trigger on every change of
  ``api_keys`` in the writer's transaction. Workers cache key look-ups and re-read the counter
  at most every ``GEO_AUTH_KEY_RECHECK_S`` (0.5 s), dropping their cache when it moved: a
  revoked key stops working on every worker within that bound (see ``geo_service.auth``).
* ``reports.public``: staff marked the case public; together with a category configured public
  (``GEO_PRIVACY_PUBLIC_CATEGORIES``) the public views show its exact point and description.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "reports",
        sa.Column("public", sa.Boolean, nullable=False, server_default=sa.false()),
    )

    op.create_table(
        "api_key_generation",
        sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("generation", sa.BigInteger, nullable=False, server_default="0"),
        sa.CheckConstraint("id = 1", name="ck_api_key_generation_one_row"),
    )
    op.execute("INSERT INTO api_key_generation (id) VALUES (1)")
    op.execute("""
        CREATE FUNCTION bump_api_key_generation() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE api_key_generation SET generation = generation + 1 WHERE id = 1;
            RETURN NULL;
        END $$
    """)
    op.execute(
        "CREATE TRIGGER api_keys_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
        "ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION bump_api_key_generation()"
    )

    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("actor_key_id", sa.Integer, sa.ForeignKey("api_keys.id")),
        sa.Column("actor_role", sa.String(16)),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("target_type", sa.String(20), nullable=False),
        sa.Column("target_id", sa.Text, nullable=False),
        sa.Column("details", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_target", "audit_log", ["target_type", "target_id"])
    op.create_index("ix_audit_log_actor_key_id", "audit_log", ["actor_key_id"])
    op.create_index("ix_audit_log_action", "audit_log", ["action"])
    op.execute("""
        CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$
    """)
    op.execute(
        "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
    )


def downgrade() -> None:
    op.drop_table("audit_log")  # its triggers go with it
    op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    op.execute("DROP TRIGGER IF EXISTS api_keys_generation ON api_keys")
    op.execute("DROP FUNCTION IF EXISTS bump_api_key_generation()")
    op.drop_table("api_key_generation")
    op.drop_column("reports", "public")
