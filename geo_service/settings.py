"""Runtime settings, one pydantic-settings class per concern, each with its own env prefix."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class DatabaseSettings(BaseSettings):
    """Where PostGIS is: ``DATABASE_URL`` (libpq form), else a private cluster in ``data_dir``."""

    model_config = SettingsConfigDict(env_prefix="GEO_DB_", extra="ignore")

    url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "GEO_DB_URL", "url")
    )
    data_dir: Path = PROJECT_ROOT / ".data" / "pg"
    pool_size: int = 10


class ApiSettings(BaseSettings):
    """HTTP serving limits and defaults."""

    model_config = SettingsConfigDict(env_prefix="GEO_API_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch_points: int = 100_000
    max_body_bytes: int = 16 * 1024 * 1024


class LocateSettings(BaseSettings):
    """Locator behaviour: when a runner-up grid is reported, and how fine the index is."""

    model_config = SettingsConfigDict(env_prefix="GEO_LOCATE_", extra="ignore")

    runner_up_within_m: float = 5.0
    index_cell_m: float = 0.0  # 0 = choose from the extent (about 16 M cells at most)
    locator_cache_versions: int = 4


class AnalyticsSettings(BaseSettings):
    """Analysis layers: the small-count threshold that keeps public layers from naming people."""

    model_config = SettingsConfigDict(env_prefix="GEO_ANALYTICS_", extra="ignore")

    # public layers drop (or blank) features counted from 1 to k_min - 1 reports; only operator,
    # planner and admin keys may ask for less (down to 0)
    k_min: int = Field(default=5, ge=0)


class PlanningSettings(BaseSettings):
    """Planners' drafts: upload limits (size, unzipping) and the grid limits validation checks."""

    model_config = SettingsConfigDict(env_prefix="GEO_PLANNING_", extra="ignore")

    max_upload_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    max_unzipped_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    max_zip_ratio: float = Field(default=200.0, gt=1)
    max_zip_members: int = Field(default=200, gt=0)
    grid_min_m2: float = Field(default=5_000.0, ge=0)
    grid_max_m2: float = Field(default=5_000_000.0, gt=0)
    grid_max_households: int = Field(default=1_000, gt=0)
    tolerance_m2: float = Field(default=1.0, ge=0)


class TilesSettings(BaseSettings):
    """Vector tiles and OGC API Features: tile cache size, generation polling, HTTP caching."""

    model_config = SettingsConfigDict(env_prefix="GEO_TILES_", extra="ignore")

    cache_mb: float = Field(default=256.0, ge=0)  # in-process tile bytes per worker
    # how often a worker re-reads layer_generations: the bound on serving a stale tile
    generation_poll_s: float = Field(default=1.0, ge=0)
    max_age_s: int = Field(default=5, ge=0)  # Cache-Control max-age of tiles
    points_min_zoom: int = Field(default=14, ge=0, le=24)  # staff see single reports from here


class MapsSettings(BaseSettings):
    """Operator map pages: an optional raster base map from a tile server on the operators'
    network (XYZ template); none by default, so the pages fetch nothing from elsewhere."""

    model_config = SettingsConfigDict(env_prefix="GEO_MAPS_", extra="ignore")

    basemap_url: str | None = None  # e.g. http://tiles.intranet/{z}/{x}/{y}.png
    basemap_attribution: str = ""


class DemoSettings(BaseSettings):
    """What ``geo-service demo`` loads: the synthetic year's size (tests make it small)."""

    model_config = SettingsConfigDict(env_prefix="GEO_DEMO_", extra="ignore")

    reports: int = Field(default=200_000, ge=0)  # 0: no synthetic year


class Settings(BaseSettings):
    """All settings of one service instance."""

    model_config = SettingsConfigDict(extra="ignore")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    locate: LocateSettings = Field(default_factory=LocateSettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    planning: PlanningSettings = Field(default_factory=PlanningSettings)
    analytics: AnalyticsSettings = Field(default_factory=AnalyticsSettings)
    tiles: TilesSettings = Field(default_factory=TilesSettings)
    maps: MapsSettings = Field(default_factory=MapsSettings)
