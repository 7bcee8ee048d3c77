"""ORM models of the schema; alembic migrations are the source of truth, these mirror them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

VERSION_STATUSES = ("draft", "published", "retired")
AREA_LEVELS = ("district", "town", "community", "grid")


class Base(DeclarativeBase):
    """Declarative base of every table."""


class BoundaryVersion(Base):
    """A generation of boundaries (MapIt-style): draft → published → retired, with a date range."""

    __tablename__ = "boundary_versions"
    __table_args__ = (
        CheckConstraint(f"status IN {VERSION_STATUSES!r}", name="ck_boundary_versions_status"),
        CheckConstraint(
            "effective_to IS NULL OR effective_from IS NULL OR effective_to > effective_from",
            name="ck_boundary_versions_range",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    effective_from: Mapped[dt.date | None] = mapped_column(Date)
    effective_to: Mapped[dt.date | None] = mapped_column(Date)
    source: Mapped[str | None] = mapped_column(Text)
    source_crs: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=func.now())
    published_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    replaces_id: Mapped[int | None] = mapped_column(
        ForeignKey("boundary_versions.id", name="fk_boundary_versions_replaces")
    )
    rolled_back_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Area(Base):
    """One area of any level; a row is shared by every version it is unchanged in."""

    __tablename__ = "areas"
    __table_args__ = (
        CheckConstraint(f"level IN {AREA_LEVELS!r}", name="ck_areas_level"),
        Index("ix_areas_geom", "geom", postgresql_using="gist"),
        Index("ix_areas_fingerprint", "fingerprint"),
        Index("ix_areas_level_code", "level", "code"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(Text)
    level: Mapped[str] = mapped_column(String(16))
    parent_code: Mapped[str | None] = mapped_column(String(32))
    households: Mapped[int | None] = mapped_column(Integer)
    population: Mapped[int | None] = mapped_column(Integer)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    fingerprint: Mapped[str] = mapped_column(String(64))
    geom: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False
    )
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=func.now())


class VersionArea(Base):
    """Membership of an area in a boundary version (code and level repeated for lookups)."""

    __tablename__ = "version_areas"
    __table_args__ = (
        UniqueConstraint("version_id", "code", name="uq_version_areas_code"),
        Index("ix_version_areas_area", "area_id"),
        Index("ix_version_areas_level", "version_id", "level"),
    )

    version_id: Mapped[int] = mapped_column(
        ForeignKey("boundary_versions.id", ondelete="CASCADE"), primary_key=True
    )
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id"), primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(16))


class AreaPart(Base):
    """``ST_Subdivide`` pieces of an area, for fast exact point tests in SQL."""

    __tablename__ = "area_parts"
    __table_args__ = (Index("ix_area_parts_geom", "geom", postgresql_using="gist"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id", ondelete="CASCADE"), index=True)
    geom: Mapped[Any] = mapped_column(
        Geometry("POLYGON", srid=4326, spatial_index=False), nullable=False
    )
