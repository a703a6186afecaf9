"""indicators.district_monthly: the walking skeleton's table (受理量 and 按时办结率 per district and
month, and for the whole city), kept for the bulletin as a view over indicators.indicator_values.

Columns as before: period, grain ('city' | 'district'), district_code, district_name, received,
due_to_close, closed_on_time, on_time_close_rate (4 decimals), definition_version (of 按时办结率).
"""

from __future__ import annotations

import duckdb

from citizen_voice.indicators.engine import VALUES

TABLE = "indicators.district_monthly"

VIEW_SQL = f"""
create or replace view {TABLE} as
select period,
       grain,
       case when grain = 'district' then unit_code end as district_code,
       unit_name as district_name,
       cast(coalesce(max(value) filter (where indicator_key = 'received'), 0) as bigint) as received,
       cast(coalesce(max(denominator) filter (where indicator_key = 'on_time_close_rate'), 0) as bigint)
           as due_to_close,
       cast(coalesce(max(numerator) filter (where indicator_key = 'on_time_close_rate'), 0) as bigint)
           as closed_on_time,
       round(max(value) filter (where indicator_key = 'on_time_close_rate'), 4) as on_time_close_rate,
       max(definition_version) filter (where indicator_key = 'on_time_close_rate') as definition_version
from {VALUES}
where period_type = 'month' and grain in ('city', 'district')
group by period, grain, unit_code, unit_name
"""


def create_view(con: duckdb.DuckDBPyConnection) -> None:
    # the walking skeleton made this a table; it is a view now
    if con.execute("select count(*) from information_schema.tables where table_schema = 'indicators' "
                   "and table_name = 'district_monthly' and table_type = 'BASE TABLE'").fetchone()[0]:
        con.execute(f"drop table {TABLE}")
    con.execute(VIEW_SQL)


def read(con: duckdb.DuckDBPyConnection, period: str | None = None) -> list[dict]:
    where = "where period = ?" if period else ""
    cursor = con.execute(f"select * from {TABLE} {where} order by period, district_code nulls first",
                         [period] if period else [])
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
