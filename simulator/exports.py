"""What each department system shows of the truth: its own schema, codes, formats, time zone,
delivery (API store, SQL database, daily file drops, export files) and its known faults.

Every fault injected here is recorded (`Fault`) so that the manifest lists it with its locator.
"""

from __future__ import annotations

import calendar
import json
import random
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from simulator import city, stores
from simulator.generator import Event, SandboxTruth, WorkOrder

SHANGHAI_OFFSET = timedelta(hours=8)

# Department systems beyond the central hotline and which department owns each.
ZHUJIAN_DEPT = "ZJJ"
CHENGGUAN_DEPT = "CGJ"
GONGDIAN_DEPT = "GDGS"

ZHUJIAN_STATUS = {"pending": "1", "handling": "2", "closed": "3", "returned": "9"}
CHENGGUAN_STATUS = {"pending": "待签收", "handling": "办理中", "closed": "已办结", "returned": "已退回"}
GONGDIAN_STATUS = {"pending": "NEW", "handling": "DOING", "closed": "DONE", "returned": "REJECTED"}
LZ_ACTIONS = {"dispatch": "派单", "sign": "签收", "return": "退回", "reassign": "改派", "extend_request": "延期申请",
              "reply": "回复", "close": "办结"}
SATISFACTION_CODES = {"满意": 1, "基本满意": 2, "不满意": 3, "未评价": 0}
RESOLUTION_CODES = {"解决": 1, "部分解决": 2, "未解决": 3}

INJECTION_STRINGS = ("<script>alert('x')</script>", "'; DROP TABLE orders; --", "<img src=x onerror=alert(1)>",
                     "1' OR '1'='1")
OVERSIZED_REPEAT = 400


def zhujian_category_code(category_code: str) -> str:
    return str(3001 + [c.code for c in city.CATEGORIES].index(category_code))


def open311_service_code(category_code: str) -> str:
    return f"S{1 + [c.code for c in city.CATEGORIES].index(category_code):03d}"


GONGDIAN_FAULT_TYPES = {"GY0201": "E01", "GY0202": "E02"}


@dataclass
class Fault:
    fault_id: str
    system: str
    fault_type: str
    locator: str  # row id, own id, or file:line: where the bad record is
    order_no: str | None  # the true work order behind the record (None if it has none)
    field: str | None
    bad_value: str | None
    expected: str  # quarantine (record rejected with a reason) or sanitize (kept, neutralised on output)


def iso_shanghai(dt: datetime | None) -> str | None:
    return None if dt is None else f"{dt:%Y-%m-%dT%H:%M:%S}+08:00"


def iso_utc(dt: datetime | None) -> str | None:
    return None if dt is None else f"{dt - SHANGHAI_OFFSET:%Y-%m-%dT%H:%M:%S}Z"


def epoch(dt: datetime | None) -> int | None:
    return None if dt is None else calendar.timegm((dt - SHANGHAI_OFFSET).timetuple())


def local_text(dt: datetime | None) -> str | None:
    return None if dt is None else f"{dt:%Y-%m-%d %H:%M:%S}"


def slash_text(dt: datetime | None) -> str | None:
    return None if dt is None else f"{dt.year}/{dt.month}/{dt.day} {dt.hour}:{dt.minute:02d}"


class FaultPlan:
    """Chooses which records of a system turn bad, at a known rate, every type at least once."""

    def __init__(self, rng: random.Random, system: str, rate: float, types: tuple[str, ...]):
        self.rng, self.system, self.rate, self.types = rng, system, rate, types
        self.faults: list[Fault] = []

    def use_rate_of(self, truth: SandboxTruth) -> FaultPlan:
        """Apply the system's own fault rate when the parameters override it (system_fault_rates)."""
        self.rate = truth.params.system_fault_rates.get(self.system, self.rate)
        return self

    def choose(self, keys: list) -> dict:
        """Map chosen record keys to fault types."""
        if not keys:
            return {}
        count = min(len(keys), max(len(self.types), round(self.rate * len(keys))))
        chosen = self.rng.sample(keys, count)
        return {key: self.types[i % len(self.types)] for i, key in enumerate(chosen)}

    def record(self, fault_type, locator, order_no, field_name, bad_value, expected="quarantine"):
        self.faults.append(Fault(f"{self.system}-{len(self.faults) + 1:05d}", self.system, fault_type, str(locator),
                                 order_no, field_name, None if bad_value is None else str(bad_value)[:200], expected))


def _dept_view(order: WorkOrder, dept: str) -> tuple[list[Event], str | None, str]:
    """A department's own view of an order: its events, its role, its status."""
    own = [e for e in order.events if e.dept_code == dept]
    if not own:
        return [], None, "pending"
    role = next((e.role for e in own if e.event_type in ("dispatch", "reassign")), "lead")
    status = "pending"
    for e in own:
        if e.event_type == "sign":
            status = "handling"
        elif e.event_type == "return":
            status = "returned"
        elif e.event_type == "close":
            status = "closed"
    if role == "assist" and status == "handling" and order.closed_at is not None:
        status = "closed"
    return own, role, status


def _orders_of(truth: SandboxTruth, dept: str) -> list[WorkOrder]:
    return [o for o in truth.orders if any(e.dept_code == dept and e.event_type in ("dispatch", "reassign")
                                           for e in o.events)]


# -- central 12345 system -------------------------------------------------------------------------------------
HOTLINE_FAULTS = ("invalid_date", "impossible_date", "unknown_district", "unknown_category", "missing_id",
                  "conflicting_duplicate", "oversized_text", "injection_text")


def _status_versions(order: WorkOrder) -> list[tuple[datetime, str]]:
    versions = []
    for e in order.events:
        status = {"accept": "accepted", "dispatch": "handling", "reassign": "handling", "close": "closed",
                  "visit": "visited", "redo": "handling", "merge": "closed"}.get(e.event_type)
        if e.event_type == "merge":
            continue
        if status and (e.event_type != "dispatch" or e.role == "lead"):
            versions.append((e.recorded_at, status))
    return versions


def write_hotline(truth: SandboxTruth, path: Path, plan: FaultPlan) -> int:
    conn = stores.create_store(path, stores.HOTLINE_DDL)
    faults = plan.use_rate_of(truth).choose([o.order_no for o in truth.orders])
    order_rows, version_rows, event_rows = [], [], []
    row_id = 0
    for order in truth.orders:
        row_id += 1
        row = {
            "row_id": row_id, "order_no": order.order_no, "channel_code": order.channel_code,
            "demand_type_code": order.demand_type_code, "urgency": order.urgency, "title": order.title,
            "content": order.content, "category_code": order.category_code, "district_code": order.district_code,
            "street_code": order.street_code, "community_code": order.community_code, "address": order.address,
            "caller_name": order.caller.name, "caller_phone": order.caller.phone, "caller_id_no": order.caller.id_no,
            "confidential": int(order.confidential), "external_ref": order.external_ref,
            "received_at": iso_shanghai(order.received_at), "received_ts": epoch(order.received_at),
        }
        versions = _hotline_versions(order)
        fault = faults.get(order.order_no)
        if fault:
            row, versions, extra = _hotline_fault(plan, fault, row, versions, order, row_id)
            if extra is not None:
                order_rows.append(row)
                version_rows.extend((row_id, *v) for v in versions)
                row_id += 1
                extra["row_id"] = row_id
                row = extra
        order_rows.append(row)
        version_rows.extend((row["row_id"], *v) for v in versions)
        for e in order.events:
            event_rows.append((e.event_id, e.order_no, e.event_type, e.dept_code, e.role, iso_shanghai(e.occurred_at),
                               epoch(e.recorded_at), e.note))
    columns = list(order_rows[0])
    conn.executemany(f"INSERT INTO orders ({','.join(columns)}) VALUES ({','.join('?' * len(columns))})",
                     [tuple(r[c] for c in columns) for r in order_rows])
    conn.executemany("INSERT INTO order_versions VALUES (?,?,?,?,?,?,?,?,?,?)", version_rows)
    conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)", event_rows)
    conn.commit()
    conn.close()
    return len(order_rows)


def _hotline_versions(order: WorkOrder) -> list[tuple]:
    """One version per status change, carrying the state fields as they were then."""
    versions: dict[int, tuple] = {}
    lead, assists, due, closed, reply, direct = None, [], None, None, None, 0
    status_of = {"accept": "accepted", "dispatch": "handling", "reassign": "handling", "close": "closed",
                 "visit": "visited", "redo": "handling", "direct_answer": "handling"}
    status = "accepted"
    for e in sorted(order.events, key=lambda ev: ev.recorded_at):
        if e.event_type in ("dispatch", "reassign") and e.role == "lead":
            lead = e.dept_code
            due = iso_shanghai(order.base_due_at)
        elif e.event_type == "dispatch":
            assists = [*assists, e.dept_code]
        elif e.event_type == "extend_approve" and order.due_at:
            due = iso_shanghai(order.due_at)
        elif e.event_type == "reply":
            reply = e.note
        elif e.event_type == "direct_answer":
            direct = 1
        elif e.event_type == "close":
            closed = iso_shanghai(e.occurred_at)
        elif e.event_type == "redo":
            closed = None
        status = status_of.get(e.event_type, status)
        if e.event_type == "merge":
            status = "accepted"
        ts = epoch(e.recorded_at)
        while ts in versions and versions[ts][0] != status:
            ts += 1
        versions[ts] = (status, lead, ",".join(assists) or None, direct, due, closed, reply, order.parent_order_no)
    return [(ts, *v) for ts, v in sorted(versions.items())]


def _hotline_fault(plan, fault, row, versions, order, row_id):
    locator = f"row_id={row_id}"
    extra = None
    if fault == "invalid_date":
        bad = row["received_at"].replace("T", " ", 1)[:8] + "32T25:61:00+08:00"
        row["received_at"], row["received_ts"] = bad, None
        plan.record(fault, locator, order.order_no, "received_at", bad)
    elif fault == "impossible_date":
        bad = iso_shanghai(order.received_at.replace(year=2035))
        row["received_at"] = bad
        plan.record(fault, locator, order.order_no, "received_at", bad)
    elif fault == "unknown_district":
        row["district_code"] = "379999"
        plan.record(fault, locator, order.order_no, "district_code", "379999")
    elif fault == "unknown_category":
        row["category_code"] = "XX9999"
        plan.record(fault, locator, order.order_no, "category_code", "XX9999")
    elif fault == "missing_id":
        row["order_no"] = None
        plan.record(fault, locator, order.order_no, "order_no", None)
    elif fault == "conflicting_duplicate":
        extra = dict(row)
        other = [c.code for c in city.CATEGORIES if c.code != order.category_code]
        extra["category_code"] = plan.rng.choice(other)
        extra["title"] = extra["title"] + "（重复提交）"
        plan.record(fault, f"row_id={row_id + 1}", order.order_no, "category_code", extra["category_code"])
    elif fault == "oversized_text":
        row["content"] = (row["content"] + "　") * OVERSIZED_REPEAT
        plan.record(fault, locator, order.order_no, "content", f"{len(row['content'])} characters")
    elif fault == "injection_text":
        bad = plan.rng.choice(INJECTION_STRINGS)
        row["title"] = row["title"] + bad
        plan.record(fault, locator, order.order_no, "title", bad, expected="sanitize")
    return row, versions, extra


# -- Open311 (the city app channel) ----------------------------------------------------------------------------
OPEN311_FAULTS = ("invalid_date", "unknown_category", "injection_text", "oversized_text")


def write_open311(truth: SandboxTruth, path: Path, plan: FaultPlan) -> int:
    conn = stores.create_store(path, stores.OPEN311_DDL)
    conn.executemany('INSERT INTO services VALUES (?,?,?,?,?)', [
        (open311_service_code(c.code), c.name, f"{c.l1_name} / {c.l2_name} / {c.name}", c.l1_name,
         ",".join(c.objects)) for c in city.CATEGORIES])
    app_orders = [o for o in truth.orders if o.external_ref]
    faults = plan.use_rate_of(truth).choose([o.external_ref for o in app_orders])
    centroid = {d.code: (36.06 + i * 0.03, 120.38 + i * 0.04) for i, d in enumerate(city.DISTRICTS)}
    rows = []
    for o in app_orders:
        close = next((e for e in reversed(o.events) if e.event_type == "close"), None)
        lat, lon = centroid[o.district_code]
        row = [o.external_ref, open311_service_code(o.category_code), o.content,
               city.DEPARTMENT_BY_CODE[o.lead_dept_code].name if o.lead_dept_code else "12345热线",
               o.address, None, round(lat + plan.rng.uniform(-0.01, 0.01), 6),
               round(lon + plan.rng.uniform(-0.01, 0.01), 6), iso_utc(o.received_at), epoch(o.received_at),
               iso_utc(o.due_at), epoch(o.closed_at) if close else None, o.reply_content if close else None,
               epoch(close.recorded_at) if close else None]
        fault = faults.get(o.external_ref)
        if fault == "invalid_date":
            row[8] = "2026-99-99T99:99:99Z"
            plan.record(fault, o.external_ref, o.order_no, "requested_datetime", row[8])
        elif fault == "unknown_category":
            row[1] = "S999"
            plan.record(fault, o.external_ref, o.order_no, "service_code", "S999")
        elif fault == "injection_text":
            bad = plan.rng.choice(INJECTION_STRINGS)
            row[2] = row[2] + bad
            plan.record(fault, o.external_ref, o.order_no, "description", bad, expected="sanitize")
        elif fault == "oversized_text":
            row[2] = (row[2] + " ") * OVERSIZED_REPEAT
            plan.record(fault, o.external_ref, o.order_no, "description", f"{len(row[2])} characters")
        rows.append(row)
    conn.executemany(f"INSERT INTO requests VALUES ({','.join('?' * 14)})", rows)
    conn.commit()
    conn.close()
    return len(rows)


# -- 住建局 SQL database ----------------------------------------------------------------------------------------
ZHUJIAN_FAULTS = ("invalid_date", "unknown_district", "unknown_category", "missing_id", "conflicting_duplicate",
                  "injection_text")


def write_zhujian(truth: SandboxTruth, path: Path, plan: FaultPlan) -> tuple[int, list[tuple[str, str]]]:
    conn = stores.create_store(path, stores.ZHUJIAN_DDL)
    orders = _orders_of(truth, ZHUJIAN_DEPT)
    faults = plan.use_rate_of(truth).choose([o.order_no for o in orders])
    district_name = {d.code: d.name for d in city.DISTRICTS}
    street_name = {s.code: s.name for _, s in city.all_streets()}
    main_rows, lz_rows, ids = [], [], []
    for seq, o in enumerate(orders, start=1):
        own, role, status = _dept_view(o, ZHUJIAN_DEPT)
        bjbh = f"ZJ{o.received_at:%Y}{seq:07d}"
        close = next((e for e in reversed(own) if e.event_type == "close"), None)
        reply = next((e for e in reversed(own) if e.event_type == "reply"), None)
        updated = max(e.recorded_at for e in own)
        row = {"bjbh": bjbh, "gdbh": o.order_no, "zbxb": "主办" if role == "lead" else "协办",
               "slsj": local_text(o.received_at), "wtfl": zhujian_category_code(o.category_code),
               "qy": district_name[o.district_code], "jd": street_name[o.street_code], "dz": o.address,
               "bt": o.title, "nr": o.content, "lxr": o.caller.name, "lxdh": o.caller.phone,
               "bjzt": ZHUJIAN_STATUS[status], "blsx": local_text(o.due_at),
               "bjsj": local_text(close.occurred_at) if close else None, "hfnr": reply.note if reply else None,
               "gxsj": local_text(updated)}
        fault = faults.get(o.order_no)
        if fault == "invalid_date":
            row["slsj"] = f"{o.received_at:%Y}-13-{o.received_at:%d} 00:00:00"
            plan.record(fault, f"bjbh={bjbh}", o.order_no, "slsj", row["slsj"])
        elif fault == "unknown_district":
            row["qy"] = "滨海新区"
            plan.record(fault, f"bjbh={bjbh}", o.order_no, "qy", "滨海新区")
        elif fault == "unknown_category":
            row["wtfl"] = "9999"
            plan.record(fault, f"bjbh={bjbh}", o.order_no, "wtfl", "9999")
        elif fault == "missing_id":
            row["gdbh"] = None
            plan.record(fault, f"bjbh={bjbh}", o.order_no, "gdbh", None)
        elif fault == "injection_text":
            bad = plan.rng.choice(INJECTION_STRINGS)
            row["nr"] = row["nr"] + bad
            plan.record(fault, f"bjbh={bjbh}", o.order_no, "nr", bad, expected="sanitize")
        main_rows.append(row)
        ids.append((bjbh, o.order_no))
        if fault == "conflicting_duplicate":
            dup = dict(row, bjbh=f"ZJ{o.received_at:%Y}{len(orders) + seq:07d}", qy=district_name[
                plan.rng.choice([d.code for d in city.DISTRICTS if d.code != o.district_code])])
            main_rows.append(dup)
            plan.record(fault, f"bjbh={dup['bjbh']}", o.order_no, "qy", dup["qy"])
        for e in own:
            if e.event_type in LZ_ACTIONS:
                lz_rows.append((None, bjbh, LZ_ACTIONS[e.event_type], local_text(e.occurred_at),
                                f"zj{plan.rng.randint(100, 199)}", e.note, local_text(e.recorded_at)))
    columns = list(main_rows[0]) if main_rows else []
    if main_rows:
        conn.executemany(f"INSERT INTO gd_main ({','.join(columns)}) VALUES ({','.join('?' * len(columns))})",
                         [tuple(r[c] for c in columns) for r in main_rows])
    conn.executemany("INSERT INTO gd_lz VALUES (?,?,?,?,?,?,?)", lz_rows)
    conn.commit()
    conn.close()
    return len(main_rows), ids


# -- daily file drops: 城管局 (GBK CSV) and 供电公司 (XLSX) -----------------------------------------------------
CHENGGUAN_FAULTS = ("invalid_date", "unknown_district", "unknown_category", "missing_id", "conflicting_duplicate",
                    "oversized_text", "injection_text")
CHENGGUAN_HEADER = ("工单编号", "受理时间", "区县", "街道", "问题类别", "标题", "诉求内容", "联系人", "联系电话",
                    "办理状态", "签收时间", "办结时间", "处理结果", "更新时间")
GONGDIAN_FAULTS = ("invalid_date", "unknown_category", "missing_id")
GONGDIAN_HEADER = ("ticket_no", "work_id", "accept_time", "district", "fault_type", "summary", "detail", "contact",
                   "phone", "state", "finish_time", "update_time")


def _daily_snapshots(truth: SandboxTruth, dept: str) -> dict[date, list[tuple[WorkOrder, list[Event], str]]]:
    """For each day, the department's orders whose state it changed that day, as they stood that evening."""
    by_day: dict[date, list] = defaultdict(list)
    for o in _orders_of(truth, dept):
        own, _, _ = _dept_view(o, dept)
        for day in sorted({e.recorded_at.date() for e in own}):
            seen = [e for e in own if e.recorded_at.date() <= day]
            status = _dept_view(_with_events(o, seen), dept)[2]
            by_day[day].append((o, seen, status))
    return by_day


def _with_events(order: WorkOrder, events: list[Event]) -> WorkOrder:
    clone = WorkOrder(**{k: v for k, v in order.__dict__.items() if k != "events"})
    clone.events = events
    clone.closed_at = None
    return clone


def write_chengguan_drops(truth: SandboxTruth, folder: Path, plan: FaultPlan) -> int:
    import csv
    import io

    folder.mkdir(parents=True, exist_ok=True)
    district_name = {d.code: d.name for d in city.DISTRICTS}
    street_name = {s.code: s.name for _, s in city.all_streets()}
    snapshots = _daily_snapshots(truth, CHENGGUAN_DEPT)
    keys = [(day, i) for day, rows in snapshots.items() for i in range(len(rows))]
    faults = plan.use_rate_of(truth).choose(keys)
    days = sorted(snapshots)
    truncated_day = days[len(days) // 2] if days else None
    total = 0
    for day in days:
        name = f"城管工单_{day:%Y%m%d}.csv"
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(CHENGGUAN_HEADER)
        line = 1
        for i, (o, seen, status) in enumerate(snapshots[day]):
            sign = next((e for e in seen if e.event_type == "sign"), None)
            close = next((e for e in reversed(seen) if e.event_type == "close"), None)
            reply = next((e for e in reversed(seen) if e.event_type == "reply"), None)
            row = [o.order_no, slash_text(o.received_at), district_name[o.district_code], street_name[o.street_code],
                   city.CATEGORY_BY_CODE[o.category_code].name, o.title, o.content, o.caller.name, o.caller.phone,
                   CHENGGUAN_STATUS[status], slash_text(sign.occurred_at if sign else None),
                   slash_text(close.occurred_at if close else None), reply.note if reply else "",
                   slash_text(max(e.recorded_at for e in seen))]
            fault = faults.get((day, i))
            line += 1
            locator = f"{name}:{line}"
            if fault == "invalid_date":
                row[1] = "2026/2/30 8:00"
                plan.record(fault, locator, o.order_no, "受理时间", row[1])
            elif fault == "unknown_district":
                row[2] = "新城区"
                plan.record(fault, locator, o.order_no, "区县", row[2])
            elif fault == "unknown_category":
                row[4] = "其他杂项"
                plan.record(fault, locator, o.order_no, "问题类别", row[4])
            elif fault == "missing_id":
                row[0] = ""
                plan.record(fault, locator, o.order_no, "工单编号", "")
            elif fault == "oversized_text":
                row[6] = (row[6] + "　") * OVERSIZED_REPEAT
                plan.record(fault, locator, o.order_no, "诉求内容", f"{len(row[6])} characters")
            elif fault == "injection_text":
                bad = plan.rng.choice(INJECTION_STRINGS)
                row[6] += bad
                plan.record(fault, locator, o.order_no, "诉求内容", bad, expected="sanitize")
            writer.writerow([v or "" for v in row])
            if fault == "conflicting_duplicate":
                line += 1
                dup = list(row)
                dup[4] = plan.rng.choice([c.name for c in city.CATEGORIES if c.code != o.category_code])
                writer.writerow([v or "" for v in dup])
                plan.record(fault, f"{name}:{line}", o.order_no, "问题类别", dup[4])
                total += 1
            total += 1
        data = buffer.getvalue().encode("gbk")
        if day == truncated_day:
            cut = data.rfind(b"\r\n", 0, len(data) - 2)
            keep = cut + 2 + (len(data) - cut - 2) // 2
            lost_lines = line  # the last line is cut in half
            data = data[:keep]
            plan.record("truncated_file", f"{name}:{lost_lines}", snapshots[day][-1][0].order_no, None,
                        f"file cut at byte {keep}")
        (folder / name).write_bytes(data)
    return total


def write_gongdian_drops(truth: SandboxTruth, folder: Path, plan: FaultPlan) -> int:
    from openpyxl import Workbook

    folder.mkdir(parents=True, exist_ok=True)
    district_pinyin = {d.code: d.pinyin for d in city.DISTRICTS}
    snapshots = _daily_snapshots(truth, GONGDIAN_DEPT)
    keys = [(day, i) for day, rows in snapshots.items() for i in range(len(rows))]
    faults = plan.use_rate_of(truth).choose(keys)
    work_ids: dict[str, str] = {}
    total = 0
    for day in sorted(snapshots):
        name = f"gongdian_{day:%Y%m%d}.xlsx"
        book = Workbook(write_only=True)
        sheet = book.create_sheet("工单")
        sheet.append(GONGDIAN_HEADER)
        for i, (o, seen, status) in enumerate(snapshots[day]):
            work_id = work_ids.setdefault(o.order_no, f"GD-WO-{len(work_ids) + 1:06d}")
            close = next((e for e in reversed(seen) if e.event_type == "close"), None)
            row = [o.order_no, work_id, o.received_at, district_pinyin[o.district_code],
                   GONGDIAN_FAULT_TYPES.get(o.category_code, "E99"), o.title, o.content, o.caller.name,
                   o.caller.phone, GONGDIAN_STATUS[status], close.occurred_at if close else None,
                   max(e.recorded_at for e in seen)]
            fault = faults.get((day, i))
            locator = f"{name}:{i + 2}"
            if fault == "invalid_date":
                row[2] = "N/A"
                plan.record(fault, locator, o.order_no, "accept_time", "N/A")
            elif fault == "unknown_category":
                row[4] = "E77"
                plan.record(fault, locator, o.order_no, "fault_type", "E77")
            elif fault == "missing_id":
                row[0] = None
                plan.record(fault, locator, o.order_no, "ticket_no", None)
            sheet.append(row)
            total += 1
        (folder / name).write_bytes(_reproducible_xlsx(book, datetime.combine(day, datetime.max.time())))
    return total


def _reproducible_xlsx(book, moment: datetime) -> bytes:
    """openpyxl stamps the save time into the document properties and the zip entries; fix both
    to the drop's own day so the same seed gives the same bytes."""
    import io
    import re
    import zipfile

    raw = io.BytesIO()
    book.save(raw)
    stamp = f"{moment:%Y-%m-%dT%H:%M:%S}Z"
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw.getvalue())) as source, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*", rb"\g<1>" + stamp.encode(), data)
            info = zipfile.ZipInfo(item.filename, date_time=moment.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, data)
    return out.getvalue()


# -- 回访 survey system export ---------------------------------------------------------------------------------
SURVEY_FAULTS = ("invalid_value", "missing_id", "impossible_date")


def write_survey_exports(truth: SandboxTruth, folder: Path, plan: FaultPlan) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    visits = [(o, e) for o in truth.orders for e in o.events if e.event_type == "visit"]
    faults = plan.use_rate_of(truth).choose([e.event_id for _, e in visits])
    by_day: dict[date, list] = defaultdict(list)
    for o, e in visits:
        resolution, satisfaction = e.note.split("/")
        record = {"visit_id": e.event_id, "ticket": o.order_no, "visit_time": epoch(e.occurred_at),
                  "solved": RESOLUTION_CODES.get(resolution), "satisfaction": SATISFACTION_CODES[satisfaction],
                  "visitor": f"hf{plan.rng.randint(1, 40):03d}"}
        fault = faults.get(e.event_id)
        if fault == "invalid_value":
            record["satisfaction"] = 7
            plan.record(fault, f"visit_id={e.event_id}", o.order_no, "satisfaction", 7)
        elif fault == "missing_id":
            record["ticket"] = None
            plan.record(fault, f"visit_id={e.event_id}", o.order_no, "ticket", None)
        elif fault == "impossible_date":
            record["visit_time"] = epoch(o.received_at - timedelta(days=3))
            plan.record(fault, f"visit_id={e.event_id}", o.order_no, "visit_time", record["visit_time"])
        by_day[e.recorded_at.date()].append(record)
    for day, records in sorted(by_day.items()):
        (folder / f"visits_{day:%Y%m%d}.json").write_text(json.dumps(records, ensure_ascii=False, indent=0),
                                                         encoding="utf-8")
    return len(visits)


def faults_as_dicts(faults: list[Fault]) -> list[dict]:
    return [asdict(f) for f in faults]
