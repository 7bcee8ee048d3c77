"""Chinese report texts for the synthetic history: templates per category, roads, landmarks.

``{place}`` is where (a community and a road, or a hot place's landmark), ``{n}`` a small
count. The wording follows what grid workers and residents actually type into the apps.
"""

from __future__ import annotations

from typing import Final

TEMPLATES: Final[dict[str, tuple[str, ...]]] = {
    "safety_hazard": (
        "{place}路边广告牌松动，有掉落危险",
        "{place}有井盖缺失，存在安全隐患",
        "{place}电线私拉乱接给电动车充电",
        "{place}施工围挡倒塌，影响行人安全",
        "{place}有{n}处护栏损坏，存在坠落隐患",
    ),
    "illegal_construction": (
        "{place}有人在屋顶加盖彩钢棚",
        "{place}未经审批新建{n}间临时房",
        "{place}院墙外私自扩建，占用公共通道",
        "{place}疑似违法搭建，已施工{n}天",
    ),
    "river_pollution": (
        "{place}河道水体发黑发臭",
        "{place}排污口有污水直排入河",
        "{place}河面漂浮大量垃圾和死鱼",
        "{place}有企业夜间偷排废水",
        "{place}河岸堆放建筑垃圾",
    ),
    "road_occupation": (
        "{place}流动摊贩占道经营，影响通行",
        "{place}有{n}个水果摊占用人行道",
        "{place}店外占道经营，堆放杂物",
        "{place}早市摊位占用机动车道",
    ),
    "facility_damage": (
        "{place}路灯不亮已有{n}天",
        "{place}人行道地砖破损松动",
        "{place}公共健身器材损坏",
        "{place}公交站台顶棚破损",
        "{place}窨井盖破损下沉",
    ),
    "neighbour_dispute": (
        "{place}邻里因噪音问题发生争执",
        "{place}两户居民因漏水问题产生纠纷",
        "{place}楼道堆物引发邻里矛盾",
        "{place}因宅基地界线发生纠纷",
        "{place}因停车位问题多次发生争吵",
    ),
    "fire_risk": (
        "{place}有人焚烧秸秆，烟雾较大",
        "{place}消防通道被车辆堵塞",
        "{place}楼道内电动车充电，存在火灾隐患",
        "{place}灭火器过期未更换",
        "{place}燃放烟花爆竹引燃杂草",
    ),
    "theft": (
        "{place}电动车电瓶被盗",
        "{place}有人反映手机被盗",
        "{place}夜间发生入室盗窃",
        "{place}停放的自行车被盗{n}辆",
    ),
    "sanitation": (
        "{place}垃圾桶满溢无人清运",
        "{place}有建筑垃圾乱倒",
        "{place}公厕卫生差，异味大",
        "{place}绿化带内堆积生活垃圾",
        "{place}道路油污严重",
    ),
    "housing_safety": (
        "{place}老旧房屋墙体开裂",
        "{place}危房仍有人居住",
        "{place}房屋外墙瓷砖脱落",
        "{place}出租房改动承重墙",
    ),
    "flood_risk": (
        "{place}道路积水严重，车辆无法通行",
        "{place}雨水井堵塞，排水不畅",
        "{place}地下车库进水",
        "{place}河道水位上涨，堤岸有渗水",
    ),
    "other": (
        "{place}有流浪犬出没，居民担心安全",
        "{place}居民咨询社保办理事宜",
        "{place}广场舞音响扰民",
        "{place}有人散发小广告",
    ),
}

ROADS: Final = (
    "中山西路",
    "洪兴西路",
    "秀洲大道",
    "新气象路",
    "康和路",
    "加创路",
    "昌盛南路",
    "洪波路",
    "东升西路",
    "秀园路",
    "新园路",
    "庆丰路",
    "城北路",
    "嘉北路",
    "禾兴北路",
    "冬青路",
    "兴平路",
    "八字路",
    "由拳路",
    "王江泾大道",
    "新塍大道",
    "油车港路",
    "高照路",
    "塘汇路",
)

# landmark of each kind of hot place (prefixed by its town's name)
LANDMARKS: Final[dict[str, str]] = {
    "market": "农贸市场周边",
    "station": "客运中心附近",
    "night_market": "夜市街区",
    "construction": "在建工地附近",
    "factory": "印染园区排污口附近",
    "estate": "安置小区",
    "lowland": "低洼积水地段",
    "fields": "田间",
}


def describe(category: str, template: int, place: str, n: int) -> str:
    """One report text: template ``template`` (modulo the category's count) filled in."""
    options = TEMPLATES[category]
    return options[template % len(options)].format(place=place, n=n)
