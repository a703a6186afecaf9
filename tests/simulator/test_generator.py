"""The sandbox generator: determinism, distributions, lifecycle truth, faults, personal data,
bursts, repeats/merges and system coverage.

Every expectation is derived from the configuration (simulator.city, simulator.workcal, the
fault lists in simulator.exports) or recomputed independently here; nothing is copied from a run.
Most tests read one small sandbox built once per session (tests/simulator/conftest.py).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import random
import re
import sqlite3
import types
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import chinese_calendar
import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook

from simulator import city, exports, generator
from simulator.generator import SandboxParams, generate
from simulator.workcal import is_official_workday

TRUTH_TABLES = ("work_orders", "events", "personal_values", "system_records")
SYSTEM_STORES = ("hotline.sqlite", "open311.sqlite", "zhujian.sqlite")
MAIN_LINE = {"accept", "direct_answer", "dispatch", "return", "reassign", "sign", "reply", "close", "visit", "redo"}
PHONE_RE = re.compile(r"^1[3-9]\d{9}$")


# -- helpers --------------------------------------------------------------------------------------------------
def _query(path: Path, sql: str, params=()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _dump_store(path: Path) -> dict[str, tuple]:
    """Schema and every table's rows, ordered by all columns."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        dump = {}
        for name, sql in conn.execute("SELECT name, sql FROM sqlite_master ORDER BY type, name"):
            dump[f"schema:{name}"] = sql
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"):
            columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
            order = ", ".join(f'"{c}"' for c in columns)
            dump[table] = tuple(conn.execute(f'SELECT * FROM "{table}" ORDER BY {order}').fetchall())
        return dump
    finally:
        conn.close()


def _file_hashes(root: Path, pattern: str) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.glob(pattern))}


def _xlsx_rows(path: Path) -> list[tuple]:
    book = load_workbook(path, read_only=True)
    try:
        return [tuple(row) for sheet in book.worksheets for row in sheet.iter_rows(values_only=True)]
    finally:
        book.close()


def _official_workday(day: date) -> bool:
    # the documented rule: the State Council calendar, Monday-Friday beyond the years it knows
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:
        return day.weekday() < 5


def _nth_workday_after(day: date, n: int) -> date:
    while n:
        day += timedelta(days=1)
        n -= _official_workday(day)
    return day


def _time_limit(order: dict) -> int:
    if order["urgency"] != "一般":
        return city.URGENT_TIME_LIMIT_WORKING_DAYS
    return city.TIME_LIMIT_WORKING_DAYS[order["demand_type_code"]]


def _shares(values, keys) -> dict:
    counts = Counter(values)
    total = sum(counts.values())
    return {k: counts[k] / total for k in keys}


def _independent(orders: list[dict]) -> list[dict]:
    """Orders whose intake attributes were drawn from the city configuration (not repeats, not bursts)."""
    return [o for o in orders if o["repeat_of"] is None and o["burst_id"] is None]


def _csv_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\r\n")
    return lines[:-1] if lines and lines[-1] == b"" else lines


def _parse_csv_line(line: bytes) -> list[str]:
    return next(csv.reader(io.StringIO(line.decode("gbk"), newline="")))


def _oversized(fault: dict, actual: str, original: str) -> None:
    n = int(fault["bad_value"].split()[0])
    assert len(actual) == n, fault
    assert n >= 100 * len(original), fault


def _bad(fault: dict, actual) -> None:
    """The recorded bad value is what the system holds."""
    if fault["bad_value"] is None:
        assert actual in (None, ""), (fault, actual)
    elif fault["fault_type"] == "injection_text":
        assert str(actual).endswith(fault["bad_value"]), (fault, actual)
    else:
        assert str(actual) == fault["bad_value"], (fault, actual)


def _faults_of(faults: list[dict], system: str) -> list[dict]:
    found = [f for f in faults if f["system"] == system]
    assert found, system
    return found


# -- 1. determinism -------------------------------------------------------------------------------------------
def test_same_params_give_identical_truth(sandbox, sandbox_twin):
    for name in TRUTH_TABLES:
        first = pq.read_table(sandbox / "truth" / f"{name}.parquet")
        second = pq.read_table(sandbox_twin / "truth" / f"{name}.parquet")
        assert first.num_rows > 0, name
        assert first.equals(second), name
    for name in ("faults.json", "bursts.json"):
        assert (sandbox / "truth" / name).read_bytes() == (sandbox_twin / "truth" / name).read_bytes(), name
    first, second = (json.loads((s / "manifest.json").read_text(encoding="utf-8")) for s in (sandbox, sandbox_twin))
    first.pop("seconds")
    second.pop("seconds")
    assert first == second


def test_same_params_give_identical_system_stores(sandbox, sandbox_twin):
    for store in SYSTEM_STORES:
        first = _dump_store(sandbox / "systems" / store)
        assert any(rows for key, rows in first.items() if not key.startswith("schema:")), store
        assert first == _dump_store(sandbox_twin / "systems" / store), store


def test_same_params_give_identical_csv_and_json_drops(sandbox, sandbox_twin):
    for pattern in ("drops/chengguan/*.csv", "exports/survey/*.json"):
        first = _file_hashes(sandbox, pattern)
        assert first, pattern
        assert first == _file_hashes(sandbox_twin, pattern), pattern


def test_same_params_give_identical_xlsx_contents(sandbox, sandbox_twin):
    first = sorted(p.relative_to(sandbox) for p in sandbox.glob("drops/gongdian/*.xlsx"))
    assert first
    assert first == sorted(p.relative_to(sandbox_twin) for p in sandbox_twin.glob("drops/gongdian/*.xlsx"))
    for rel in first:
        assert _xlsx_rows(sandbox / rel) == _xlsx_rows(sandbox_twin / rel), rel


def test_same_params_give_identical_xlsx_bytes(sandbox, sandbox_twin):
    first = _file_hashes(sandbox, "drops/gongdian/*.xlsx")
    assert first
    assert first == _file_hashes(sandbox_twin, "drops/gongdian/*.xlsx")


def test_different_seed_gives_different_city(sandbox, sandbox_other_seed):
    first = pq.read_table(sandbox / "truth" / "work_orders.parquet")
    other = pq.read_table(sandbox_other_seed / "truth" / "work_orders.parquet")
    assert not first.equals(other)
    assert first.column("content").to_pylist()[:50] != other.column("content").to_pylist()[:50]
    assert (sandbox / "truth" / "faults.json").read_bytes() != (sandbox_other_seed / "truth" / "faults.json").read_bytes()
    assert _file_hashes(sandbox, "drops/chengguan/*.csv") != _file_hashes(sandbox_other_seed, "drops/chengguan/*.csv")
    assert _dump_store(sandbox / "systems" / "hotline.sqlite") != _dump_store(
        sandbox_other_seed / "systems" / "hotline.sqlite")


# -- 2. distributions -----------------------------------------------------------------------------------------
def test_channel_shares_follow_configuration(orders):
    independent = _independent(orders)
    assert len(independent) > 0.8 * len(orders)
    observed = _shares((o["channel_code"] for o in independent), [c for c, _, _ in city.CHANNELS])
    for code, name, share in city.CHANNELS:
        assert abs(observed[code] - share) <= 0.03, (code, name, observed[code], share)


def test_demand_type_shares_follow_configuration(orders):
    independent = _independent(orders)
    observed = _shares((o["demand_type_code"] for o in independent), [c for c, _, _, _ in city.DEMAND_TYPES])
    for code, name, share, _ in city.DEMAND_TYPES:
        assert abs(observed[code] - share) <= 0.03, (code, name, observed[code], share)


def test_district_shares_follow_district_weights(orders):
    independent = _independent(orders)
    total_weight = sum(d.weight for d in city.DISTRICTS)
    observed = _shares((o["district_code"] for o in independent), [d.code for d in city.DISTRICTS])
    for d in city.DISTRICTS:
        assert abs(observed[d.code] - d.weight / total_weight) <= 0.03, (d.name, observed[d.code], d.weight)
    # and every place is a real street/community of that district
    streets = {s.code: (d.code, {c.code for c in s.communities}) for d, s in city.all_streets()}
    for o in orders:
        district, communities = streets[o["street_code"]]
        assert o["district_code"] == district and o["community_code"] in communities, o["order_no"]


def test_seasonal_categories_follow_the_month(orders, sandbox_params):
    august = [o for o in _independent(orders) if o["received_at"].month == 8]
    assert len(august) > 0.5 * sandbox_params.orders_per_day * 31
    total_weight = sum(c.weight for c in city.CATEGORIES)
    base = {season: sum(c.weight for c in city.CATEGORIES if c.season == season) / total_weight
            for season in ("winter", "summer")}
    season_of = {c.code: c.season for c in city.CATEGORIES}
    observed = _shares((season_of[o["category_code"]] for o in august), ("winter", "summer"))
    assert observed["winter"] < 0.5 * base["winter"], (observed, base)
    assert observed["summer"] > base["summer"], (observed, base)


def test_rest_days_are_quieter_than_working_days(orders, sandbox_params):
    per_day = Counter(o["received_at"].date() for o in orders if o["burst_id"] is None)
    days = [sandbox_params.start + timedelta(days=i) for i in range(sandbox_params.days)]
    assert set(per_day) == set(days)
    work = [per_day[d] for d in days if is_official_workday(d)]
    rest = [per_day[d] for d in days if not is_official_workday(d)]
    assert work and rest
    assert sum(rest) / len(rest) < 0.9 * sum(work) / len(work), (rest, work)


def test_received_hours_peak_in_working_hours(orders, sandbox_params):
    hours = Counter(o["received_at"].hour for o in orders)
    peak = max(hours, key=hours.get)
    assert 9 <= peak < 17, hours
    working = sum(hours[h] for h in range(9, 17))
    night = sum(hours[h] for h in range(0, 6))
    assert working / len(orders) > 0.5 and night / len(orders) < 0.05, hours
    start = datetime.combine(sandbox_params.start, time())
    assert all(start <= o["received_at"] <= sandbox_params.horizon for o in orders)


# -- 3. lifecycle truth ---------------------------------------------------------------------------------------
def test_events_reference_known_orders_and_vocabulary(orders_by_no, events):
    assert {e["event_type"] for e in events} <= set(city.EVENT_TYPE_NAME)
    assert len({e["event_id"] for e in events}) == len(events)
    assert {e["order_no"] for e in events} == set(orders_by_no)


def test_lifecycle_main_line_is_chronological(orders, events_by_order, sandbox_params):
    checked = 0
    for o in orders:
        evs = events_by_order[o["order_no"]]
        assert evs[0]["event_type"] == "accept" and evs[0]["occurred_at"] == o["received_at"], o["order_no"]
        assert all(e["occurred_at"] <= sandbox_params.horizon for e in evs)
        assert all(e["recorded_at"] <= sandbox_params.horizon for e in evs)
        if o["parent_order_no"] is not None:
            continue  # merged orders: see the merge tests
        main = [e for e in evs if e["event_type"] in MAIN_LINE and e["role"] in (None, "lead")]
        for before, after in zip(main, main[1:], strict=False):
            assert before["occurred_at"] <= after["occurred_at"], (before, after)
        # sign after its dispatch, close after sign, visit after close, for the lead and the assisting units
        # (against the predecessors known at the horizon; a missing predecessor is test_truth_states_...)
        dispatched: dict[str, datetime] = {}
        last_close = None
        for e in evs:
            if e["event_type"] in ("dispatch", "reassign"):
                dispatched[e["dept_code"]] = e["occurred_at"]
            elif e["event_type"] in ("sign", "return") and e["dept_code"] in dispatched:
                assert e["occurred_at"] >= dispatched[e["dept_code"]], e
                checked += 1
            elif e["event_type"] == "close":
                last_close = e["occurred_at"]
                if o["signed_at"] is not None:
                    assert e["occurred_at"] >= o["signed_at"], e
            elif e["event_type"] == "visit" and last_close is not None:
                assert e["occurred_at"] >= last_close, e
                checked += 1
    assert checked > 0


def test_truth_fields_agree_with_the_event_log(orders, events_by_order):
    for o in orders:
        evs = events_by_order[o["order_no"]]
        leads = [e for e in evs if e["event_type"] in ("dispatch", "reassign") and e["role"] == "lead"]
        if o["dispatched_at"] is not None:
            assert leads and leads[-1]["occurred_at"] == o["dispatched_at"], o["order_no"]
            assert o["lead_dept_code"] == leads[-1]["dept_code"], o["order_no"]
        closes = [e for e in evs if e["event_type"] == "close"]
        if o["closed_at"] is not None:
            assert closes and closes[-1]["occurred_at"] == o["closed_at"], o["order_no"]
        assert o["is_direct_answer"] == any(e["event_type"] == "direct_answer" for e in evs), o["order_no"]
        assert o["returned"] == any(e["event_type"] == "return" for e in evs), o["order_no"]
        assert o["extended"] == any(e["event_type"] == "extend_approve" for e in evs), o["order_no"]
        assert o["supervised"] == any(e["event_type"] == "supervise" for e in evs), o["order_no"]
        assert o["redone"] == any(e["event_type"] == "redo" for e in evs), o["order_no"]
        if o["is_direct_answer"] or o["demand_type_code"] == "WX":
            assert o["dispatched_at"] is None and o["lead_dept_code"] is None, o["order_no"]


def test_truth_states_are_backed_by_known_predecessors(orders):
    for o in orders:
        if o["signed_at"] is not None:
            assert o["dispatched_at"] is not None, o["order_no"]
        if o["visited_at"] is not None or o["status"] in ("closed", "visited"):
            assert o["closed_at"] is not None, o["order_no"]


def test_closed_dispatched_orders_have_a_close_event(orders, events_by_order):
    closed = [o for o in orders if o["dispatched_at"] is not None and o["closed_at"] is not None
              and o["parent_order_no"] is None]
    assert closed
    for o in closed:
        closes = [e for e in events_by_order[o["order_no"]] if e["event_type"] == "close"]
        assert any(e["occurred_at"] == o["closed_at"] and e["dept_code"] is not None for e in closes), o["order_no"]
        replies = [e for e in events_by_order[o["order_no"]] if e["event_type"] == "reply"]
        assert all(r["occurred_at"] <= o["closed_at"] for r in replies), o["order_no"]  # a reply may arrive late


def test_on_time_share_is_plausible(orders):
    closed = [o for o in orders if o["dispatched_at"] is not None and o["closed_at"] is not None
              and o["parent_order_no"] is None]
    on_time = sum(o["closed_at"] <= o["due_at"] for o in closed) / len(closed)
    assert 0.60 <= on_time <= 0.98, on_time


def test_due_at_follows_the_documented_working_day_rule(orders):
    dispatched = [o for o in orders if o["dispatched_at"] is not None]
    assert dispatched and any(o["extended"] for o in dispatched)
    assert any(o["urgency"] != "一般" for o in dispatched)
    for o in dispatched:
        limit = _time_limit(o)
        base = datetime.combine(_nth_workday_after(o["dispatched_at"].date(), limit), time(23, 59, 59))
        assert o["base_due_at"] == base, o["order_no"]
        extra = city.EXTENSION_WORKING_DAYS if o["extended"] else 0
        due = datetime.combine(_nth_workday_after(o["dispatched_at"].date(), limit + extra), time(23, 59, 59))
        assert o["due_at"] == due, o["order_no"]


def test_satisfaction_follows_timeliness(orders):
    rated = [o for o in orders if o["dispatched_at"] is not None and o["closed_at"] is not None
             and o["satisfaction"] not in (None, "未评价")]
    on_time = [o["satisfaction"] == "满意" for o in rated if o["closed_at"] <= o["due_at"]]
    late = [o["satisfaction"] == "满意" for o in rated if o["closed_at"] > o["due_at"]]
    assert len(on_time) > 100 and len(late) > 30
    assert sum(on_time) / len(on_time) > sum(late) / len(late)
    assert {o["satisfaction"] for o in orders if o["satisfaction"]} <= set(city.SATISFACTION_VALUES)
    assert {o["resolution"] for o in orders if o["resolution"]} <= set(city.RESOLUTION_VALUES)


def test_extension_is_requested_after_sign_and_before_expiry(orders, events_by_order):
    extended = [o for o in orders if o["extended"]]
    assert extended
    for o in extended:
        evs = events_by_order[o["order_no"]]
        request = next(e for e in evs if e["event_type"] == "extend_request")
        approve = next(e for e in evs if e["event_type"] == "extend_approve")
        assert request["dept_code"] == o["lead_dept_code"]
        assert request["occurred_at"] <= o["base_due_at"] and approve["occurred_at"] >= request["occurred_at"]
        assert o["signed_at"] is not None and request["occurred_at"] >= o["signed_at"], o["order_no"]


def test_supervision_happens_while_overdue_and_unanswered(orders, events_by_order):
    supervised = [o for o in orders if o["supervised"]]
    assert supervised
    for o in supervised:
        evs = events_by_order[o["order_no"]]
        sup = next(e for e in evs if e["event_type"] == "supervise")
        assert sup["occurred_at"] > o["due_at"], o["order_no"]
        replies = [e["occurred_at"] for e in evs if e["event_type"] == "reply"]
        assert not replies or sup["occurred_at"] < replies[0], o["order_no"]


# -- 4. faults ------------------------------------------------------------------------------------------------
SYSTEM_FAULTS = {
    "hotline": exports.HOTLINE_FAULTS, "open311": exports.OPEN311_FAULTS, "zhujian": exports.ZHUJIAN_FAULTS,
    "chengguan": (*exports.CHENGGUAN_FAULTS, "truncated_file"), "gongdian": exports.GONGDIAN_FAULTS,
    "survey": exports.SURVEY_FAULTS,
}


def test_every_fault_type_is_injected_and_recorded(faults, orders_by_no):
    by_system = defaultdict(set)
    for f in faults:
        by_system[f["system"]].add(f["fault_type"])
        assert f["order_no"] in orders_by_no, f
        assert f["expected"] == ("sanitize" if f["fault_type"] == "injection_text" else "quarantine"), f
    for system, fault_types in SYSTEM_FAULTS.items():
        assert set(fault_types) <= by_system[system], (system, set(fault_types) - by_system[system])
        assert by_system[system] <= set(fault_types), system
    assert set(by_system) == set(SYSTEM_FAULTS)
    assert len({f["fault_id"] for f in faults}) == len(faults)
    assert len({(f["system"], f["locator"]) for f in faults}) == len(faults)


def test_hotline_faults_are_in_the_store(sandbox, faults, orders_by_no, sandbox_params):
    store = sandbox / "systems" / "hotline.sqlite"
    for f in _faults_of(faults, "hotline"):
        row_id = int(f["locator"].removeprefix("row_id="))
        (row,) = _query(store, "SELECT * FROM orders WHERE row_id = ?", (row_id,))
        truth = orders_by_no[f["order_no"]]
        actual = row[f["field"]]
        if f["fault_type"] == "missing_id":
            assert row["order_no"] is None and row["title"] == truth["title"], f
        else:
            assert row["order_no"] == f["order_no"], f
        if f["fault_type"] == "oversized_text":
            _oversized(f, actual, truth["content"])
            continue
        _bad(f, actual)
        if f["fault_type"] == "invalid_date":
            with pytest.raises(ValueError):
                datetime.fromisoformat(actual)
        elif f["fault_type"] == "impossible_date":
            assert datetime.fromisoformat(actual).replace(tzinfo=None) > sandbox_params.horizon, f
        elif f["fault_type"] == "unknown_district":
            assert actual not in {d.code for d in city.DISTRICTS}, f
        elif f["fault_type"] == "unknown_category":
            assert actual not in city.CATEGORY_BY_CODE, f
        elif f["fault_type"] == "conflicting_duplicate":
            twins = _query(store, "SELECT category_code FROM orders WHERE order_no = ? AND row_id != ?",
                           (f["order_no"], row_id))
            assert [r[0] for r in twins] == [truth["category_code"]] and actual != truth["category_code"], f
        elif f["fault_type"] == "injection_text":
            assert actual != truth["title"], f


def test_open311_faults_are_in_the_store(sandbox, faults, orders_by_no):
    store = sandbox / "systems" / "open311.sqlite"
    services = {r[0] for r in _query(store, "SELECT service_code FROM services")}
    for f in _faults_of(faults, "open311"):
        (row,) = _query(store, "SELECT * FROM requests WHERE service_request_id = ?", (f["locator"],))
        truth = orders_by_no[f["order_no"]]
        assert truth["external_ref"] == f["locator"], f
        actual = row[f["field"]]
        if f["fault_type"] == "oversized_text":
            _oversized(f, actual, truth["content"])
            continue
        _bad(f, actual)
        if f["fault_type"] == "invalid_date":
            with pytest.raises(ValueError):
                datetime.fromisoformat(actual)
        elif f["fault_type"] == "unknown_category":
            assert actual not in services, f


def test_zhujian_faults_are_in_the_database(sandbox, faults, orders_by_no):
    store = sandbox / "systems" / "zhujian.sqlite"
    district_names = {d.name for d in city.DISTRICTS}
    codes = {exports.zhujian_category_code(c.code) for c in city.CATEGORIES}
    for f in _faults_of(faults, "zhujian"):
        (row,) = _query(store, "SELECT * FROM gd_main WHERE bjbh = ?", (f["locator"].removeprefix("bjbh="),))
        truth = orders_by_no[f["order_no"]]
        actual = row[f["field"]]
        _bad(f, actual)
        if f["fault_type"] == "missing_id":
            assert row["bt"] == truth["title"], f
        else:
            assert row["gdbh"] == f["order_no"], f
        if f["fault_type"] == "invalid_date":
            with pytest.raises(ValueError):
                datetime.strptime(actual, "%Y-%m-%d %H:%M:%S")
        elif f["fault_type"] == "unknown_district":
            assert actual not in district_names, f
        elif f["fault_type"] == "unknown_category":
            assert actual not in codes, f
        elif f["fault_type"] == "conflicting_duplicate":
            twins = _query(store, "SELECT qy FROM gd_main WHERE gdbh = ? AND bjbh != ?", (f["order_no"], row["bjbh"]))
            assert len(twins) == 1 and twins[0][0] != actual, f
            assert actual in district_names, f


def test_chengguan_faults_are_in_the_drops(sandbox, faults, orders_by_no):
    folder = sandbox / "drops" / "chengguan"
    district_names = {d.name for d in city.DISTRICTS}
    category_names = {c.name for c in city.CATEGORIES}
    for f in _faults_of(faults, "chengguan"):
        if f["fault_type"] == "truncated_file":
            continue
        name, line_no = f["locator"].rsplit(":", 1)
        lines = _csv_lines((folder / name).read_bytes())
        row = _parse_csv_line(lines[int(line_no) - 1])
        assert len(row) == len(exports.CHENGGUAN_HEADER), f
        actual = row[exports.CHENGGUAN_HEADER.index(f["field"])]
        truth = orders_by_no[f["order_no"]]
        if f["fault_type"] == "missing_id":
            assert row[0] == "" and row[5] == truth["title"], f
        else:
            assert row[0] == f["order_no"], f
        if f["fault_type"] == "oversized_text":
            _oversized(f, actual, truth["content"])
            continue
        _bad(f, actual)
        if f["fault_type"] == "invalid_date":
            with pytest.raises(ValueError):
                datetime.strptime(actual, "%Y/%m/%d %H:%M")
        elif f["fault_type"] == "unknown_district":
            assert actual not in district_names, f
        elif f["fault_type"] in ("unknown_category",):
            assert actual not in category_names, f
        elif f["fault_type"] == "conflicting_duplicate":
            previous = _parse_csv_line(lines[int(line_no) - 2])
            assert previous[0] == f["order_no"] and previous[4] == city.CATEGORY_BY_CODE[truth["category_code"]].name
            assert actual != previous[4] and actual in category_names, f


def test_chengguan_truncated_file_is_really_cut(sandbox, faults):
    (fault,) = [f for f in faults if f["fault_type"] == "truncated_file"]
    name, line_no = fault["locator"].rsplit(":", 1)
    data = (sandbox / "drops" / "chengguan" / name).read_bytes()
    assert fault["bad_value"] == f"file cut at byte {len(data)}"
    assert not data.endswith(b"\r\n")
    lines = _csv_lines(data)
    assert len(lines) == int(line_no)
    for line in lines[:-1]:
        assert len(_parse_csv_line(line)) == len(exports.CHENGGUAN_HEADER)
    try:
        last = _parse_csv_line(lines[-1])
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return
    assert len(last) != len(exports.CHENGGUAN_HEADER), last
    assert fault["order_no"] in last[0] or last[0] == "", (fault, last)


def test_chengguan_drops_are_gbk_csv_with_the_documented_header(sandbox, faults, sandbox_params):
    truncated = {f["locator"].rsplit(":", 1)[0] for f in faults if f["fault_type"] == "truncated_file"}
    files = sorted((sandbox / "drops" / "chengguan").glob("*.csv"))
    assert len(files) > sandbox_params.days // 2
    for path in files:
        assert re.fullmatch(r"城管工单_\d{8}\.csv", path.name), path.name
        if path.name in truncated:
            continue
        data = path.read_bytes()
        assert data.endswith(b"\r\n"), path.name
        text = data.decode("gbk")  # strict: must not raise
        rows = list(csv.reader(io.StringIO(text, newline="")))
        assert tuple(rows[0]) == exports.CHENGGUAN_HEADER, path.name
        assert len(rows) > 1 and all(len(r) == len(exports.CHENGGUAN_HEADER) for r in rows), path.name


def test_gongdian_faults_are_in_the_drops(sandbox, faults, orders_by_no):
    folder = sandbox / "drops" / "gongdian"
    known_types = {*exports.GONGDIAN_FAULT_TYPES.values(), "E99"}
    for f in _faults_of(faults, "gongdian"):
        name, row_no = f["locator"].rsplit(":", 1)
        rows = _xlsx_rows(folder / name)
        assert rows[0] == exports.GONGDIAN_HEADER
        row = dict(zip(exports.GONGDIAN_HEADER, rows[int(row_no) - 1], strict=True))
        truth = orders_by_no[f["order_no"]]
        _bad(f, row[f["field"]])
        if f["fault_type"] == "missing_id":
            assert row["ticket_no"] is None and row["summary"] == truth["title"], f
        else:
            assert row["ticket_no"] == f["order_no"], f
        if f["fault_type"] == "invalid_date":
            assert not isinstance(row["accept_time"], datetime), f
        elif f["fault_type"] == "unknown_category":
            assert row["fault_type"] not in known_types, f


def test_survey_faults_are_in_the_exports(sandbox, faults, orders_by_no, events):
    records = {}
    for path in sorted((sandbox / "exports" / "survey").glob("*.json")):
        for record in json.loads(path.read_text(encoding="utf-8")):
            assert record["visit_id"] not in records
            records[record["visit_id"]] = record
    visit_ids = {e["event_id"]: e["order_no"] for e in events if e["event_type"] == "visit"}
    assert set(records) == set(visit_ids)
    for f in _faults_of(faults, "survey"):
        record = records[f["locator"].removeprefix("visit_id=")]
        assert visit_ids[record["visit_id"]] == f["order_no"], f
        _bad(f, record[f["field"]])
        if f["fault_type"] == "invalid_value":
            assert record["satisfaction"] not in exports.SATISFACTION_CODES.values(), f
        elif f["fault_type"] == "impossible_date":
            received = orders_by_no[f["order_no"]]["received_at"]
            shanghai = datetime.fromtimestamp(record["visit_time"], timezone(timedelta(hours=8))).replace(tzinfo=None)
            assert shanghai < received, f
        if f["fault_type"] != "missing_id":
            assert record["ticket"] == f["order_no"], f


# -- 5. personal data -----------------------------------------------------------------------------------------
def _personal_values(sandbox) -> set[tuple[str, str]]:
    table = pq.read_table(sandbox / "truth" / "personal_values.parquet").to_pylist()
    return {(r["kind"], r["value"]) for r in table}


def _valid_id_no(value: str) -> bool:
    if not re.fullmatch(r"\d{17}[\dX]", value):
        return False
    weights = [2 ** (17 - i) % 11 for i in range(17)]  # GB 11643: W_i = 2^(i-1) mod 11, i counted from the right
    check = (12 - sum(int(d) * w for d, w in zip(value[:17], weights, strict=True)) % 11) % 11
    if value[17] != ("X" if check == 10 else str(check)):
        return False
    try:
        datetime.strptime(value[6:14], "%Y%m%d")
    except ValueError:
        return False
    return True


def test_hotline_personal_values_are_all_in_the_truth(sandbox):
    known = _personal_values(sandbox)
    rows = _query(sandbox / "systems" / "hotline.sqlite", "SELECT caller_name, caller_phone, caller_id_no FROM orders")
    assert rows
    for name, phone, id_no in rows:
        assert ("name", name) in known and ("phone", phone) in known and ("id_no", id_no) in known


def test_phone_and_id_numbers_are_well_formed(sandbox):
    known = _personal_values(sandbox)
    phones = [v for k, v in known if k == "phone"]
    ids = [v for k, v in known if k == "id_no"]
    assert phones and ids
    assert all(PHONE_RE.match(p) for p in phones), [p for p in phones if not PHONE_RE.match(p)][:5]
    assert all(_valid_id_no(i) for i in ids), [i for i in ids if not _valid_id_no(i)][:5]
    districts = {d.code for d in city.DISTRICTS}
    assert all(i[:6] in districts for i in ids)
    # the check itself rejects a wrong check digit
    sample = ids[0]
    wrong = sample[:17] + next(c for c in "0123456789X" if c != sample[17])
    assert not _valid_id_no(wrong)


def test_pii_in_text_really_carries_the_callers_values(sandbox, orders, faults):
    callers = {}
    for order_no, name, phone, id_no in _query(
            sandbox / "systems" / "hotline.sqlite", "SELECT order_no, caller_name, caller_phone, caller_id_no FROM orders"):
        callers.setdefault(order_no, (name, phone, id_no))
    for f in faults:  # the row whose order_no was blanked still belongs to its order
        if f["system"] == "hotline" and f["fault_type"] == "missing_id":
            row_id = int(f["locator"].removeprefix("row_id="))
            (row,) = _query(sandbox / "systems" / "hotline.sqlite",
                            "SELECT caller_name, caller_phone, caller_id_no FROM orders WHERE row_id = ?", (row_id,))
            callers[f["order_no"]] = tuple(row)
    with_pii = [o for o in orders if o["pii_in_text"]]
    assert with_pii
    for o in orders:
        name, phone, id_no = callers[o["order_no"]]
        text = o["title"] + o["content"]
        if o["pii_in_text"]:
            assert name in text or phone in text or id_no in text, o["order_no"]
        else:
            assert phone not in text and id_no not in text, o["order_no"]


# -- 6. bursts ------------------------------------------------------------------------------------------------
def test_burst_orders_stay_in_their_street_category_and_days(orders, bursts, sandbox_params):
    assert len(bursts) >= 2
    by_burst = defaultdict(list)
    for o in orders:
        if o["burst_id"] is not None:
            by_burst[o["burst_id"]].append(o)
    assert set(by_burst) == {b["burst_id"] for b in bursts}
    for b in bursts:
        start = date.fromisoformat(b["start"])
        days = {start + timedelta(days=i) for i in range(b["days"])}
        assert days <= {sandbox_params.start + timedelta(days=i) for i in range(sandbox_params.days)}
        members = by_burst[b["burst_id"]]
        assert len(members) == b["orders"]
        for o in members:
            assert (o["street_code"], o["district_code"], o["category_code"]) == (
                b["street_code"], b["district_code"], b["category_code"]), o["order_no"]
            assert o["received_at"].date() in days, o["order_no"]
        assert {o["received_at"].date() for o in members} == days, b["burst_id"]


def test_burst_streets_spike_for_their_category(orders, bursts, sandbox_params):
    for b in bursts:
        start = date.fromisoformat(b["start"])
        burst_days = {start + timedelta(days=i) for i in range(b["days"])}
        per_day = Counter(o["received_at"].date() for o in orders
                          if o["street_code"] == b["street_code"] and o["category_code"] == b["category_code"])
        inside = sum(per_day[d] for d in burst_days) / len(burst_days)
        outside = sum(n for d, n in per_day.items() if d not in burst_days) / (sandbox_params.days - len(burst_days))
        assert inside >= 3 and inside > 5 * outside, (b["burst_id"], inside, outside)


# -- 7. repeats and merges ------------------------------------------------------------------------------------
def test_repeats_point_to_an_earlier_order_of_the_same_caller_and_matter(orders, orders_by_no):
    position = {o["order_no"]: i for i, o in enumerate(orders)}
    repeats = [o for o in orders if o["repeat_of"] is not None]
    assert repeats
    for o in repeats:
        original = orders_by_no[o["repeat_of"]]
        assert position[original["order_no"]] < position[o["order_no"]], o["order_no"]
        assert original["received_at"] <= o["received_at"], o["order_no"]
        for key in ("caller_key", "category_code", "community_code", "street_code", "district_code"):
            assert o[key] == original[key], (o["order_no"], key)
        assert o["repeat_group"] == (original["repeat_group"] or original["order_no"]), o["order_no"]
        assert original["repeat_group"] is not None, o["order_no"]


def test_merged_orders_are_merged_not_dispatched(orders, orders_by_no, events_by_order):
    merged = [o for o in orders if o["parent_order_no"] is not None]
    assert merged
    for o in merged:
        parent = orders_by_no[o["parent_order_no"]]
        assert parent["parent_order_no"] is None and parent["received_at"] <= o["received_at"], o["order_no"]
        assert o["repeat_of"] == parent["order_no"], o["order_no"]
        assert o["dispatched_at"] is None and o["lead_dept_code"] is None and o["signed_at"] is None, o["order_no"]
        evs = events_by_order[o["order_no"]]
        kinds = [e["event_type"] for e in evs]
        assert kinds.count("merge") == 1 and parent["order_no"] in evs[kinds.index("merge")]["note"], o["order_no"]
        assert not {"dispatch", "reassign", "sign", "reply"} & set(kinds), o["order_no"]


def test_merged_orders_close_after_their_merge(orders, events_by_order):
    merged_closed = [o for o in orders if o["parent_order_no"] is not None and o["closed_at"] is not None]
    assert merged_closed
    for o in merged_closed:
        evs = events_by_order[o["order_no"]]
        merge = next(e for e in evs if e["event_type"] == "merge")
        close = next(e for e in evs if e["event_type"] == "close")
        assert o["received_at"] <= merge["occurred_at"] <= close["occurred_at"], o["order_no"]


def test_merges_are_known_at_the_horizon_for_late_orders():
    # A city whose last day is busy: many orders are received in the hours before the horizon.
    for seed in range(3):
        truth = generate(SandboxParams(days=3, orders_per_day=1500, seed=seed, burst_count=0))
        for o in truth.orders:
            if o.parent_order_no is not None:
                assert any(e.event_type == "merge" for e in o.events), (seed, o.order_no)


# -- 8. system coverage and manifest --------------------------------------------------------------------------
def test_app_orders_are_all_in_open311(sandbox, orders):
    app = [o for o in orders if o["channel_code"] == city.APP_CHANNEL]
    assert app and all(o["external_ref"] for o in app)
    assert all(o["external_ref"] is None for o in orders if o["channel_code"] != city.APP_CHANNEL)
    ids = [r[0] for r in _query(sandbox / "systems" / "open311.sqlite", "SELECT service_request_id FROM requests")]
    assert sorted(ids) == sorted(o["external_ref"] for o in app)


def test_zhujian_orders_are_all_in_gd_main(sandbox, events, faults):
    expected: dict[str, str] = {}
    for e in events:
        if e["dept_code"] == exports.ZHUJIAN_DEPT and e["event_type"] in ("dispatch", "reassign"):
            expected.setdefault(e["order_no"], e["role"])
    assert expected
    missing_id = {f["order_no"] for f in faults if f["system"] == "zhujian" and f["fault_type"] == "missing_id"}
    assert missing_id
    rows = _query(sandbox / "systems" / "zhujian.sqlite", "SELECT gdbh, zbxb FROM gd_main")
    present = {gdbh: zbxb for gdbh, zbxb in rows if gdbh is not None}
    assert set(expected) - missing_id <= set(present)
    assert set(present) <= set(expected)
    assert sum(1 for gdbh, _ in rows if gdbh is None) == len(missing_id)
    for order_no, zbxb in present.items():
        assert zbxb == ("主办" if expected[order_no] == "lead" else "协办"), order_no


def test_manifest_counts_match_the_truth(sandbox, manifest, orders, events, faults, bursts, sandbox_params):
    counts = manifest["counts"]
    assert counts["work_orders"] == len(orders)
    assert counts["events"] == len(events)
    assert counts["repeat_orders"] == sum(o["repeat_of"] is not None for o in orders)
    assert counts["merged_orders"] == sum(o["parent_order_no"] is not None for o in orders)
    assert counts["burst_orders"] == sum(o["burst_id"] is not None for o in orders)
    assert counts["orders_with_pii_in_text"] == sum(o["pii_in_text"] for o in orders)
    assert counts["faults_by_system"] == dict(Counter(f["system"] for f in faults))
    assert counts["faults_by_type"] == dict(Counter(f["fault_type"] for f in faults))
    assert manifest["bursts"] == bursts
    assert manifest["params"]["seed"] == sandbox_params.seed and manifest["params"]["days"] == sandbox_params.days
    for key, rel in manifest["files"].items():
        assert (sandbox / rel).exists(), key
    system_records = pq.read_table(sandbox / "truth" / "system_records.parquet").to_pylist()
    per_system = Counter(r["system"] for r in system_records)
    assert per_system["hotline"] == len(orders)
    assert per_system["open311"] == sum(o["channel_code"] == city.APP_CHANNEL for o in orders)


def _physical_records(sandbox: Path, system: str) -> int:
    if system in ("hotline", "open311", "zhujian"):
        table = {"hotline": "orders", "open311": "requests", "zhujian": "gd_main"}[system]
        return _query(sandbox / "systems" / f"{system}.sqlite", f"SELECT count(*) FROM {table}")[0][0]
    if system == "chengguan":
        return sum(len(_csv_lines(p.read_bytes())) - 1 for p in (sandbox / "drops" / "chengguan").glob("*.csv"))
    if system == "gongdian":
        return sum(len(_xlsx_rows(p)) - 1 for p in (sandbox / "drops" / "gongdian").glob("*.xlsx"))
    return sum(len(json.loads(p.read_text(encoding="utf-8"))) for p in (sandbox / "exports" / "survey").glob("*.json"))


@pytest.mark.parametrize("system", [
    "hotline", "open311", "zhujian",
    "chengguan",
    "gongdian", "survey",
])
def test_manifest_system_record_counts_match_the_data(sandbox, manifest, system):
    assert manifest["counts"]["system_records"][system] == _physical_records(sandbox, system)


# -- robustness of generate() ---------------------------------------------------------------------------------
def test_generate_survives_events_recorded_after_the_horizon():
    # Short, busy cities: many lifecycles are cut by the horizon, some with late-recorded steps.
    # (Regression: _finalize() used to crash extending a due date whose dispatch was not yet known.)
    for seed in range(8):
        truth = generate(SandboxParams(days=3, orders_per_day=1500, seed=seed, burst_count=0))
        assert truth.orders
        for o in truth.orders:
            if o.extended or o.signed_at is not None:
                assert o.dispatched_at is not None and o.due_at is not None, (seed, o.order_no)


class _TailRandom(random.Random):
    """A Random whose log-normal draws all sit 4.5 sigma above the median: rare, but possible draws."""

    def lognormvariate(self, mu, sigma):
        return math.exp(mu + 4.5 * sigma)


def test_generate_survives_very_long_handling_times(monkeypatch):
    monkeypatch.setattr(generator, "random", types.SimpleNamespace(Random=_TailRandom))
    truth = generate(SandboxParams(days=2, orders_per_day=40, seed=1, burst_count=0))
    assert truth.orders
