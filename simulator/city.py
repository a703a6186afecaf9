"""The sandbox city: a fixed, fictional prefecture-level city (海滨市) with its districts,
departments, category tree, channels and demand types.

The city's structure does not depend on the generator's seed, so the platform's reference
seeds (dbt_project/seeds) can be checked against it. Each department system has its own code
lists; the mappings from those codes to the platform's standard codes live here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CITY_NAME = "海滨市"
CITY_CODE = "370900"


@dataclass(frozen=True)
class Community:
    code: str
    name: str


@dataclass(frozen=True)
class Street:
    code: str
    name: str
    kind: str  # 街道 or 镇
    communities: tuple[Community, ...]


@dataclass(frozen=True)
class District:
    code: str
    name: str
    pinyin: str
    weight: float  # share of the city's demand volume
    streets: tuple[Street, ...]


# district name, pinyin, volume weight, streets (name, kind, communities)
_DISTRICT_SPEC: list[tuple[str, str, float, list[tuple[str, str, list[str]]]]] = [
    ("中山区", "zhongshan", 0.22, [
        ("解放路街道", "街道", ["人民社区", "和平社区", "文化社区", "胜利社区"]),
        ("东风街道", "街道", ["东风社区", "朝阳社区", "红旗社区"]),
        ("望海街道", "街道", ["望海社区", "观澜社区", "听涛社区", "海韵社区"]),
        ("湖滨街道", "街道", ["湖滨社区", "柳岸社区", "荷花社区"]),
    ]),
    ("东城区", "dongcheng", 0.20, [
        ("建设路街道", "街道", ["建设社区", "新村社区", "工人社区"]),
        ("金桥街道", "街道", ["金桥社区", "银河社区", "星光社区", "彩虹社区"]),
        ("振华街道", "街道", ["振华社区", "兴华社区", "光华社区"]),
        ("东湖镇", "镇", ["东湖村", "渔港村", "前进村"]),
    ]),
    ("西湖区", "xihu", 0.18, [
        ("西湖街道", "街道", ["西湖社区", "曲院社区", "孤山社区"]),
        ("翠苑街道", "街道", ["翠苑一社区", "翠苑二社区", "翠苑三社区"]),
        ("文华街道", "街道", ["文华社区", "书香社区", "学府社区", "博雅社区"]),
        ("留下镇", "镇", ["留下村", "杨家村", "茶园村"]),
    ]),
    ("南港区", "nangang", 0.15, [
        ("港湾街道", "街道", ["港湾社区", "码头社区", "灯塔社区"]),
        ("临港街道", "街道", ["临港社区", "新港社区", "海关社区"]),
        ("南山镇", "镇", ["南山村", "石岭村", "果园村", "溪口村"]),
    ]),
    ("北岭区", "beiling", 0.12, [
        ("北岭街道", "街道", ["北岭社区", "松林社区", "青石社区"]),
        ("龙泉街道", "街道", ["龙泉社区", "清泉社区", "玉泉社区"]),
        ("白云镇", "镇", ["白云村", "岭下村", "枫树村"]),
    ]),
    ("高新区", "gaoxin", 0.13, [
        ("科技城街道", "街道", ["创新社区", "智谷社区", "软件园社区", "未来社区"]),
        ("云栖街道", "街道", ["云栖社区", "数据港社区", "芯城社区"]),
    ]),
]


def _build_districts() -> tuple[District, ...]:
    districts = []
    for d_idx, (name, pinyin, weight, streets) in enumerate(_DISTRICT_SPEC, start=1):
        d_code = f"3709{d_idx:02d}"
        built_streets = []
        for s_idx, (s_name, kind, communities) in enumerate(streets, start=1):
            s_code = f"{d_code}{s_idx:03d}"
            built_streets.append(
                Street(
                    code=s_code,
                    name=s_name,
                    kind=kind,
                    communities=tuple(
                        Community(code=f"{s_code}{c_idx:03d}", name=c_name)
                        for c_idx, c_name in enumerate(communities, start=1)
                    ),
                )
            )
        districts.append(District(d_code, name, pinyin, weight, tuple(built_streets)))
    return tuple(districts)


DISTRICTS: tuple[District, ...] = _build_districts()


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    peer_group: str  # 区县 / 市直部门 / 公共企业
    speed: float  # >1 is slower than the city's typical handling speed
    return_rate: float  # share of dispatched orders it returns (退单)
    district_code: str | None = None  # for district governments


PEER_GROUPS = ("区县", "市直部门", "公共企业")

DEPARTMENTS: tuple[Department, ...] = (
    *(
        Department(f"QZF{i:02d}", f"{d.name}人民政府", "区县", speed, rr, d.code)
        for i, (d, speed, rr) in enumerate(
            zip(DISTRICTS, (0.9, 1.0, 1.1, 1.3, 1.5, 0.8), (0.03, 0.04, 0.05, 0.06, 0.08, 0.03), strict=True),
            start=1,
        )
    ),
    Department("CGJ", "市城市管理局", "市直部门", 1.0, 0.05),
    Department("ZJJ", "市住房和城乡建设局", "市直部门", 1.2, 0.06),
    Department("JTJ", "市交通运输局", "市直部门", 0.9, 0.04),
    Department("STHJJ", "市生态环境局", "市直部门", 1.1, 0.04),
    Department("SCJGJ", "市市场监督管理局", "市直部门", 1.0, 0.05),
    Department("RSJ", "市人力资源和社会保障局", "市直部门", 1.2, 0.03),
    Department("JYJ", "市教育局", "市直部门", 0.9, 0.03),
    Department("WJW", "市卫生健康委员会", "市直部门", 0.8, 0.02),
    Department("SWJ", "市水务局", "市直部门", 1.1, 0.05),
    Department("GAJ", "市公安局", "市直部门", 0.7, 0.03),
    Department("GSJT", "海滨供水集团", "公共企业", 0.8, 0.02),
    Department("GDGS", "国网海滨供电公司", "公共企业", 0.7, 0.02),
    Department("RQJT", "海滨燃气集团", "公共企业", 1.0, 0.03),
)

DEPARTMENT_BY_CODE = {d.code: d for d in DEPARTMENTS}
DISTRICT_GOVERNMENT = {d.district_code: d.code for d in DEPARTMENTS if d.district_code}


@dataclass(frozen=True)
class Category:
    """A level-3 category with its parents, handling department and text vocabulary."""

    code: str  # level-3 code, e.g. CX0101
    name: str
    l2_code: str
    l2_name: str
    l1_code: str
    l1_name: str
    department: str  # department code, or "DISTRICT" for the order's district government
    weight: float
    season: str  # none / winter / summer
    objects: tuple[str, ...]  # what the citizen talks about
    problems: tuple[str, ...]  # what is wrong
    asks: tuple[str, ...]  # what the citizen asks for
    keywords: tuple[str, ...] = field(default=())


# l1 code, l1 name, [(l2 name, [(l3 name, dept, weight, season, objects, problems, asks)])]
_CATEGORY_SPEC = [
    ("CX", "城乡建设", [
        ("物业管理", [
            ("电梯故障", "ZJJ", 3.0, "none", ("小区电梯", "单元电梯", "楼道电梯"),
             ("经常停运", "困人多次", "运行时异响严重", "坏了一个多星期没人修"), ("尽快维修电梯", "督促物业定期检修")),
            ("物业收费", "ZJJ", 2.0, "none", ("物业费", "停车管理费", "公摊水电费"),
             ("收费不公示", "涨价未经业主同意", "重复收费"), ("公开收费明细", "退还多收费用")),
            ("小区环境卫生", "DISTRICT", 2.0, "none", ("小区垃圾", "楼道杂物", "化粪池"),
             ("长期无人清理", "异味严重", "堆放堵塞通道"), ("安排清理", "加强物业管理")),
        ]),
        ("房屋安全", [
            ("房屋漏水", "ZJJ", 1.5, "summer", ("顶楼屋面", "外墙", "楼上卫生间"),
             ("下雨就漏水", "渗水导致墙皮脱落", "漏水多次报修未果"), ("维修防水层", "协调维修")),
            ("老旧小区改造", "ZJJ", 1.2, "none", ("老旧小区改造工程", "加装电梯项目", "管网改造"),
             ("施工进度缓慢", "改造质量差", "未征求居民意见"), ("加快进度", "公开改造方案")),
        ]),
        ("建筑施工", [
            ("夜间施工噪音", "ZJJ", 2.0, "none", ("附近工地", "在建楼盘", "道路施工"),
             ("夜间十点后仍在施工", "凌晨打桩", "噪音扰民影响休息"), ("制止夜间施工", "核查夜间施工许可")),
            ("工地扬尘", "STHJJ", 1.0, "none", ("工地渣土车", "拆迁工地", "施工围挡"),
             ("扬尘严重", "未覆盖防尘网", "车辆带泥上路"), ("督促落实降尘措施", "依法查处")),
        ]),
    ]),
    ("CS", "城市管理", [
        ("市容环境", [
            ("占道经营", "CGJ", 2.5, "summer", ("流动摊贩", "夜市摊点", "沿街商户"),
             ("占用人行道经营", "堵塞消防通道", "油烟和垃圾乱扔"), ("依法整治", "规范设置摊点")),
            ("垃圾清运不及时", "CGJ", 2.0, "summer", ("垃圾桶", "垃圾中转站", "建筑垃圾"),
             ("满溢多日无人清运", "臭味扰民", "随意倾倒"), ("及时清运", "增加清运频次")),
            ("违规户外广告", "CGJ", 0.8, "none", ("楼顶广告牌", "门头招牌", "LED屏"),
             ("存在坠落隐患", "夜间强光扰民", "未经审批设置"), ("拆除违规广告", "排查安全隐患")),
        ]),
        ("违法建设", [
            ("违章搭建", "CGJ", 1.8, "none", ("楼顶", "一楼院子", "公共绿地"),
             ("私自搭建彩钢房", "违建侵占公共空间", "违建遮挡采光"), ("拆除违建", "依法查处")),
        ]),
        ("园林绿化", [
            ("树木修剪", "CGJ", 1.0, "summer", ("行道树", "小区大树", "绿化带"),
             ("树枝遮挡路灯", "树木倾斜有倒伏危险", "树枝伸进窗户"), ("修剪树枝", "排查隐患")),
        ]),
    ]),
    ("JT", "交通运输", [
        ("公共交通", [
            ("公交线路调整", "JTJ", 1.5, "none", ("公交线路", "公交站点", "末班车"),
             ("线路取消出行不便", "班次太少等车时间长", "末班车时间太早"), ("恢复线路", "增加班次")),
            ("公交服务态度", "JTJ", 1.0, "none", ("公交司机", "公交车", "乘务员"),
             ("服务态度恶劣", "到站不停", "急刹车乘客摔倒"), ("加强管理", "核实后处理")),
        ]),
        ("道路设施", [
            ("路面破损", "JTJ", 1.8, "summer", ("路面", "人行道", "井盖"),
             ("坑洼不平", "井盖缺失", "雨后塌陷"), ("尽快修复", "设置警示标志")),
            ("交通信号灯故障", "JTJ", 1.0, "none", ("红绿灯", "信号灯", "人行横道灯"),
             ("不亮", "时间设置不合理", "故障导致拥堵"), ("维修信号灯", "优化配时")),
        ]),
        ("出租车网约车", [
            ("出租车拒载", "JTJ", 0.8, "none", ("出租车", "网约车", "巡游车"),
             ("拒载", "绕路多收费", "不打表"), ("查处司机", "退还多收车费")),
        ]),
    ]),
    ("HB", "生态环境", [
        ("大气污染", [
            ("餐饮油烟", "STHJJ", 1.5, "none", ("楼下饭店", "烧烤店", "餐饮街"),
             ("油烟直排", "油烟熏黑外墙", "气味刺鼻"), ("安装油烟净化设施", "依法查处")),
            ("工业废气", "STHJJ", 0.8, "none", ("化工厂", "工业园区", "喷涂厂"),
             ("夜间偷排废气", "刺鼻气味", "烟囱冒黑烟"), ("调查处理", "加强监测")),
        ]),
        ("噪声污染", [
            ("商业噪音", "STHJJ", 1.2, "summer", ("广场舞", "商铺音响", "KTV"),
             ("音量过大", "深夜扰民", "影响学生学习"), ("协调降低音量", "依法处理")),
        ]),
        ("水污染", [
            ("河道污染", "SWJ", 1.0, "summer", ("河道", "排污口", "湖面"),
             ("水体发黑发臭", "死鱼漂浮", "有企业偷排污水"), ("查找污染源", "治理河道")),
        ]),
    ]),
    ("SC", "市场监管", [
        ("食品安全", [
            ("食品质量问题", "SCJGJ", 1.5, "none", ("超市", "外卖", "菜市场"),
             ("出售过期食品", "食品中有异物", "食用后身体不适"), ("调查处理", "赔偿损失")),
        ]),
        ("消费维权", [
            ("预付卡退费", "SCJGJ", 2.0, "none", ("健身房", "培训机构", "美容店"),
             ("商家跑路", "拒绝退还预付费", "变更服务内容"), ("协调退费", "依法查处")),
            ("商品质量纠纷", "SCJGJ", 1.5, "none", ("家电", "手机", "家具"),
             ("买到假冒伪劣产品", "售后推诿", "虚假宣传"), ("协调退换货", "查处商家")),
        ]),
    ]),
    ("LD", "劳动社保", [
        ("劳资纠纷", [
            ("拖欠工资", "RSJ", 2.5, "winter", ("工地", "公司", "工厂"),
             ("拖欠工资三个月", "年底工资不结算", "老板失联"), ("帮助追讨工资", "依法维权")),
        ]),
        ("社会保险", [
            ("社保缴纳", "RSJ", 1.5, "none", ("单位", "社保卡", "医保"),
             ("未依法缴纳社保", "社保断缴", "社保卡无法使用"), ("督促补缴", "说明办理流程")),
            ("养老金发放", "RSJ", 0.8, "none", ("养老金", "退休金", "高龄补贴"),
             ("未按时发放", "发放金额有误", "资格认证困难"), ("核实发放", "解释政策")),
        ]),
    ]),
    ("JY", "教育", [
        ("招生入学", [
            ("入学咨询", "JYJ", 1.5, "summer", ("小学入学", "初中招生", "学区划分"),
             ("政策不清楚", "学区划分不合理", "报名系统无法登录"), ("解释政策", "协调入学")),
        ]),
        ("校外培训", [
            ("违规培训", "JYJ", 0.8, "none", ("培训机构", "托管班", "家教中心"),
             ("违规收费", "无资质办学", "节假日违规补课"), ("依法查处", "退还费用")),
        ]),
    ]),
    ("WS", "卫生健康", [
        ("医疗服务", [
            ("医疗服务投诉", "WJW", 1.5, "winter", ("医院", "社区卫生服务中心", "诊所"),
             ("排队时间过长", "医生态度差", "收费不合理"), ("改进服务", "核实处理")),
            ("疫苗接种咨询", "WJW", 0.6, "winter", ("疫苗接种点", "流感疫苗", "儿童疫苗"),
             ("预约不上", "接种时间不清楚", "疫苗短缺"), ("说明接种安排", "增加接种名额")),
        ]),
    ]),
    ("SW", "水务", [
        ("排水防涝", [
            ("道路积水", "SWJ", 1.2, "summer", ("路段", "下穿通道", "小区门口"),
             ("下雨后严重积水", "积水没过膝盖", "排水不畅车辆熄火"), ("疏通排水管网", "设置抽水泵")),
            ("下水道堵塞", "SWJ", 1.5, "none", ("下水道", "雨水井", "污水管"),
             ("堵塞返臭", "污水外溢", "井盖下陷"), ("疏通管道", "维修井盖")),
        ]),
    ]),
    ("GY", "公用事业", [
        ("供水", [
            ("停水", "GSJT", 1.5, "summer", ("自来水", "二次供水", "水管"),
             ("无故停水未通知", "水压低高楼层没水", "水质发黄"), ("尽快恢复供水", "提前公告停水")),
        ]),
        ("供电", [
            ("停电", "GDGS", 1.5, "summer", ("小区供电", "线路", "变压器"),
             ("频繁停电", "电压不稳烧坏电器", "停电未提前通知"), ("尽快恢复供电", "检修线路")),
            ("电费异常", "GDGS", 0.8, "none", ("电费", "电表", "阶梯电价"),
             ("电费突然增加", "电表走字异常", "多收费"), ("核查电表", "退还多收电费")),
        ]),
        ("燃气与供暖", [
            ("暖气不热", "RQJT", 2.0, "winter", ("暖气", "供暖管道", "地暖"),
             ("室温不达标", "暖气片冰凉", "供暖时间未到就停"), ("检修管道", "退还部分取暖费")),
            ("燃气安全", "RQJT", 0.8, "winter", ("燃气管道", "燃气表", "液化气站"),
             ("闻到燃气味", "管道老化", "燃气表故障"), ("上门检查", "更换管道")),
        ]),
    ]),
    ("ZA", "社会治安", [
        ("治安管理", [
            ("邻里纠纷", "DISTRICT", 1.5, "none", ("邻居", "楼上住户", "对门住户"),
             ("长期噪音扰民", "占用公共走廊", "饲养宠物扰民"), ("帮助调解", "上门劝导")),
            ("电动车被盗", "GAJ", 1.0, "none", ("电动车", "自行车", "电瓶"),
             ("在小区被盗", "停车棚监控不起作用", "多次被盗"), ("调查处理", "加强巡逻")),
        ]),
    ]),
    ("ZF", "政务服务", [
        ("政策咨询", [
            ("户籍办理咨询", "GAJ", 1.2, "none", ("户口迁移", "居住证", "身份证"),
             ("办理材料不清楚", "办理时间太长", "网上无法办理"), ("说明办理流程", "简化材料")),
            ("惠民政策咨询", "DISTRICT", 1.5, "none", ("消费券", "以旧换新补贴", "生育补贴"),
             ("申领条件不清楚", "补贴未到账", "申请被拒"), ("解释政策", "核实发放")),
        ]),
    ]),
]


def _build_categories() -> tuple[Category, ...]:
    categories = []
    for l1_code, l1_name, l2_list in _CATEGORY_SPEC:
        for l2_idx, (l2_name, l3_list) in enumerate(l2_list, start=1):
            l2_code = f"{l1_code}{l2_idx:02d}"
            for l3_idx, (name, dept, weight, season, objects, problems, asks) in enumerate(l3_list, start=1):
                categories.append(
                    Category(
                        code=f"{l2_code}{l3_idx:02d}",
                        name=name,
                        l2_code=l2_code,
                        l2_name=l2_name,
                        l1_code=l1_code,
                        l1_name=l1_name,
                        department=dept,
                        weight=weight,
                        season=season,
                        objects=objects,
                        problems=problems,
                        asks=asks,
                    )
                )
    return tuple(categories)


CATEGORIES: tuple[Category, ...] = _build_categories()
CATEGORY_BY_CODE = {c.code: c for c in CATEGORIES}

# channel code (platform standard), name, share of volume
CHANNELS: tuple[tuple[str, str, float], ...] = (
    ("01", "电话", 0.60),
    ("02", "网站", 0.07),
    ("03", "微信", 0.12),
    ("04", "APP", 0.10),
    ("05", "微博/短视频", 0.03),
    ("06", "问政节目", 0.01),
    ("07", "上级派发", 0.07),
)
APP_CHANNEL = "04"

# demand type code, name, share, time limit in working days (None: no handling limit)
DEMAND_TYPES: tuple[tuple[str, str, float, int | None], ...] = (
    ("ZX", "咨询", 0.28, 3),
    ("QZ", "求助", 0.18, 3),
    ("TS", "投诉", 0.30, 13),
    ("JB", "举报", 0.06, 13),
    ("JY", "建议", 0.08, 13),
    ("BY", "表扬", 0.02, None),
    ("WX", "无效", 0.08, None),
)
DEMAND_TYPE_NAME = {code: name for code, name, _, _ in DEMAND_TYPES}
TIME_LIMIT_WORKING_DAYS = {code: limit for code, _, _, limit in DEMAND_TYPES}
URGENT_TIME_LIMIT_WORKING_DAYS = 1
EXTENSION_WORKING_DAYS = 5

URGENCY = (("一般", 0.93), ("紧急", 0.06), ("特急", 0.01))

# The platform's lifecycle event vocabulary (code, Chinese name).
EVENT_TYPES: tuple[tuple[str, str], ...] = (
    ("accept", "受理"),
    ("direct_answer", "直接答复"),
    ("dispatch", "派单"),
    ("sign", "签收"),
    ("return", "退单"),
    ("reassign", "改派"),
    ("extend_request", "延期申请"),
    ("extend_approve", "延期批准"),
    ("supervise", "督办"),
    ("reply", "回复"),
    ("close", "办结"),
    ("visit", "回访"),
    ("redo", "重办"),
    ("merge", "并单"),
)
EVENT_TYPE_NAME = dict(EVENT_TYPES)

RESOLUTION_VALUES = ("解决", "部分解决", "未解决")
SATISFACTION_VALUES = ("满意", "基本满意", "不满意", "未评价")

STATUSES = (("accepted", "已受理"), ("handling", "办理中"), ("closed", "已办结"), ("visited", "已回访"))


def all_streets() -> list[tuple[District, Street]]:
    return [(d, s) for d in DISTRICTS for s in d.streets]


def handling_department(category: Category, district_code: str) -> str:
    if category.department == "DISTRICT":
        return DISTRICT_GOVERNMENT[district_code]
    return category.department
