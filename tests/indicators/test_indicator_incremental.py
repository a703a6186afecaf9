"""Bringing the monthly indicators up to date (`only_stale`, what the daily run's district_monthly does)
recomputes only the months a change touches, and ends with exactly the values, scores and rankings a
full recompute of every month gives on the same warehouse."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from citizen_voice.indicators import service

COMPARED = ("indicators.indicator_values", "indicators.scores", "indicators.rankings")


def differences(incremental: Path, tmp_path: Path) -> dict[str, tuple[int, int]]:
    """Per compared table: rows only in the incremental result, rows only in a full recompute of a
    copy of the same warehouse (computed_at aside)."""
    full = tmp_path / "full.duckdb"
    shutil.copyfile(incremental, full)
    found = {}
    with duckdb.connect(str(full)) as con:
        service.refresh(con, None, period_type="month")
        con.execute(f"attach '{incremental}' as incremental (read_only)")
        for table in COMPARED:
            columns = ", ".join(f'"{c}"' for (c,) in con.execute(
                f"select column_name from (describe {table}) where column_name <> 'computed_at'").fetchall())
            only_full, only_incremental = (con.execute(
                f"select count(*) from (select {columns} from {a} except all select {columns} from {b})").fetchone()[0]
                for a, b in ((table, f"incremental.{table}"), (f"incremental.{table}", table)))
            found[table] = (only_incremental, only_full)
    return found


@pytest.fixture
def brought_up_to_date(warehouse_copy):
    with duckdb.connect(str(warehouse_copy)) as con:
        first = service.refresh(con, None, period_type="month", only_stale=True)
        again = service.refresh(con, None, period_type="month", only_stale=True)
    assert len(first["computed"]) >= 2 and again["computed"] == []
    return warehouse_copy, first["computed"]


def test_a_late_update_recomputes_its_months_only_and_equals_a_full_recompute(brought_up_to_date, tmp_path):
    path, months = brought_up_to_date
    with duckdb.connect(str(path)) as con:
        # an order received, due and closed in the first month gets a late 回访 rating
        order_no = con.execute(
            "select order_no from marts.fct_work_orders where is_closed and not is_merged and demand_type_code <> 'WX' "
            "and strftime(received_at, '%Y-%m') = ? and strftime(closed_at, '%Y-%m') = ? "
            "and strftime(due_at, '%Y-%m') = ? and strftime(first_closed_at, '%Y-%m') = ? "
            "and satisfaction is distinct from '不满意' order by order_no limit 1", [months[0]] * 4).fetchone()[0]
        con.execute("update marts.fct_work_orders set satisfaction = '不满意' where order_no = ?", [order_no])
        summary = service.refresh(con, None, period_type="month", only_stale=True)
    assert summary["computed"] == [months[0]]
    assert summary["skipped"] == months[1:]
    assert differences(path, tmp_path) == {table: (0, 0) for table in COMPARED}


def test_a_new_day_recomputes_what_it_and_passing_due_times_touch_and_equals_a_full_recompute(
        brought_up_to_date, tmp_path):
    path, months = brought_up_to_date
    with duckdb.connect(str(path)) as con:
        newest = con.execute("select max(received_at) from marts.fct_work_orders").fetchone()[0]
        # a new day: copies of the newest day's orders, two days later (observed_at moves on, due times pass)
        con.execute("""insert into marts.fct_work_orders by name
            select * replace ('N' || order_no as order_no, received_at + interval 2 day as received_at,
                              received_date + 2 as received_date, null as closed_at, null as first_closed_at,
                              false as is_closed, null as satisfaction, null as resolution, null as visited_at)
            from marts.fct_work_orders where received_date = (select max(received_date) from marts.fct_work_orders)""")
        passing = con.execute(
            "select distinct strftime(due_at, '%Y-%m') from marts.fct_work_orders where due_at > ? "
            "and due_at <= ? + interval 2 day", [newest, newest]).fetchall()
        new_month = con.execute("select strftime(? + interval 2 day, '%Y-%m')", [newest]).fetchone()[0]
        summary = service.refresh(con, None, period_type="month", only_stale=True)
    assert new_month in summary["computed"]
    assert {m for (m,) in passing if m in months} <= set(summary["computed"])
    assert set(summary["computed"]) | set(summary["skipped"]) >= set(months)
    assert differences(path, tmp_path) == {table: (0, 0) for table in COMPARED}


def test_a_changed_unit_name_recomputes_every_month(brought_up_to_date):
    path, months = brought_up_to_date
    with duckdb.connect(str(path)) as con:
        con.execute("update marts.dim_district set district_name = district_name || '（新）' "
                    "where district_code = (select min(district_code) from marts.dim_district)")
        summary = service.refresh(con, None, period_type="month", only_stale=True)
    assert summary["computed"] == months
