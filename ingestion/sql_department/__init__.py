"""dlt source for a department's own ticket database (any SQLAlchemy URL), read with the
pyarrow backend; incremental on the table's update-time column, merged on its key."""

from __future__ import annotations

import dlt
from dlt.sources.sql_database import sql_table


@dlt.source(name="raw_zhujian", max_table_nesting=0)
def zhujian_source(url: str, schema: str | None = None):
    tickets = sql_table(credentials=url, table="gd_main", schema=schema, backend="pyarrow",
                        incremental=dlt.sources.incremental("gxsj"), defer_table_reflect=True)
    tickets.apply_hints(primary_key="bjbh", write_disposition="merge")
    logs = sql_table(credentials=url, table="gd_lz", schema=schema, backend="pyarrow",
                     incremental=dlt.sources.incremental("gxsj"), defer_table_reflect=True)
    logs.apply_hints(primary_key="lzid", write_disposition="merge")
    return tickets, logs
