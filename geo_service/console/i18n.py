"""The console's one dictionary: every label, status, channel, category, loop step and map
class in Chinese (the default) and English (``?lang=en``).

Category names come from the taxonomy (:mod:`geo_service.reports.taxonomy`), status names
from the Open311 labels the centre already prints (:mod:`geo_service.protocols.open311`);
the rest is declared here once, so the page and its script never carry a label of their own.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from geo_service.analytics.emerging import PATTERNS
from geo_service.analytics.hotspots import CLASS_NAMES
from geo_service.db.schema import CHANNELS, REPORT_STATUSES
from geo_service.reports.taxonomy import CATEGORIES, CHANNEL_NAMES, STATUS_NAMES

Lang = Literal["zh", "en"]
LANGS: Final[tuple[Lang, ...]] = get_args(Lang)
HTML_LANG: Final[dict[Lang, str]] = {"zh": "zh-CN", "en": "en"}

# (zh, en) of every fixed text of the page
TEXT: Final[dict[str, tuple[str, str]]] = {
    "title": ("网格化社会治理综合指挥中心", "Grid governance command centre"),
    "subtitle": ("指挥大屏", "Wall screen"),
    "today": ("今日", "Today"),
    "week": ("本周", "This week"),
    "month": ("本月", "This month"),
    "reported": ("新增上报", "New reports"),
    "accepted": ("立案", "Accepted"),
    "closed": ("结案", "Closed"),
    "closure_rate": ("结案率", "Closure rate"),
    "on_time_rate": ("按期结案率", "On-time rate"),
    "overdue_open": ("超期未结", "Overdue open"),
    "median_minutes_to_dispatch": ("派遣用时中位数(分钟)", "Median minutes to dispatch"),
    "minutes": ("分钟", "min"),
    "by_channel": ("各渠道上报", "Reports by channel"),
    "trend": ("本年逐月趋势", "Monthly trend this year"),
    "ranking": ("考核排名", "Ranking"),
    "towns": ("镇(街道)", "Towns"),
    "communities": ("村(社区)", "Communities"),
    "units": ("责任单位", "Units"),
    "rank": ("名次", "Rank"),
    "name": ("名称", "Name"),
    "score": ("得分", "Score"),
    "grade": ("等级", "Grade"),
    "map": ("态势地图", "Situation map"),
    "layer_heat": ("热力", "Heat"),
    "layer_hotspots": ("热点(Gi*)", "Hot spots (Gi*)"),
    "layer_emerging": ("新兴热点", "Emerging hot spots"),
    "layer_live": ("最新上报", "Latest reports"),
    "heat_legend": ("每格上报数", "Reports per cell"),
    "hotspot_legend": ("热点分析(Gi*)", "Hot spot analysis (Gi*)"),
    "emerging_legend": ("新兴热点分类", "Emerging hot spot categories"),
    "filters": ("筛选", "Filters"),
    "period": ("时段", "Period"),
    "area": ("区域", "Area"),
    "category": ("类别", "Category"),
    "channel": ("渠道", "Channel"),
    "status": ("状态", "Status"),
    "all": ("全部", "All"),
    "open": ("未结案", "Open"),
    "closed_cases": ("已结案", "Closed"),
    "whole_district": ("全区", "Whole district"),
    "live": ("实时", "Live"),
    "updated": ("更新于", "Updated"),
    "offline": ("连接中断，正在重试", "Connection lost, retrying"),
    "grid": ("网格", "Grid"),
    "grid_cases": ("网格案件", "Cases in the grid"),
    "no_cases": ("该时段无案件", "No cases in this period"),
    "case": ("案件", "Case"),
    "timeline": ("处置流程", "Timeline"),
    "who": ("处理人", "By"),
    "when": ("时间", "When"),
    "note": ("说明", "Note"),
    "took": ("用时", "Took"),
    "overdue": ("超期", "Overdue"),
    "due_at": ("处置时限", "Due"),
    "unit": ("责任单位", "Unit"),
    "reported_at": ("上报时间", "Reported"),
    "location": ("位置", "Location"),
    "duplicate_of": ("疑似重复", "Suspected duplicate of"),
    "no_duplicates": ("无疑似重复", "No suspected duplicate"),
    "supervised": ("已督办", "Supervised"),
    "hard": ("难事", "Hard case"),
    "actions": ("可执行操作", "Actions"),
    "no_actions": ("当前状态无可执行操作", "No action in this state"),
    "note_prompt": ("请输入说明", "Enter a note"),
    "unit_code_prompt": ("改派单位编码(留空按类别重新派遣)", "Unit code (empty: re-route)"),
    "done": ("已完成", "Done"),
    "failed": ("操作失败", "Failed"),
    "close": ("关闭", "Close"),
    "sign_out": ("退出登录", "Sign out"),
    "signed_in_as": ("当前用户", "Signed in as"),
    "language": ("English", "中文"),
    "hours": ("小时", "h"),
    "days": ("天", "d"),
    "seconds": ("秒", "s"),
    "none": ("—", "—"),
    "system": ("系统", "system"),
    "click_grid": ("点击地图上的网格查看案件", "Click a grid on the map for its cases"),
    "figures_note": ("指标口径：国家数字化城市管理考核", "Figures as the national assessment"),
    "emerging_note": ("按周切片，近12周", "Weekly slices, last 12 weeks"),
    "loading": ("加载中…", "Loading…"),
    "role_operator": ("值班员", "operator"),
    "role_admin": ("管理员", "admin"),
    "role_planner": ("规划员", "planner"),
}

CHANNEL_EN: Final[dict[str, str]] = {
    "grid_app": "Grid app",
    "wechat": "WeChat",
    "hotline_12345": "12345 hotline",
    "video_patrol": "Video patrol",
    "visit": "Walk-in visit",
}
STATUS_EN: Final[dict[str, str]] = {
    "discovered": "Reported",
    "accepted": "Accepted",
    "dispatched": "Dispatched",
    "handling": "Handling",
    "handled": "Handled",
    "verified": "Verified",
    "fed_back": "Fed back",
    "evaluated": "Evaluated (closed)",
    "rejected": "Rejected",
}
# loop steps (report_events.action) and the console's actions
ACTION_TEXT: Final[dict[str, tuple[str, str]]] = {
    "discover": ("发现上报", "Reported"),
    "accept": ("立案受理", "Accept"),
    "reject": ("不予受理", "Reject"),
    "dispatch": ("派遣", "Dispatch"),
    "start": ("开始处置", "Start"),
    "return": ("退回", "Return"),
    "complete": ("处置完成", "Complete"),
    "verify": ("核查通过", "Verify"),
    "rework": ("返工", "Rework"),
    "feed_back": ("反馈", "Feed back"),
    "evaluate": ("评价结案", "Evaluate"),
    "reassign": ("改派", "Reassign"),
    "escalate": ("提级", "Escalate"),
    "supervise": ("督办", "Supervise"),
    "escalate_overdue": ("超期提级", "Escalated (overdue)"),
}
GRADE_TEXT: Final[dict[str, tuple[str, str]]] = {
    "A": ("优秀", "excellent"),
    "B": ("良好", "good"),
    "C": ("合格", "fair"),
    "D": ("较差", "poor"),
    "E": ("差", "failing"),
}
_HOTSPOT_CLASS_EN: Final[dict[str, str]] = {
    "hot_99": "Hot spot, 99 %",
    "hot_95": "Hot spot, 95 %",
    "hot_90": "Hot spot, 90 %",
    "not_significant": "Not significant",
    "cold_90": "Cold spot, 90 %",
    "cold_95": "Cold spot, 95 %",
    "cold_99": "Cold spot, 99 %",
}
HOTSPOT_CLASS_TEXT: Final[dict[str, tuple[str, str]]] = {
    c: (zh, _HOTSPOT_CLASS_EN[c]) for c, zh in CLASS_NAMES.items()
}
_PATTERN_ZH: Final[dict[str, str]] = {
    "new": "新增",
    "consecutive": "连续",
    "intensifying": "加剧",
    "persistent": "持续",
    "diminishing": "减弱",
    "sporadic": "零星",
    "oscillating": "振荡",
    "historical": "历史",
}
EMERGING_TEXT: Final[dict[str, tuple[str, str]]] = {
    f"{p}_{kind}_spot": (
        f"{_PATTERN_ZH[p]}{'热点' if kind == 'hot' else '冷点'}",
        f"{p.capitalize()} {kind} spot",
    )
    for kind in ("hot", "cold")
    for p in PATTERNS
}


def _pick(pair: tuple[str, str], lang: Lang) -> str:
    return pair[0] if lang == "zh" else pair[1]


def lang_of(value: str | None) -> Lang:
    """The page language asked for (``?lang=en``); Chinese for anything else."""
    return "en" if value == "en" else "zh"


def text(key: str, lang: Lang) -> str:
    """One fixed text of the page."""
    return _pick(TEXT[key], lang)


def categories(lang: Lang) -> dict[str, str]:
    """Category code → name (the taxonomy's)."""
    return {c.code: (c.name if lang == "zh" else c.name_en) for c in CATEGORIES}


def channels(lang: Lang) -> dict[str, str]:
    """Channel code → name, every channel the schema knows."""
    names = CHANNEL_NAMES if lang == "zh" else CHANNEL_EN
    return {c: names[c] for c in CHANNELS}


def statuses(lang: Lang) -> dict[str, str]:
    """Report status → name, in loop order."""
    names = STATUS_NAMES if lang == "zh" else STATUS_EN
    return {s: names[s] for s in REPORT_STATUSES}


def bundle(lang: Lang) -> dict[str, dict[str, str]]:
    """Everything the page's script shows, in one language."""
    return {
        "text": {k: _pick(v, lang) for k, v in TEXT.items()},
        "categories": categories(lang),
        "channels": channels(lang),
        "statuses": statuses(lang),
        "actions": {k: _pick(v, lang) for k, v in ACTION_TEXT.items()},
        "grades": {k: _pick(v, lang) for k, v in GRADE_TEXT.items()},
        "hotspot_classes": {k: _pick(v, lang) for k, v in HOTSPOT_CLASS_TEXT.items()},
        "emerging": {k: _pick(v, lang) for k, v in EMERGING_TEXT.items()},
    }
