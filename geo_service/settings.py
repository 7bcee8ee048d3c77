"""Runtime settings, one pydantic-settings class per concern, each with its own env prefix."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices, BaseModel, Field, model_validator
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


_MIB = 1024 * 1024


class BodyLimitSettings(BaseSettings):
    """Request body limits in bytes, one per route family (:mod:`geo_service.api.limits`
    enforces them while the body streams in: 413 beyond)."""

    model_config = SettingsConfigDict(env_prefix="GEO_BODY_LIMIT_", extra="ignore")

    locate: int = Field(default=16 * _MIB, gt=0)  # POST /v1/locate: up to 100,000 points
    intake: int = Field(default=1 * _MIB, gt=0)  # one report: /v1/reports, Open311 requests
    bulk: int = Field(default=32 * _MIB, gt=0)  # POST /v1/reports:bulk: up to 10,000 reports
    upload: int = Field(default=64 * _MIB, gt=0)  # a planner's layout file (multipart)
    other: int = Field(default=4 * _MIB, gt=0)  # every other body: loop steps, grid edits, …


_RATE = re.compile(r"\s*(cheap|standard|costly)\s*=\s*([0-9.]+)\s*/\s*([0-9]+)\s*")
RATE_CLASSES = ("cheap", "standard", "costly")


def parse_rates(value: str, name: str) -> dict[str, tuple[float, int]]:
    """``"cheap=R/B,standard=R/B,costly=R/B"`` as {class: (requests per second, burst)}."""
    out: dict[str, tuple[float, int]] = {}
    for part in value.split(","):
        m = _RATE.fullmatch(part)
        if m is None:
            raise ValueError(f"GEO_RATE_{name.upper()}: {part!r} is not CLASS=RATE/BURST")
        rate, burst = float(m.group(2)), int(m.group(3))
        if rate <= 0 or burst < 1:
            raise ValueError(f"GEO_RATE_{name.upper()}: {part!r} needs a rate > 0, a burst >= 1")
        out[m.group(1)] = (rate, burst)
    missing = [c for c in RATE_CLASSES if c not in out]
    if missing:
        raise ValueError(f"GEO_RATE_{name.upper()}: no rate for {', '.join(missing)}")
    return out


class RateLimitSettings(BaseSettings):
    """Request rates (token buckets, :mod:`geo_service.api.ratelimit`) per caller and route
    class: ``cheap`` (one-point locate, tiles, static files, health), ``costly`` (analytics,
    maps, uploads, impact, diff, validation, suggestions, statistics, exports) and
    ``standard`` (the rest). Each role reads ``cheap=RATE/BURST,standard=…,costly=…``:
    requests per second refilled and the bucket's size. A key has its own buckets; the public
    is counted per client address (IPv6 per /64), and all of it together in ``anonymous_all``.
    Buckets live in each worker process: with N workers a client may get up to N× these
    figures, so set them to the wanted limit ÷ N."""

    model_config = SettingsConfigDict(env_prefix="GEO_RATE_", extra="ignore")

    enabled: bool = True
    anonymous: str = "cheap=200/400,standard=10/30,costly=0.5/5"
    anonymous_all: str = "cheap=4000/8000,standard=200/400,costly=4/20"
    reporter: str = "cheap=50/100,standard=10/30,costly=0.5/5"
    grid_worker: str = "cheap=100/200,standard=20/60,costly=1/10"
    operator: str = "cheap=2000/4000,standard=100/300,costly=4/30"
    planner: str = "cheap=200/400,standard=20/60,costly=2/20"
    admin: str = "cheap=2000/4000,standard=100/300,costly=4/30"
    # unknown or revoked keys per client address (failed sign-ins), "RATE/BURST": past it the
    # address is answered 429 before its keys are even looked up
    unknown_keys: str = "1/20"
    max_buckets: int = Field(default=100_000, gt=0)  # LRU bound on the buckets kept

    def table(self) -> dict[str, dict[str, tuple[float, int]]]:
        """{who: {class: (rate, burst)}} for ``anonymous``, ``anonymous_all`` and each role."""
        who = ("anonymous", "anonymous_all", "reporter", "grid_worker", "operator", "planner",
               "admin")  # fmt: skip
        return {name: parse_rates(getattr(self, name), name) for name in who}

    def unknown_key_rate(self) -> tuple[float, int]:
        """``unknown_keys`` as (per second, burst)."""
        rate, _, burst = self.unknown_keys.partition("/")
        try:
            out = (float(rate), int(burst))
        except ValueError:
            raise ValueError(
                f"GEO_RATE_UNKNOWN_KEYS: {self.unknown_keys!r} is not RATE/BURST"
            ) from None
        if out[0] <= 0 or out[1] < 1:
            raise ValueError("GEO_RATE_UNKNOWN_KEYS needs a rate > 0 and a burst >= 1")
        return out

    @model_validator(mode="after")
    def _check(self) -> RateLimitSettings:
        self.table()
        self.unknown_key_rate()
        return self


class StatementTimeoutSettings(BaseSettings):
    """PostgreSQL ``statement_timeout`` per caller's role, in milliseconds (0: none), so the
    public and reporters cannot run long queries; past it the request answers 503."""

    model_config = SettingsConfigDict(env_prefix="GEO_STATEMENT_TIMEOUT_MS_", extra="ignore")

    anonymous: int = Field(default=5_000, ge=0)
    reporter: int = Field(default=5_000, ge=0)
    grid_worker: int = Field(default=15_000, ge=0)
    operator: int = Field(default=60_000, ge=0)
    planner: int = Field(default=300_000, ge=0)
    admin: int = Field(default=300_000, ge=0)

    def of(self, role: str | None) -> int:
        """The timeout of ``role`` (None: the public)."""
        value: int = getattr(self, role or "anonymous")
        return value


class LocateSettings(BaseSettings):
    """Locator behaviour: when a runner-up grid is reported, and how fine the index is."""

    model_config = SettingsConfigDict(env_prefix="GEO_LOCATE_", extra="ignore")

    runner_up_within_m: float = 5.0
    index_cell_m: float = 0.0  # 0 = choose from the extent (about 16 M cells at most)
    # the per-version registry (geo_service.locator.registry): bytes it may hold per process,
    # and how often a worker re-reads the published versions (the bound on seeing a publish
    # made elsewhere)
    registry_mb: float = Field(default=512.0, gt=0)
    version_recheck_s: float = Field(default=2.0, ge=0)


class AnalyticsSettings(BaseSettings):
    """Analysis layers: the small-count threshold that keeps public layers from naming people."""

    model_config = SettingsConfigDict(env_prefix="GEO_ANALYTICS_", extra="ignore")

    # public layers drop (or blank) features counted from 1 to k_min - 1 reports; only operator,
    # planner and admin keys may ask for less (down to 0)
    k_min: int = Field(default=5, ge=0)


class PrivacySettings(BaseSettings):
    """What the public views (Open311 and OGC reads, tiles, analysis layers, map pages) show of
    where reports are (:mod:`geo_service.reports.disclosure`): a report's location is the centre
    of its H3 cell at ``public_h3_res`` (8: ~0.74 km², edges ~460 m), the address stops at the
    community, and no description or photo is shown, unless the case's category is one of
    ``public_categories`` (comma list) and staff marked the case public. The same resolution is
    the finest H3 grid a caller without an operator, planner or admin key may ask of the
    analysis layers and tiles."""

    model_config = SettingsConfigDict(env_prefix="GEO_PRIVACY_", extra="ignore")

    public_h3_res: int = Field(default=8, ge=0, le=11)
    public_categories: str = "facility_damage,sanitation,river_pollution,flood_risk"

    def category_set(self) -> frozenset[str]:
        """``public_categories`` as a set of category codes."""
        return frozenset(c.strip() for c in self.public_categories.split(",") if c.strip())


class AuthSettings(BaseSettings):
    """API key checks: how often a worker re-reads the key generation counter (migration 0011),
    the bound on a revoked key still working anywhere, and how many look-ups it caches."""

    model_config = SettingsConfigDict(env_prefix="GEO_AUTH_", extra="ignore")

    key_recheck_s: float = Field(default=0.5, ge=0, le=0.9)
    key_cache_entries: int = Field(default=10_000, gt=0)


class SessionSettings(BaseSettings):
    """Browser sign-in (:mod:`geo_service.accounts`): how long a session lives (idle and in
    all), and how repeated failed sign-ins are slowed down, per user name and per address."""

    model_config = SettingsConfigDict(env_prefix="GEO_SESSION_", extra="ignore")

    idle_s: float = Field(default=2 * 3600, gt=0)  # no request for this long: signed out
    absolute_s: float = Field(default=12 * 3600, gt=0)  # signed out this long after sign-in
    touch_s: float = Field(default=60, ge=0)  # last-request time written at most this often
    user_free_failures: int = Field(default=5, ge=1)  # failures per user name before waits
    address_free_failures: int = Field(default=20, ge=1)  # per client address (NAT'd centre)
    delay_s: float = Field(default=2, gt=0)  # the first wait; doubles with each failure
    max_delay_s: float = Field(default=900, gt=0)  # the longest wait
    failure_window_s: float = Field(default=900, gt=0)  # failures older than this forgotten


class LayoutLimitSettings(BaseSettings):
    """What a layout file (GeoJSON, GeoPackage, zipped Shapefile) may hold, one limit each, for
    every reader (planners' uploads, ``boundaries import``): checked before GDAL builds a
    geometry (GeoJSON) or before GEOS sees one (the others), and while a zip is unpacked."""

    model_config = SettingsConfigDict(env_prefix="GEO_LAYOUT_", extra="ignore")

    max_features: int = Field(default=200_000, gt=0)
    max_vertices_per_feature: int = Field(default=100_000, gt=0)
    max_vertices_total: int = Field(default=2_000_000, gt=0)
    max_unzipped_bytes: int = Field(default=256 * _MIB, gt=0)  # bytes really inflated
    max_zip_ratio: float = Field(default=200.0, gt=1)  # inflated ÷ compressed, per member
    max_zip_members: int = Field(default=200, gt=0)


class SizeLimit(BaseModel):
    """Size limits of one level (or one level and area class); None: not limited here."""

    min_m2: float | None = Field(default=None, ge=0)
    max_m2: float | None = Field(default=None, gt=0)
    max_households: int | None = Field(default=None, gt=0)


def _default_size_limits() -> dict[str, SizeLimit]:
    # rural grids of real layouts reach 6 km² (villages far apart); towns' streets stay urban
    return {"grid:rural": SizeLimit(max_m2=12_000_000.0, max_households=1_500)}


class PlanningSettings(BaseSettings):
    """Planners' drafts: the size policy validation checks (the upload's size is
    :attr:`BodyLimitSettings.upload`, what the file may hold :class:`LayoutLimitSettings`).

    ``grid_*`` are the limits of every grid; ``size_limits`` refines them per level
    (``"community"``) and per level and area class (``"grid:rural"``, the class read from the
    attribute ``area_class_attribute`` of the area or its nearest ancestor), as JSON in
    ``GEO_PLANNING_SIZE_LIMITS``. Size and household limits are warnings unless
    ``size_limits_block``; a grid unchanged from the version in force never blocks.
    """

    model_config = SettingsConfigDict(env_prefix="GEO_PLANNING_", extra="ignore")

    grid_min_m2: float = Field(default=5_000.0, ge=0)
    grid_max_m2: float = Field(default=5_000_000.0, gt=0)
    grid_max_households: int = Field(default=1_000, gt=0)
    tolerance_m2: float = Field(default=1.0, ge=0)
    area_class_attribute: str = Field(default="area_class", min_length=1, max_length=64)
    size_limits: dict[str, SizeLimit] = Field(default_factory=_default_size_limits)
    size_limits_block: bool = False

    def limit_for(self, level: str, area_class: str | None) -> SizeLimit:
        """The limits of an area of ``level`` and ``area_class``: the grid defaults, refined
        by the level's entry, then by the level and class's entry (field by field)."""
        merged: dict[str, float | int | None] = (
            {"min_m2": self.grid_min_m2, "max_m2": self.grid_max_m2,
             "max_households": self.grid_max_households}
            if level == "grid" else {"min_m2": None, "max_m2": None, "max_households": None}
        )
        keys = [level] + ([f"{level}:{area_class}"] if area_class else [])
        for key in keys:
            entry = self.size_limits.get(key)
            if entry is not None:
                merged.update({k: v for k, v in entry.model_dump().items() if v is not None})
        return SizeLimit.model_validate(merged)

    def limited_levels(self) -> set[str]:
        """Levels with a size limit: grids always, others when ``size_limits`` names them."""
        return {"grid"} | {key.split(":", 1)[0] for key in self.size_limits}


class TilesSettings(BaseSettings):
    """Vector tiles and OGC API Features: tile cache size, generation polling, HTTP caching."""

    model_config = SettingsConfigDict(env_prefix="GEO_TILES_", extra="ignore")

    cache_mb: float = Field(default=256.0, ge=0)  # in-process tile bytes per worker
    # in-process analysis results (heat, hot spots… behind tiles) per worker, in MiB
    analysis_cache_mb: float = Field(default=128.0, ge=0)
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
    password: str | None = None  # the demo accounts' password; None: a random one each run


class StatsSettings(BaseSettings):
    """The command centre's figures (:mod:`geo_service.stats`): working hours, score weights,
    volume bands, grade thresholds and the smallest volume that is ranked. Centres tune these;
    each weight group must add up to 1."""

    model_config = SettingsConfigDict(env_prefix="GEO_STATS_", extra="ignore")

    # Beijing time, comma-separated HH:MM-HH:MM periods of a working day, in order
    working_hours: str = "08:30-12:00,13:30-17:30"
    # unit and area score: volume score, closure rate, on-time rate, 1 - rework rate
    weight_volume: float = Field(default=0.10, ge=0, le=1)
    weight_closure: float = Field(default=0.30, ge=0, le=1)
    weight_on_time: float = Field(default=0.30, ge=0, le=1)
    weight_rework: float = Field(default=0.30, ge=0, le=1)
    # grid worker post: valid reports, 1 - missed reports, on-time verification, on-time check
    weight_grid_valid: float = Field(default=0.40, ge=0, le=1)
    weight_grid_missed: float = Field(default=0.20, ge=0, le=1)
    weight_grid_verify: float = Field(default=0.20, ge=0, le=1)
    weight_grid_check: float = Field(default=0.20, ge=0, le=1)
    # dispatcher post: volume score, on-time dispatch, accurate dispatch
    weight_dispatch_volume: float = Field(default=0.20, ge=0, le=1)
    weight_dispatch_on_time: float = Field(default=0.40, ge=0, le=1)
    weight_dispatch_accurate: float = Field(default=0.40, ge=0, le=1)
    # volume score: "most cases in a 30-day month:score" bands, upward; more scores 0
    volume_bands: str = "50:100,100:90,200:75,500:60,1000:40"
    # lowest score of grades A, B, C, D (E below)
    grade_a: float = 90.0
    grade_b: float = 75.0
    grade_c: float = 60.0
    grade_d: float = 40.0
    # items with fewer cases reported in the period get no rank
    rank_min_volume: int = Field(default=20, ge=0)

    def working_periods(self) -> tuple[tuple[int, int], ...]:
        """``working_hours`` as (start, end) minutes after midnight, checked: ordered, apart."""
        periods: list[tuple[int, int]] = []
        for part in self.working_hours.split(","):
            m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", part)
            if m is None:
                raise ValueError(f"GEO_STATS_WORKING_HOURS: {part!r} is not HH:MM-HH:MM")
            h0, m0, h1, m1 = (int(g) for g in m.groups())
            start, end = h0 * 60 + m0, h1 * 60 + m1
            if not (m0 < 60 and m1 < 60 and 0 <= start < end <= 24 * 60):
                raise ValueError(f"GEO_STATS_WORKING_HOURS: {part!r} is not a period of a day")
            if periods and start < periods[-1][1]:
                raise ValueError(f"GEO_STATS_WORKING_HOURS: {part!r} overlaps or is out of order")
            periods.append((start, end))
        return tuple(periods)

    def bands(self) -> tuple[tuple[int, float], ...]:
        """``volume_bands`` as (most cases per 30 days, score) pairs, upward."""
        out: list[tuple[int, float]] = []
        for part in self.volume_bands.split(","):
            cases, _, score = part.partition(":")
            try:
                band = (int(cases), float(score))
            except ValueError:
                raise ValueError(f"GEO_STATS_VOLUME_BANDS: {part!r} is not CASES:SCORE") from None
            if out and band[0] <= out[-1][0]:
                raise ValueError(f"GEO_STATS_VOLUME_BANDS: {part!r} is not above the band before")
            out.append(band)
        return tuple(out)

    @model_validator(mode="after")
    def _check(self) -> StatsSettings:
        self.working_periods()
        self.bands()
        groups = {
            "unit and area": ("volume", "closure", "on_time", "rework"),
            "grid worker": ("grid_valid", "grid_missed", "grid_verify", "grid_check"),
            "dispatcher": ("dispatch_volume", "dispatch_on_time", "dispatch_accurate"),
        }
        for name, keys in groups.items():
            total = sum(getattr(self, f"weight_{k}") for k in keys)
            if abs(total - 1.0) > 1e-9:
                raise ValueError(f"the {name} score weights add up to {total}, not 1")
        if not self.grade_a >= self.grade_b >= self.grade_c >= self.grade_d:
            raise ValueError("grade thresholds must fall from A to D")
        return self


class Settings(BaseSettings):
    """All settings of one service instance."""

    model_config = SettingsConfigDict(extra="ignore")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    body_limits: BodyLimitSettings = Field(default_factory=BodyLimitSettings)
    locate: LocateSettings = Field(default_factory=LocateSettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    stats: StatsSettings = Field(default_factory=StatsSettings)
    planning: PlanningSettings = Field(default_factory=PlanningSettings)
    layout: LayoutLimitSettings = Field(default_factory=LayoutLimitSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    statement_timeouts: StatementTimeoutSettings = Field(default_factory=StatementTimeoutSettings)
    analytics: AnalyticsSettings = Field(default_factory=AnalyticsSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    sessions: SessionSettings = Field(default_factory=SessionSettings)
    tiles: TilesSettings = Field(default_factory=TilesSettings)
    maps: MapsSettings = Field(default_factory=MapsSettings)
