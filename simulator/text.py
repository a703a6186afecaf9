"""Chinese free text of work orders: titles and descriptions from varied templates.

Each category brings its own objects, problems and asks (simulator.city); templates add place
names, durations, impacts and sometimes the caller's own personal data inside the text, the way
citizens really speak to an operator.
"""

from __future__ import annotations

import random

from simulator.city import Category
from simulator.people import Citizen

DURATIONS = ("已经三天了", "持续一个多星期", "半个月了", "这几天一直这样", "从上周开始", "快一个月了",
             "今天早上开始", "反复出现多次", "已经两个多月")
IMPACTS = ("严重影响居民正常生活", "老人孩子出行很不方便", "存在安全隐患", "周边居民意见很大",
           "影响休息", "给生活带来极大不便", "多次沟通无果", "大家都很着急")
HISTORY = ("之前已经打过电话但没有解决。", "此前向社区反映过，至今未处理。", "", "", "物业说不归他们管。",
           "相关单位来看过一次就没下文了。", "")
OPENINGS = ("市民来电反映：", "来电人反映，", "市民通过网络反映：", "群众反映：", "来电称，", "")
ASK_FORMS = ("希望相关部门{ask}。", "请求{ask}。", "要求尽快{ask}。", "希望能{ask}，尽快给予答复。")
TITLE_FORMS = ("{community}{object}{problem}", "关于{place}{object}{problem}的问题", "{object}{problem}",
               "反映{street}{object}{problem}", "{place}{object}问题")
CONSULT_FORMS = ("市民来电咨询{object}相关事宜，{problem}，请相关部门予以解答。",
                 "来电人咨询{place}{object}的办理流程及政策，{problem}。")
PRAISE_FORMS = ("市民来电表扬{dept}工作人员，{object}问题处理及时，态度热情，特此致谢。",)
INVALID_FORMS = ("来电无声。", "来电人未说明诉求即挂断。", "骚扰电话。", "来电询问天气，已告知拨打其他热线。")
SUGGEST_FORMS = ("建议在{place}增设{object}相关设施，{problem}的问题可以得到改善。",
                 "市民建议加强{place}{object}管理，{ask}。")
PII_FORMS = ("我姓{surname}，联系电话{phone}。", "来电人{name}，电话{phone}，", "本人{name}，身份证号{id_no}，",
             "请回电{phone}。")


def render(rng: random.Random, category: Category, demand_type: str, place: str, street: str,
           community: str, dept_name: str, caller: Citizen, pii_in_text: bool) -> tuple[str, str]:
    obj = rng.choice(category.objects)
    problem = rng.choice(category.problems)
    ask = rng.choice(category.asks)
    slots = {"object": obj, "problem": problem, "ask": ask, "place": place, "street": street,
             "community": community, "dept": dept_name}
    title = rng.choice(TITLE_FORMS).format(**slots)
    if demand_type == "WX":
        return "无效来电", rng.choice(INVALID_FORMS)
    if demand_type == "BY":
        title = f"表扬{dept_name}"
        body = rng.choice(PRAISE_FORMS).format(**slots)
    elif demand_type == "ZX":
        title = f"咨询{obj}{rng.choice(('', '相关政策', '办理'))}"
        body = rng.choice(CONSULT_FORMS).format(**slots)
    elif demand_type == "JY":
        title = f"建议{rng.choice(('加强', '改善', '规范'))}{obj}管理"
        body = rng.choice(SUGGEST_FORMS).format(**slots)
    else:
        body = (f"{rng.choice(OPENINGS)}{place}的{obj}{problem}，{rng.choice(DURATIONS)}，"
                f"{rng.choice(IMPACTS)}。{rng.choice(HISTORY)}{rng.choice(ASK_FORMS).format(ask=ask)}")
    if pii_in_text:
        pii = rng.choice(PII_FORMS).format(surname=caller.name[0], name=caller.name, phone=caller.phone,
                                           id_no=caller.id_no)
        body = pii + body if rng.random() < 0.5 else body + pii
    return title, body


def reply_text(rng: random.Random, dept_name: str, resolved: bool) -> str:
    if resolved:
        return rng.choice((f"{dept_name}已安排工作人员现场处理，问题已解决，并与来电人沟通。",
                           f"经{dept_name}核实，已按规定处理完毕，来电人表示认可。",
                           f"{dept_name}已联系来电人，问题已于近日整改到位。"))
    return rng.choice((f"{dept_name}已现场核实，因涉及多方责任，正在协调处理中，已向来电人解释。",
                       f"经{dept_name}核查，该诉求不属于本单位职责，已向来电人说明相关政策。",
                       f"{dept_name}已将情况纳入计划，待条件具备后处理。"))
