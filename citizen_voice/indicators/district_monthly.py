"""受理量 and 按时办结率 per district and month — the walking skeleton's first indicator.

Definitions (version 1):
Rows per month: one per district (grain 'district') and one for the whole city (grain 'city').
- 受理量 (received): valid work orders received in the month, by the district reported on.
- 按时办结率 (on-time close rate) = orders closed no later than their due time ÷ orders due
  to close in the month (dispatched orders whose due time falls in the month and has passed
  when the data was observed). Direct answers and undispatched orders have no due time.
"""

from __future__ import annotations

import duckdb

TABLE = "indicators.district_monthly"
DEFINITION_VERSION = 1

SQL = """
with orders as (
    select * from marts.fct_work_orders
),
observed as (
    select max(coalesce(closed_at, received_at)) as observed_at from orders
),
received as (
    select strftime(received_at, '%Y-%m') as period, district_code, count(*) as received
    from orders group by grouping sets ((1, district_code), (1))
),
due as (
    select strftime(due_at, '%Y-%m') as period, district_code,
           count(*) as due_to_close,
           count(*) filter (where is_closed_on_time) as closed_on_time
    from orders, observed
    where due_at is not null and due_at <= observed.observed_at
    group by grouping sets ((1, district_code), (1))
)
select
    coalesce(received.period, due.period) as period,
    case when districts.district_code is null then 'city' else 'district' end as grain,
    coalesce(received.district_code, due.district_code) as district_code,
    coalesce(districts.district_name, '全市') as district_name,
    coalesce(received.received, 0) as received,
    coalesce(due.due_to_close, 0) as due_to_close,
    coalesce(due.closed_on_time, 0) as closed_on_time,
    case when due.due_to_close > 0 then round(due.closed_on_time / due.due_to_close, 4) end as on_time_close_rate,
    {version} as definition_version
from received
full outer join due on due.period = received.period
    and due.district_code is not distinct from received.district_code
left join marts.dim_district as districts
    on districts.district_code = coalesce(received.district_code, due.district_code)
order by period, grain, district_code
"""


def compute(con: duckdb.DuckDBPyConnection) -> int:
    """(Re)build the table from the marts; returns its row count."""
    con.execute("create schema if not exists indicators")
    con.execute(f"create or replace table {TABLE} as {SQL.format(version=DEFINITION_VERSION)}")
    return con.execute(f"select count(*) from {TABLE}").fetchone()[0]


def read(con: duckdb.DuckDBPyConnection, period: str | None = None) -> list[dict]:
    where = "where period = ?" if period else ""
    cursor = con.execute(f"select * from {TABLE} {where} order by period, district_code", [period] if period else [])
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
