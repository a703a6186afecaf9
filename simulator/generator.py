"""The sandbox city's work orders and their lifecycles: the ground truth.

`generate()` is deterministic for a given `SandboxParams`. It returns what really happened;
`simulator.exports` then writes what each department system shows of it (its own schema, codes,
formats and faults), and `simulator.manifest` writes the truth next to it for reconciliation.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from simulator import city
from simulator.people import Citizen, make_citizen
from simulator.text import render, reply_text
from simulator.workcal import WorkCalendar

DEFAULT_START = date(2026, 8, 1)

# Hourly profile of incoming demands (index = hour of day).
HOURLY_PROFILE = (0.3, 0.2, 0.1, 0.1, 0.1, 0.3, 0.8, 2.0, 4.0, 6.5, 6.8, 6.0, 4.0, 4.5, 6.0, 6.2, 5.8, 5.0,
                  3.8, 3.5, 3.2, 2.5, 1.5, 0.8)
DIRECT_ANSWER_SHARE = {"ZX": 0.65, "QZ": 0.15, "BY": 1.0}
REPEAT_SHARE = 0.07
MERGE_WINDOW = timedelta(hours=48)
LATE_RECORDING_SHARE = 0.03
DEPARTMENT_REPORTED_EVENTS = frozenset({"sign", "return", "extend_request", "reply", "close"})
FAULT_SYSTEMS = ("hotline", "open311", "zhujian", "chengguan", "gongdian", "survey")


@dataclass(frozen=True)
class SandboxParams:
    days: int = 92
    orders_per_day: int = 150
    seed: int = 12345
    start: date = DEFAULT_START
    fault_rate: float = 0.004  # share of each system's records made bad (each fault type appears at least once)
    pii_in_text_share: float = 0.06
    burst_count: int | None = None  # default: one per 30 days, at least 2
    # per-system override of fault_rate, by system name (hotline, open311, zhujian, chengguan, gongdian,
    # survey): a department whose system is made worse, for scorecard tests
    system_fault_rates: dict[str, float] = field(default_factory=dict, hash=False)

    def __post_init__(self):
        for system, rate in self.system_fault_rates.items():
            if system not in FAULT_SYSTEMS:
                raise ValueError(f"system_fault_rates: unknown system {system!r} (one of {', '.join(FAULT_SYSTEMS)})")
            if not 0 <= rate <= 1:
                raise ValueError(f"system_fault_rates[{system!r}] = {rate}: a share between 0 and 1")

    @property
    def end(self) -> date:
        return self.start + timedelta(days=self.days - 1)

    @property
    def horizon(self) -> datetime:
        """The moment the sandbox systems are observed: the end of the last day."""
        return datetime.combine(self.end, datetime.max.time()).replace(microsecond=0)


@dataclass
class Event:
    event_id: str
    order_no: str
    event_type: str
    occurred_at: datetime
    recorded_at: datetime
    dept_code: str | None = None
    role: str | None = None
    note: str | None = None


@dataclass
class WorkOrder:
    order_no: str
    received_at: datetime
    channel_code: str
    demand_type_code: str
    urgency: str
    category_code: str
    district_code: str
    street_code: str
    community_code: str
    address: str
    title: str
    content: str
    caller: Citizen
    caller_key: int
    confidential: bool
    pii_in_text: bool
    external_ref: str | None = None
    repeat_of: str | None = None
    repeat_group: str | None = None
    burst_id: str | None = None
    # lifecycle truth as of the horizon (filled by _finalize)
    status: str = "accepted"
    is_direct_answer: bool = False
    lead_dept_code: str | None = None
    assist_dept_codes: list[str] = field(default_factory=list)
    dispatched_at: datetime | None = None
    signed_at: datetime | None = None
    sign_due_at: datetime | None = None
    due_at: datetime | None = None
    base_due_at: datetime | None = None  # before any extension
    closed_at: datetime | None = None
    visited_at: datetime | None = None
    resolution: str | None = None
    satisfaction: str | None = None
    reply_content: str | None = None
    parent_order_no: str | None = None
    returned: bool = False
    extended: bool = False
    supervised: bool = False
    redone: bool = False
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True)
class Burst:
    burst_id: str
    category_code: str
    district_code: str
    street_code: str
    start: date
    days: int
    extra_per_day: int


@dataclass
class SandboxTruth:
    params: SandboxParams
    orders: list[WorkOrder]
    bursts: list[Burst]

    @property
    def events(self) -> list[Event]:
        return [e for o in self.orders for e in o.events]


def _weighted(rng: random.Random, items, weights):
    return rng.choices(items, weights=weights, k=1)[0]


def _season_factor(season: str, month: int) -> float:
    if season == "winter":
        return 3.0 if month in (11, 12, 1, 2, 3) else 0.3
    if season == "summer":
        return 2.5 if month in (6, 7, 8) else 0.6
    return 1.0


class _Generator:
    def __init__(self, params: SandboxParams):
        self.p = params
        self.rng = random.Random(params.seed)
        self.cal = WorkCalendar(params.start - timedelta(days=10), params.end + timedelta(days=200))
        self.streets = city.all_streets()
        self.street_weights = [d.weight / len(d.streets) for d, _ in self.streets]
        self.channel_codes = [c for c, _, _ in city.CHANNELS]
        self.channel_weights = [w for _, _, w in city.CHANNELS]
        self.type_codes = [c for c, _, _, _ in city.DEMAND_TYPES]
        self.type_weights = [w for _, _, w, _ in city.DEMAND_TYPES]
        self.citizens: list[Citizen] = []
        self.recent: deque[WorkOrder] = deque(maxlen=400)
        self.app_seq = 0
        self.roads = {d.code: [f"{d.name[:2]}{r}" for r in ("路", "大道", "街", "东路", "西路", "北路")]
                      for d in city.DISTRICTS}

    # -- intake ---------------------------------------------------------------------------------
    def category_weights(self, month: int) -> list[float]:
        return [c.weight * _season_factor(c.season, month) for c in city.CATEGORIES]

    def daily_volume(self, day: date) -> int:
        factor = 1.0
        if not self.cal.is_workday(day):
            factor = 0.6 if day.weekday() < 5 else 0.75  # holidays are quieter than weekends
        noise = self.rng.gauss(1.0, 0.08)
        return max(1, round(self.p.orders_per_day * factor * noise))

    def received_time(self, day: date) -> datetime:
        hour = _weighted(self.rng, range(24), HOURLY_PROFILE)
        return datetime(day.year, day.month, day.day, hour, self.rng.randrange(60), self.rng.randrange(60))

    def new_citizen(self, district_code: str) -> tuple[int, Citizen]:
        citizen = make_citizen(self.rng, district_code)
        self.citizens.append(citizen)
        return len(self.citizens) - 1, citizen

    def address(self, district: city.District, street: city.Street, community: city.Community) -> str:
        if self.rng.random() < 0.5:
            return (f"{city.CITY_NAME}{district.name}{street.name}{community.name}"
                    f"{self.rng.randint(1, 40)}号楼{self.rng.randint(1, 6)}单元")
        road = self.rng.choice(self.roads[district.code])
        return f"{district.name}{road}{self.rng.randint(1, 999)}号附近"

    def make_order(self, order_no: str, received: datetime, category: city.Category,
                   district: city.District, street: city.Street, *, demand_type: str | None = None,
                   repeat_of: WorkOrder | None = None, burst_id: str | None = None) -> WorkOrder:
        rng = self.rng
        if repeat_of is not None:
            community = next(c for c in street.communities if c.code == repeat_of.community_code)
            caller_key, caller = repeat_of.caller_key, repeat_of.caller
            channel = "01"
            demand_type = repeat_of.demand_type_code
        else:
            community = rng.choice(street.communities)
            caller_key, caller = self.new_citizen(district.code)
            channel = _weighted(rng, self.channel_codes, self.channel_weights)
            demand_type = demand_type or _weighted(rng, self.type_codes, self.type_weights)
        dept_code = city.handling_department(category, district.code)
        place = f"{street.name}{community.name}" if rng.random() < 0.6 else f"{district.name}{street.name}"
        pii_in_text = rng.random() < self.p.pii_in_text_share
        title, content = render(rng, category, demand_type, place, street.name, community.name,
                                city.DEPARTMENT_BY_CODE[dept_code].name, caller, pii_in_text)
        external_ref = None
        if channel == city.APP_CHANNEL:
            self.app_seq += 1
            external_ref = f"APP{self.app_seq:08d}"
        urgency = _weighted(rng, [u for u, _ in city.URGENCY], [w for _, w in city.URGENCY])
        order = WorkOrder(
            order_no=order_no, received_at=received, channel_code=channel, demand_type_code=demand_type,
            urgency=urgency, category_code=category.code, district_code=district.code,
            street_code=street.code, community_code=community.code,
            address=self.address(district, street, community), title=title, content=content,
            caller=caller, caller_key=caller_key, confidential=rng.random() < 0.05,
            pii_in_text=pii_in_text and demand_type != "WX", external_ref=external_ref,
            repeat_of=repeat_of.order_no if repeat_of else None,
            repeat_group=(repeat_of.repeat_group or repeat_of.order_no) if repeat_of else None,
            burst_id=burst_id,
        )
        if repeat_of is not None and repeat_of.repeat_group is None:
            repeat_of.repeat_group = repeat_of.order_no
        return order

    # -- lifecycle --------------------------------------------------------------------------------
    def recorded(self, occurred: datetime) -> datetime:
        if self.rng.random() < LATE_RECORDING_SHARE:
            return occurred + timedelta(days=self.rng.uniform(1, 5))
        return occurred + timedelta(seconds=self.rng.randint(5, 300))

    def lifecycle(self, order: WorkOrder, parent: WorkOrder | None) -> list[Event]:
        rng, cal = self.rng, self.cal
        events: list[Event] = []

        def add(kind, when, dept=None, role=None, note=None):
            # Departments report their own steps, sometimes days late; the hotline's steps are immediate.
            late_possible = kind in DEPARTMENT_REPORTED_EVENTS and dept is not None
            when = when.replace(microsecond=0)  # systems record whole seconds
            recorded = self.recorded(when) if late_possible else when + timedelta(seconds=rng.randint(1, 60))
            events.append(Event(f"{order.order_no}-{len(events) + 1:02d}", order.order_no, kind, when,
                                recorded.replace(microsecond=0),
                                dept, role, note))

        t = order.received_at
        add("accept", t)
        if order.demand_type_code == "WX":
            add("close", t + timedelta(minutes=rng.randint(1, 5)), note="无效来电，直接办结")
            return events
        if parent is not None:
            add("merge", t + timedelta(minutes=rng.randint(10, 120)), note=f"并入工单{parent.order_no}")
            order._planned_parent = parent.order_no  # type: ignore[attr-defined]
            return events
        if rng.random() < DIRECT_ANSWER_SHARE.get(order.demand_type_code, 0.03):
            order.is_direct_answer = True
            answered = t + timedelta(minutes=rng.randint(2, 15))
            add("direct_answer", answered, note="话务员依据知识库直接答复")
            add("close", answered + timedelta(minutes=1))
            if rng.random() < 0.3:
                visit = cal.add_working_seconds(datetime.combine(answered.date() + timedelta(days=1),
                                                                 datetime.min.time()), rng.randint(0, 8 * 3600))
                self.visit(order, add, visit, on_time=True)
            return events

        category = city.CATEGORY_BY_CODE[order.category_code]
        dept = city.DEPARTMENT_BY_CODE[city.handling_department(category, order.district_code)]
        limit = (city.URGENT_TIME_LIMIT_WORKING_DAYS if order.urgency != "一般"
                 else city.TIME_LIMIT_WORKING_DAYS[order.demand_type_code])
        dispatched = t + timedelta(minutes=rng.lognormvariate(math.log(45), 0.8))
        add("dispatch", dispatched, dept.code, "lead", note=f"派至{dept.name}（主办）")
        assist = None
        if rng.random() < 0.12:
            pool = [d for d in city.DEPARTMENTS if d.code != dept.code]
            assist = rng.choice(pool)
            add("dispatch", dispatched, assist.code, "assist", note=f"派至{assist.name}（协办）")
        signed = cal.add_working_seconds(dispatched, rng.lognormvariate(math.log(2.5 * 3600 * dept.speed), 0.9))
        if rng.random() < dept.return_rate:
            add("return", signed, dept.code, "lead", note="经核实不属于本单位职责，申请退回")
            new_dept = rng.choice([d for d in city.DEPARTMENTS if d.code != dept.code and d.peer_group != "公共企业"])
            dispatched = signed + timedelta(minutes=rng.lognormvariate(math.log(90), 0.6))
            add("reassign", dispatched, new_dept.code, "lead", note=f"改派至{new_dept.name}")
            dept = new_dept
            signed = cal.add_working_seconds(dispatched, rng.lognormvariate(math.log(2.0 * 3600 * dept.speed), 0.9))
        add("sign", signed, dept.code, "lead")
        if assist is not None:
            add("sign", cal.add_working_seconds(dispatched, rng.uniform(0.5, 6) * 3600), assist.code, "assist")
        due = cal.deadline(dispatched, limit)
        median_days = 1.2 if order.demand_type_code in ("ZX", "QZ") else 4.0
        if limit == 1:
            median_days = 0.4
        duration = rng.lognormvariate(math.log(median_days * dept.speed), 0.85)
        replied = cal.add_working_days(signed, duration)
        # An extension must be asked for after signing and before the limit expires.
        request_at = min(max(signed + timedelta(minutes=10),
                             cal.add_working_seconds(dispatched, max(limit - 1, 0.5) * 8 * 3600)),
                         due - timedelta(hours=2))
        if replied > due and request_at > signed and rng.random() < 0.5:
            add("extend_request", request_at, dept.code, "lead", note="情况复杂，申请延期")
            add("extend_approve", request_at + timedelta(hours=rng.uniform(1, 2)), note="同意延期")
            due = cal.deadline(due, city.EXTENSION_WORKING_DAYS)
        overdue_hours = (replied - due).total_seconds() / 3600
        if overdue_hours > 1:  # the hotline presses a unit that is late and has not replied yet
            add("supervise", due + timedelta(hours=rng.uniform(1, min(20.0, overdue_hours))), note="已超期，督促办理")
        resolved = replied <= due or rng.random() < 0.4
        add("reply", replied, dept.code, "lead", note=reply_text(rng, dept.name, resolved))
        closed = replied + timedelta(minutes=rng.randint(5, 240))
        add("close", closed, dept.code, "lead")
        if rng.random() < 0.85:
            # the hotline follows up the working day after it learns of the close
            known_closed = events[-1].recorded_at
            visit = cal.add_working_seconds(datetime.combine(known_closed.date() + timedelta(days=1),
                                                             datetime.min.time()), rng.randint(0, 8 * 3600))
            unsatisfied = self.visit(order, add, visit, on_time=closed <= due)
            if unsatisfied and rng.random() < 0.35:
                redo = visit + timedelta(hours=rng.uniform(1, 5))
                add("redo", redo, note="回访不满意，退回重办")
                replied2 = cal.add_working_days(redo, rng.lognormvariate(math.log(2.0 * dept.speed), 0.5))
                add("reply", replied2, dept.code, "lead", note=reply_text(rng, dept.name, True))
                closed2 = replied2 + timedelta(minutes=rng.randint(5, 120))
                add("close", closed2, dept.code, "lead")
                visit2 = cal.add_working_seconds(datetime.combine(events[-1].recorded_at.date() + timedelta(days=1),
                                                                  datetime.min.time()), rng.randint(0, 8 * 3600))
                self.visit(order, add, visit2, on_time=False, second=True)
        return events

    def visit(self, order: WorkOrder, add, when: datetime, on_time: bool, second: bool = False) -> bool:
        rng = self.rng
        if rng.random() < 0.08:
            resolution, satisfaction = None, "未评价"
        else:
            p_solved = 0.82 if on_time else 0.5
            if second:
                p_solved = 0.7
            resolution = _weighted(rng, city.RESOLUTION_VALUES, (p_solved, 0.55 * (1 - p_solved), 0.45 * (1 - p_solved)))
            sat_weights = {"解决": (0.75, 0.2, 0.05), "部分解决": (0.25, 0.45, 0.3), "未解决": (0.05, 0.2, 0.75)}
            satisfaction = _weighted(rng, city.SATISFACTION_VALUES[:3], sat_weights[resolution])
        add("visit", when, note=f"{resolution or '未表态'}/{satisfaction}")
        return satisfaction == "不满意"


def _still_open(order: WorkOrder, moment: datetime) -> bool:
    """Whether the hotline still sees the order as open at `moment` (a merge target must be)."""
    closes = [e for e in order._all_events if e.event_type == "close"]  # type: ignore[attr-defined]
    return not order.is_direct_answer and (not closes or closes[-1].recorded_at > moment)


def _finalize(order: WorkOrder, events: list[Event], horizon: datetime, cal: WorkCalendar,
              parent: WorkOrder | None) -> None:
    """Set the order's state to what the systems know at the horizon."""
    known = [e for e in events if e.recorded_at <= horizon and e.occurred_at <= horizon]
    order.events = known
    merged_at = None
    limit = (city.URGENT_TIME_LIMIT_WORKING_DAYS if order.urgency != "一般"
             else city.TIME_LIMIT_WORKING_DAYS[order.demand_type_code])
    status = "accepted"
    for e in known:
        kind = e.event_type
        if kind in ("dispatch", "reassign") and e.role == "lead":
            order.lead_dept_code = e.dept_code
            order.dispatched_at = e.occurred_at
            order.sign_due_at = e.occurred_at + timedelta(hours=24)
            order.due_at = order.base_due_at = cal.deadline(e.occurred_at, limit)
            order.signed_at = None
            status = "handling"
        elif kind == "dispatch" and e.role == "assist":
            order.assist_dept_codes.append(e.dept_code)
        elif kind == "sign" and e.role == "lead":
            order.signed_at = e.occurred_at
        elif kind == "return":
            order.returned = True
        elif kind == "extend_approve":
            order.extended = True
            order.due_at = cal.deadline(order.due_at, city.EXTENSION_WORKING_DAYS)
        elif kind == "supervise":
            order.supervised = True
        elif kind == "reply":
            order.reply_content = e.note
        elif kind == "direct_answer":
            order.is_direct_answer = True
        elif kind == "close":
            order.closed_at = e.occurred_at
            status = "closed"
        elif kind == "visit":
            resolution, satisfaction = e.note.split("/")
            order.resolution = None if resolution == "未表态" else resolution
            order.satisfaction = satisfaction
            order.visited_at = e.occurred_at
            status = "visited"
        elif kind == "redo":
            order.redone = True
            order.closed_at = None
            order.resolution = order.satisfaction = order.visited_at = None
            status = "handling"
        elif kind == "merge":
            order.parent_order_no = parent.order_no
            merged_at = e.recorded_at
    if order.parent_order_no and parent.closed_at is not None:
        # a merged order closes with its parent, once the hotline knows the parent is closed
        parent_close_known = next(e.recorded_at for e in reversed(parent.events) if e.event_type == "close")
        closed = max(parent_close_known, merged_at) + timedelta(seconds=30)
        if closed <= horizon:
            order.closed_at = closed
            order.events.append(Event(f"{order.order_no}-{len(events) + 1:02d}", order.order_no, "close", closed,
                                      closed, None, None, f"随主工单{parent.order_no}办结"))
            status = "closed"
    order.status = status


def _plan_bursts(gen: _Generator) -> list[Burst]:
    p, rng = gen.p, gen.rng
    count = p.burst_count if p.burst_count is not None else max(2, p.days // 30)
    candidates = [c for c in city.CATEGORIES if c.department != "DISTRICT" or True]
    bursts = []
    for i in range(count):
        district, street = rng.choice(gen.streets)
        category = rng.choice(candidates)
        days = rng.randint(3, 7)
        latest_start = max(0, p.days - days - 1)
        start = p.start + timedelta(days=rng.randint(min(14, latest_start), latest_start))
        extra = max(4, round(p.orders_per_day / 30 * rng.uniform(0.8, 1.6)))
        bursts.append(Burst(f"B{i + 1:03d}", category.code, district.code, street.code, start, days, extra))
    return bursts


def generate(params: SandboxParams) -> SandboxTruth:
    gen = _Generator(params)
    rng = gen.rng
    bursts = _plan_bursts(gen)
    by_no: dict[str, WorkOrder] = {}
    orders: list[WorkOrder] = []
    district_by_code = {d.code: d for d in city.DISTRICTS}
    street_by_code = {s.code: (d, s) for d, s in gen.streets}
    for offset in range(params.days):
        day = params.start + timedelta(days=offset)
        weights = gen.category_weights(day.month)
        seq = 0
        intake: list[tuple[datetime, str, object]] = []
        for _ in range(gen.daily_volume(day)):
            intake.append((gen.received_time(day), "normal", None))
        for burst in bursts:
            if burst.start <= day < burst.start + timedelta(days=burst.days):
                for _ in range(max(1, round(burst.extra_per_day * rng.uniform(0.7, 1.3)))):
                    intake.append((gen.received_time(day), "burst", burst))
        intake.sort(key=lambda item: item[0])
        for received, kind, burst in intake:
            seq += 1
            order_no = f"GD{day:%Y%m%d}{seq:06d}"
            parent = None
            if kind == "burst":
                district = district_by_code[burst.district_code]
                _, street = street_by_code[burst.street_code]
                order = gen.make_order(order_no, received, city.CATEGORY_BY_CODE[burst.category_code], district,
                                       street, demand_type=_weighted(rng, ("TS", "QZ", "JB"), (0.6, 0.3, 0.1)),
                                       burst_id=burst.burst_id)
            elif gen.recent and rng.random() < REPEAT_SHARE:
                original = rng.choice(gen.recent)
                district, street = street_by_code[original.street_code]
                order = gen.make_order(order_no, received, city.CATEGORY_BY_CODE[original.category_code],
                                       district, street, repeat_of=original)
                if (received - original.received_at <= MERGE_WINDOW
                        and getattr(original, "_planned_parent", None) is None
                        and _still_open(original, received) and rng.random() < 0.5):
                    parent = original
            else:
                category = _weighted(rng, city.CATEGORIES, weights)
                district, street = _weighted(rng, gen.streets, gen.street_weights)
                order = gen.make_order(order_no, received, category, district, street)
            events = gen.lifecycle(order, parent)
            order._all_events = events  # type: ignore[attr-defined]
            order._parent = parent  # type: ignore[attr-defined]
            orders.append(order)
            by_no[order_no] = order
            if order.demand_type_code not in ("WX", "BY"):
                gen.recent.append(order)
    horizon = params.horizon
    for order in orders:  # parents first: they are always received earlier
        parent = order._parent  # type: ignore[attr-defined]
        _finalize(order, order._all_events, horizon, gen.cal, parent)  # type: ignore[attr-defined]
        del order._all_events, order._parent  # type: ignore[attr-defined]
        order.__dict__.pop("_planned_parent", None)
    return SandboxTruth(params=params, orders=orders, bursts=bursts)
