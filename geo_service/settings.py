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


class Settings(BaseSettings):
    """All settings of one service instance."""

    model_config = SettingsConfigDict(extra="ignore")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    locate: LocateSettings = Field(default_factory=LocateSettings)
