"""The reference taxonomy: channels, unit types, categories with level and routing rules.

"Small matters stay in the village, big ones in the town, hard ones in the county": each
category has the level that handles it first, and a rule per level naming the unit type that
answers there. Where no rule names one, the territorial unit of the area answers (属地兜底).
This module is the single source of categories, unit types and rules (``seed_reference_data``
writes them into the database); the channel and handling-level codes, which CHECK constraints
enforce, are declared in :mod:`geo_service.db.schema` and re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from geo_service.db.schema import CHANNELS as CHANNELS
from geo_service.db.schema import HANDLING_LEVELS as HANDLING_LEVELS

# the Chinese names shown for each status and channel on every surface (the console, the
# printed reports, Open311's status notes); the words follow the figures' definitions
# (立案 accepted, 结案 evaluated: geo_service.stats.indicators)
STATUS_NAMES: Final[dict[str, str]] = {
    "discovered": "已上报",
    "accepted": "已立案",
    "dispatched": "已派遣",
    "handling": "处置中",
    "handled": "已处置",
    "verified": "已核查",
    "fed_back": "已反馈",
    "evaluated": "已结案",
    "rejected": "不予立案",
}
CHANNEL_NAMES: Final[dict[str, str]] = {
    "grid_app": "网格员上报",
    "wechat": "微信公众号",
    "hotline_12345": "12345热线",
    "video_patrol": "视频巡查",
    "visit": "群众来访",
}

# the area level whose unit answers at each handling level
AREA_LEVEL_OF: Final = {"community": "community", "town": "town", "county": "district"}

# unit types; the territorial ones answer where no rule names a unit
TERRITORIAL: Final = {
    "community": "community_committee",
    "town": "town_centre",
    "county": "district_centre",
}
UNIT_TYPES: Final = {
    "grid_team": "网格工作组",
    "community_committee": "村(居)民委员会",
    "town_centre": "社会治理综合指挥中心",
    "town_law_enforcement": "综合行政执法队",
    "town_safety_office": "应急管理办公室",
    "town_police_station": "派出所",
    "town_judicial_office": "司法所",
    "district_centre": "社会治理综合指挥中心",
    "urban_management": "综合行政执法局",
    "transport_bureau": "交通运输局",
    "environment_bureau": "生态环境分局",
    "emergency_bureau": "应急管理局",
    "fire_brigade": "消防救援大队",
    "police_bureau": "公安分局",
    "housing_bureau": "住房和城乡建设局",
    "water_bureau": "水利局",
    "justice_bureau": "司法局",
}
UNIT_LEVEL: Final = {
    "grid_team": "grid",
    "community_committee": "community",
    **{t: "town" for t in UNIT_TYPES if t.startswith("town_")},
    **{
        t: "district"
        for t in (
            "district_centre",
            "urban_management",
            "transport_bureau",
            "environment_bureau",
            "emergency_bureau",
            "fire_brigade",
            "police_bureau",
            "housing_bureau",
            "water_bureau",
            "justice_bureau",
        )
    },
}


@dataclass(frozen=True)
class Category:
    """A kind of problem: who handles it at each level (how fast: its catalogue entry)."""

    code: str
    name: str
    name_en: str
    level: str  # where it is handled first (time limits: geo_service.stats.catalogue)
    rules: dict[str, str] = field(default_factory=dict)  # handling level -> unit type


CATEGORIES: Final = (
    Category(
        "safety_hazard",
        "安全隐患",
        "Safety hazard",
        "community",
        {"community": "grid_team", "town": "town_safety_office", "county": "emergency_bureau"},
    ),
    Category(
        "illegal_construction",
        "违章建筑",
        "Illegal construction",
        "town",
        {"town": "town_law_enforcement", "county": "urban_management"},
    ),
    Category(
        "river_pollution",
        "河道及环境污染",
        "River or environmental pollution",
        "town",
        {"county": "environment_bureau"},
    ),
    Category(
        "road_occupation",
        "占道经营与流动摊贩",
        "Road occupation and street vending",
        "community",
        {"community": "grid_team", "town": "town_law_enforcement", "county": "urban_management"},
    ),
    Category(
        "facility_damage",
        "公共设施损坏",
        "Public facility damage",
        "town",
        {"county": "transport_bureau"},
    ),
    Category(
        "neighbour_dispute",
        "邻里纠纷",
        "Neighbour dispute",
        "community",
        {"town": "town_judicial_office", "county": "justice_bureau"},
    ),
    Category(
        "fire_risk",
        "消防及森林火险",
        "Fire and forest-fire risk",
        "town",
        {"town": "town_safety_office", "county": "fire_brigade"},
    ),
    Category(
        "theft",
        "盗窃",
        "Theft",
        "town",
        {"town": "town_police_station", "county": "police_bureau"},
    ),
    Category(
        "sanitation",
        "环境卫生",
        "Sanitation",
        "community",
        {"community": "grid_team", "county": "urban_management"},
    ),
    Category(
        "housing_safety", "房屋安全", "Housing safety", "town", {"county": "housing_bureau"}
    ),
    Category(
        "flood_risk", "防汛排涝", "Flooding and drainage", "town", {"county": "water_bureau"}
    ),
    Category("other", "其他", "Other", "community", {}),
)
CATEGORY_BY_CODE: Final = {c.code: c for c in CATEGORIES}


def next_level(level: str) -> str | None:
    """The handling level a case escalates to (None at the county)."""
    i = HANDLING_LEVELS.index(level)
    return HANDLING_LEVELS[i + 1] if i + 1 < len(HANDLING_LEVELS) else None
