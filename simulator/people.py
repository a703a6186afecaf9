"""Citizens of the sandbox city: names, mobile numbers and resident ID numbers.

All values are synthetic. ID numbers carry a valid GB 11643 check digit and a birth date, so the
platform's detectors meet realistic values; mobile numbers use real mainland prefixes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN_CHARS = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国建华志强文斌晓东海燕玉兰春梅红梅婷雪慧鹏飞浩宇子涵欣怡梓萱一诺宇轩浩然思远佳怡俊杰"
MOBILE_PREFIXES = ("130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152", "155",
                   "157", "158", "159", "176", "177", "180", "181", "186", "187", "188", "189", "199")
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"


@dataclass(frozen=True)
class Citizen:
    name: str
    phone: str
    id_no: str


def id_check_digit(first17: str) -> str:
    return ID_CHECK[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def make_citizen(rng: random.Random, region_code: str) -> Citizen:
    given = "".join(rng.choice(GIVEN_CHARS) for _ in range(rng.choice((1, 2, 2))))
    name = rng.choice(SURNAMES) + given
    phone = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
    birth = date(1945, 1, 1) + timedelta(days=rng.randrange(365 * 60))
    first17 = f"{region_code}{birth:%Y%m%d}{rng.randrange(1000):03d}"
    return Citizen(name=name, phone=phone, id_no=first17 + id_check_digit(first17))
