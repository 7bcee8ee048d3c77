"""The schema, declared once: every table as a SQLAlchemy Core ``Table`` and every vocabulary.

The alembic migrations (``geo_service/db/migrations/versions``) build the database; this module
is the single declaration of what they build. Alembic's autogenerate compares the migrated
database against :data:`metadata` (``tests/test_schema.py`` asserts there is no drift: tables,
columns, types, nullability, server defaults, indexes, unique constraints, foreign keys), so a
migration that changes the schema changes this module in the same commit. Code that reads or
writes a table imports it from here (``from geo_service.db.schema import reports``) instead of
declaring its own ``table(...)``; code that checks a value against a vocabulary (area levels,
roles, statuses, channels, handling levels) imports the tuple from here, the same tuple the
CHECK constraints are written from. Triggers and SQL functions (heat roll-up, layer
generations, ``h3_parent``) are not tables and live in their migrations only.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSTZMULTIRANGE

# --- vocabularies -------------------------------------------------------------------------

AreaLevel = Literal["district", "town", "community", "grid"]
AREA_LEVELS: Final[tuple[AreaLevel, ...]] = get_args(AreaLevel)
"""Levels of the territorial hierarchy, top down (``areas.level``, ``version_areas.level``):
district (区县) → town (镇街) → community (村社区) → grid (网格)."""

VersionStatus = Literal["draft", "published", "retired"]
VERSION_STATUSES: Final[tuple[VersionStatus, ...]] = get_args(VersionStatus)
"""Life of a boundary version (``boundary_versions.status``): a draft is edited, a published
version serves its date range, a retired one is kept for history."""

Role = Literal["reporter", "grid_worker", "operator", "planner", "admin"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)
"""Roles an API key can hold (``api_keys.role``); a grid worker's key is scoped to an area."""

HandlingLevel = Literal["community", "town", "county"]
HANDLING_LEVELS: Final[tuple[HandlingLevel, ...]] = get_args(HandlingLevel)
"""Where a matter is handled, lowest first (``categories.level``, ``reports.handling_level``):
"small matters stay in the village, big ones in the town, hard ones in the county"."""

Channel = Literal["grid_app", "wechat", "hotline_12345", "video_patrol", "visit"]
CHANNELS: Final[tuple[Channel, ...]] = get_args(Channel)
"""How a report came in (``reports.channel``); their labels live in ``reports.taxonomy``."""

OpenStatus = Literal[
    "discovered", "accepted", "dispatched", "handling", "handled", "verified", "fed_back"
]
ClosedStatus = Literal["evaluated", "rejected"]
ReportStatus = Literal[OpenStatus, ClosedStatus]
OPEN_STATUSES: Final[tuple[OpenStatus, ...]] = get_args(OpenStatus)
"""Statuses of a case still in the loop, in loop order (``reports.status``); which of them
can be overdue: :data:`UNHANDLED_STATUSES`."""
CLOSED_STATUSES: Final[tuple[ClosedStatus, ...]] = get_args(ClosedStatus)
"""Statuses that end a case (``closed_at`` is set)."""
REPORT_STATUSES: Final[tuple[ReportStatus, ...]] = (*OPEN_STATUSES, *CLOSED_STATUSES)
"""Every status a report can be in: the open ones in loop order, then the closed ones."""
UNHANDLED_STATUSES: Final[tuple[OpenStatus, ...]] = ("accepted", "dispatched", "handling")
"""Statuses of an accepted case whose handling is not done: such a case past its
``handle_due_at`` is overdue (a handled, verified or fed-back case is not: its handling is
done, only the centre's steps remain)."""

RATING_MIN: Final = 1
RATING_MAX: Final = 5
"""Bounds of a reporter's satisfaction rating (``reports.rating``)."""

Urgency = Literal["normal", "urgent"]
URGENCIES: Final[tuple[Urgency, ...]] = get_args(Urgency)
"""How fast a case must go (``reports.urgency``, set when it is accepted): normal cases run
on working time, urgent ones on calendar time (``geo_service.stats.catalogue``)."""


def _one_of(column: str, values: tuple[str, ...]) -> str:
    """The CHECK text ``column IN ('a', 'b')`` for a vocabulary (constants, never input)."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


metadata: Final = MetaData()
"""Every table of the service; alembic's ``target_metadata``."""

# --- boundaries (0001, 0007) ----------------------------------------------------------------

boundary_versions: Final = Table(
    "boundary_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("label", String(200), nullable=False, unique=True),
    Column("status", String(16), nullable=False, server_default="draft"),
    Column("effective_from", Date),
    Column("effective_to", Date),
    Column("source", Text),
    Column("source_crs", String(32)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True)),
    Column(
        "replaces_id",
        Integer,
        ForeignKey("boundary_versions.id", name="fk_boundary_versions_replaces"),
    ),
    Column("rolled_back_at", DateTime(timezone=True)),
    CheckConstraint(_one_of("status", VERSION_STATUSES), name="ck_boundary_versions_status"),
    CheckConstraint(
        "effective_to IS NULL OR effective_from IS NULL OR effective_to > effective_from",
        name="ck_boundary_versions_range",
    ),
)
"""A generation of boundaries (MapIt-style): draft → published → retired, with a date range;
``replaces_id`` is the version a publish closed, restored by a rollback."""

areas: Final = Table(
    "areas",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("code", String(32), nullable=False),
    Column("name", Text, nullable=False),
    Column("level", String(16), nullable=False),
    Column("parent_code", String(32)),
    Column("households", Integer),
    Column("population", Integer),
    Column("attributes", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("fingerprint", String(64), nullable=False),
    Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(_one_of("level", AREA_LEVELS), name="ck_areas_level"),
    Index("ix_areas_geom", "geom", postgresql_using="gist"),
    Index("ix_areas_fingerprint", "fingerprint"),
    Index("ix_areas_level_code", "level", "code"),
)
"""One area of any level; a row is shared by every version it is unchanged in."""

version_areas: Final = Table(
    "version_areas",
    metadata,
    Column(
        "version_id",
        Integer,
        ForeignKey("boundary_versions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("area_id", BigInteger, ForeignKey("areas.id"), primary_key=True),
    Column("code", String(32), nullable=False),
    Column("level", String(16), nullable=False),
    UniqueConstraint("version_id", "code", name="uq_version_areas_code"),
    Index("ix_version_areas_area", "area_id"),
    Index("ix_version_areas_level", "version_id", "level"),
)
"""Membership of an area in a boundary version (code and level repeated for lookups)."""

area_parts: Final = Table(
    "area_parts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("area_id", BigInteger, ForeignKey("areas.id", ondelete="CASCADE"), nullable=False),
    Column("geom", Geometry("POLYGON", srid=4326, spatial_index=False), nullable=False),
    Index("ix_area_parts_area_id", "area_id"),
    Index("ix_area_parts_geom", "geom", postgresql_using="gist"),
)
"""``ST_Subdivide`` pieces of an area, for fast exact point tests in SQL."""

# --- taxonomy, units, keys (0002) -----------------------------------------------------------

categories: Final = Table(
    "categories",
    metadata,
    Column("code", String(40), primary_key=True),
    Column("name", Text, nullable=False),
    Column("name_en", Text, nullable=False),
    Column("level", String(16), nullable=False),
    CheckConstraint(_one_of("level", HANDLING_LEVELS), name="ck_categories_level"),
)
"""Kinds of problem with the level that handles them first (their time limits are the
catalogue's, ``geo_service.stats.catalogue``)."""

routing_rules: Final = Table(
    "routing_rules",
    metadata,
    Column(
        "category_code",
        String(40),
        ForeignKey("categories.code", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("level", String(16), primary_key=True),
    Column("unit_type", String(40), nullable=False),
)
"""Which unit type answers a category at a handling level (else the territorial unit)."""

units: Final = Table(
    "units",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(64), nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("unit_type", String(40), nullable=False),
    Column("level", String(16), nullable=False),
    Column("area_code", String(32), nullable=False),
    Column("active", Boolean, nullable=False, server_default=true()),
    UniqueConstraint("unit_type", "area_code", name="uq_units_type_area"),
)
"""Answering units: one of each type per area code."""

api_keys: Final = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(12), nullable=False),
    Column("role", String(16), nullable=False),
    Column("label", Text),
    Column("scope_area_code", String(32)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True)),
    CheckConstraint(_one_of("role", ROLES), name="ck_api_keys_role"),
)
"""API keys: only a SHA-256 of each key, its role and (grid workers) the area it covers."""

# --- reports (0002, 0004) -------------------------------------------------------------------

reports: Final = Table(
    "reports",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("idempotency_key", String(200), unique=True),
    Column("request_hash", String(64)),
    Column("channel", String(20), nullable=False),
    Column("category", String(40), ForeignKey("categories.code"), nullable=False),
    Column("description", Text, nullable=False),
    Column("photos", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("reported_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("lon_original", Float(53), nullable=False),
    Column("lat_original", Float(53), nullable=False),
    Column("crs_original", String(24), nullable=False),
    Column("geom", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
    Column("in_coverage", Boolean, nullable=False),
    Column("grid_code", String(32)),
    Column("community_code", String(32)),
    Column("town_code", String(32)),
    Column("district_code", String(32)),
    Column("boundary_version_id", Integer, ForeignKey("boundary_versions.id")),
    Column("handling_level", String(16), nullable=False),
    Column("unit_id", Integer, ForeignKey("units.id")),
    Column("routed_by", String(16), nullable=False),
    Column("status", String(20), nullable=False, server_default="discovered"),
    Column("status_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True)),
    Column("supervised", Boolean, nullable=False, server_default=false()),
    Column("hard", Boolean, nullable=False, server_default=false()),
    Column("rating", SmallInteger),
    Column("duplicate_of", BigInteger, ForeignKey("reports.id")),
    Column("filed_by_key_id", Integer, ForeignKey("api_keys.id")),
    Column("response", JSONB),
    Column("h3_11", BigInteger),
    Column("urgency", String(8)),
    Column("dispatch_due_at", DateTime(timezone=True)),
    Column("handle_due_at", DateTime(timezone=True)),
    Column("public", Boolean, nullable=False, server_default=false()),
    Column("filed_by_user_id", Integer, ForeignKey("users.id")),  # signed in (0014)
    CheckConstraint(_one_of("urgency", URGENCIES), name="ck_reports_urgency"),
    Index(
        "ix_reports_handling_due",
        "handle_due_at",
        postgresql_where=text(_one_of("status", UNHANDLED_STATUSES)),
    ),
    CheckConstraint(_one_of("channel", CHANNELS), name="ck_reports_channel"),
    CheckConstraint(_one_of("handling_level", HANDLING_LEVELS), name="ck_reports_level"),
    CheckConstraint(
        f"rating IS NULL OR rating BETWEEN {RATING_MIN} AND {RATING_MAX}", name="ck_reports_rating"
    ),
    Index("ix_reports_geom", "geom", postgresql_using="gist"),
    # the near-duplicate probe's candidates, cases not linked to another (migration 0012): by
    # place, and at one exact spot by category, oldest first
    Index(
        "ix_reports_undup_geom",
        "geom",
        postgresql_using="gist",
        postgresql_where=text("duplicate_of IS NULL"),
    ),
    Index(
        "ix_reports_undup_spot",
        "category",
        text("st_x(geom)"),
        text("st_y(geom)"),
        "id",
        postgresql_where=text("duplicate_of IS NULL"),
    ),
    *(
        Index(f"ix_reports_{col}", col)
        for col in (
            "status",
            "grid_code",
            "community_code",
            "town_code",
            "unit_id",
            "category",
            "channel",
            "reported_at",
            "filed_by_key_id",
            "filed_by_user_id",
            "duplicate_of",
        )
    ),
    Index("ix_reports_h3_missing", "id", postgresql_where=text("h3_11 IS NULL")),
)
"""A reported problem: where (original and WGS84 point, the located chain, the version it was
located in), who answers it, where it is in the loop; ``h3_11`` is its H3 res-11 cell;
``public``: staff marked it public (shown exactly only when its category is public too, 0011)."""

report_contacts: Final = Table(
    "report_contacts",
    metadata,
    Column(
        "report_id", BigInteger, ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("name", Text),
    Column("phone", String(32)),
)
"""The reporter's name and phone, kept apart from the report (personal data)."""

report_events: Final = Table(
    "report_events",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column(
        "report_id", BigInteger, ForeignKey("reports.id", ondelete="CASCADE"), nullable=False
    ),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("action", String(20), nullable=False),
    Column("from_status", String(20)),
    Column("to_status", String(20)),
    Column("unit_id", Integer, ForeignKey("units.id")),
    Column("actor_key_id", Integer, ForeignKey("api_keys.id")),
    Column("actor", Text),
    Column("note", Text),
    Column("dispatch_due_at", DateTime(timezone=True)),
    Column("handle_due_at", DateTime(timezone=True)),
    Index("ix_report_events_report", "report_id", "at"),
)
"""Every step of a case's loop (transition, dispatch, supervision, note), in order."""

# --- analytics (0004) -----------------------------------------------------------------------

heat_rollup: Final = Table(
    "heat_rollup",
    metadata,
    Column("day", Date, nullable=False),
    Column("h3_9", BigInteger, nullable=False),
    Column("grid_code", String(32), nullable=False),  # '' outside coverage
    Column("category", String(40), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("n", Integer, nullable=False),
    PrimaryKeyConstraint("day", "h3_9", "grid_code", "category", "channel", "status"),
)
"""Report counts per (Beijing day, H3 res-9 cell, grid, category, channel, status), kept equal
to a direct count by statement-level triggers on ``reports``."""

# --- tiles (0005) ---------------------------------------------------------------------------

layer_generations: Final = Table(
    "layer_generations",
    metadata,
    Column("shard", SmallInteger, primary_key=True, autoincrement=False),
    Column("reports", BigInteger, nullable=False, server_default="0"),
    Column("boundaries", BigInteger, nullable=False, server_default="0"),
    Column("changed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
"""Sharded counters per map-layer source, bumped by triggers in the writer's transaction; a
source's generation is the sum of its column over the shards (tile caches key on it)."""

tile_areas: Final = Table(
    "tile_areas",
    metadata,
    Column(
        "version_id",
        Integer,
        ForeignKey("boundary_versions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("area_id", BigInteger, nullable=False),
    Column("level", String(16), nullable=False),
    Column("code", String(32), nullable=False),
    Column("name", Text, nullable=False),
    Column("parent_code", String(32)),
    Column("households", Integer),
    Column("population", Integer),
    Column("district_code", String(32)),
    Column("district_name", Text),
    Column("town_code", String(32)),
    Column("town_name", Text),
    Column("community_code", String(32)),
    Column("community_name", Text),
    Column("unit_name", Text),
    Column("geom", Geometry("MULTIPOLYGON", srid=3857, spatial_index=False), nullable=False),
    PrimaryKeyConstraint("version_id", "area_id"),
    Index("ix_tile_areas_geom", "geom", postgresql_using="gist"),
    Index("ix_tile_areas_version_level_code", "version_id", "level", "code"),
)
"""A tile-ready copy of a version's areas: Web Mercator geometry, chain and unit flattened in."""

tile_area_builds: Final = Table(
    "tile_area_builds",
    metadata,
    Column(
        "version_id",
        Integer,
        ForeignKey("boundary_versions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("generation", BigInteger, nullable=False),
    Column("built_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
"""The ``boundaries`` generation each version's ``tile_areas`` copy was built at."""

# --- figures (0008) -------------------------------------------------------------------------

case_facts: Final = Table(
    "case_facts",
    metadata,
    Column("report_id", BigInteger, primary_key=True, autoincrement=False),
    Column("reported_at", DateTime(timezone=True), nullable=False),
    Column("grid_code", String(32)),
    Column("district_code", String(32)),
    Column("unit_id", Integer),
    Column("category", String(40), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("urgency", String(8)),
    Column("supervised", Boolean, nullable=False),
    Column("accepted_at", DateTime(timezone=True)),
    Column("rejected_at", DateTime(timezone=True)),
    Column("dispatched_at", DateTime(timezone=True)),
    Column("dispatched_by", Integer),
    Column("dispatch_due_at", DateTime(timezone=True)),
    Column("redispatched_at", DateTime(timezone=True)),
    Column("handled_at", DateTime(timezone=True)),
    Column("handled_due_at", DateTime(timezone=True)),
    Column("verified_at", DateTime(timezone=True)),
    Column("closed_at", DateTime(timezone=True)),
    Column("rework_at", DateTime(timezone=True)),
    Column("supervised_at", DateTime(timezone=True)),
    Column("overdue", TSTZMULTIRANGE, nullable=False),
    Column("step_actions", ARRAY(String(20)), nullable=False),
    Column("step_seconds", ARRAY(Float(53)), nullable=False),
    Column("changed", BigInteger, nullable=False),
    Index("ix_case_facts_changed", "changed"),
)
"""One row per report: its grouping attributes and what its events say, each with its time
(first accept, dispatch, …, the stretches it was open past its handling deadline), kept by
triggers in the writer's transaction; ``changed`` is the writer's transaction id. The
indicators (``geo_service.stats``) read it; the triggers are in migration 0008."""

case_facts_epoch: Final = Table(
    "case_facts_epoch",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("epoch", BigInteger, nullable=False),
)
"""Bumped when reports are deleted or truncated: readers of ``case_facts`` then reload it."""

# --- batch roll-ups (0010) ------------------------------------------------------------------

batch_rollups: Final = Table(
    "batch_rollups",
    metadata,
    Column("by", String(12), nullable=False),  # grid | community | town | h3:RES
    Column("period", String(8), nullable=False),  # day | week | month
    Column("start", Date, nullable=False),  # the period's first Beijing day
    Column("code", String(32), nullable=False),  # area code or H3 hex name
    Column("category", String(40), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("n", BigInteger, nullable=False),
    PrimaryKeyConstraint("by", "period", "start", "code", "category", "channel"),
)
"""Report counts made on a Dask cluster (``geo-service batch rollup --load``), per area or H3
cell and period, by category and channel; a load replaces one (by, period) whole."""

batch_rollup_loads: Final = Table(
    "batch_rollup_loads",
    metadata,
    Column("by", String(12), nullable=False),
    Column("period", String(8), nullable=False),
    Column("source", Text, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("reports", BigInteger, nullable=False),
    Column("loaded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("by", "period"),
)
"""Which (by, period) roll-ups are loaded: from where, how many rows and reports, when."""

# --- keys and audit (0011) ------------------------------------------------------------------

api_key_generation: Final = Table(
    "api_key_generation",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("generation", BigInteger, nullable=False, server_default="0"),
    CheckConstraint("id = 1", name="ck_api_key_generation_one_row"),
)
"""One counter, bumped by a trigger in every transaction that changes ``api_keys``: workers
drop their cached key look-ups when it moves (``geo_service.auth.KeyStore``)."""

audit_log: Final = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor_key_id", Integer, ForeignKey("api_keys.id")),
    Column("actor_role", String(16)),
    Column("actor", Text, nullable=False),
    Column("origin", Text, nullable=False),
    Column("action", String(40), nullable=False),
    Column("target_type", String(20), nullable=False),
    Column("target_id", Text, nullable=False),
    Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_target", "target_type", "target_id"),
    Index("ix_audit_log_actor_key_id", "actor_key_id"),
    Index("ix_audit_log_action", "action"),
)
"""Who changed boundaries, cases, units, keys and users: the key (id, role) or local account,
the action and its target, when and from where; written in the transaction of the change and
append-only (a trigger refuses UPDATE, DELETE and TRUNCATE)."""

# --- accounts (0013) ------------------------------------------------------------------------

users: Final = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(16), nullable=False),
    Column("scope_area_code", String(32)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("disabled_at", DateTime(timezone=True)),
    CheckConstraint(_one_of("role", ROLES), name="ck_users_role"),
)
"""People who sign in to the pages: an argon2 hash of the password (never the password), the
role and (grid workers) the area covered; disabled users are kept (the audit log names them)."""

user_sessions: Final = Table(
    "user_sessions",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_user_sessions_user_id", "user_id"),
)
"""Browser sessions, server-side: a SHA-256 of the cookie's random token, the page's CSRF
token, the last request (idle expiry) and the absolute expiry."""

login_throttle: Final = Table(
    "login_throttle",
    metadata,
    Column("key", Text, primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_failure_at", DateTime(timezone=True), nullable=False),
    Column("locked_until", DateTime(timezone=True)),
    Index("ix_login_throttle_last_failure_at", "last_failure_at"),
)
"""Failed sign-ins per submitted user name (``user:<name>``) and per client address
(``addr:<ip>``): after a few, each further attempt waits until ``locked_until``."""
