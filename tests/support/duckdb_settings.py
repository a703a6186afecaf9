"""How DuckDB shows a setting once set (it rounds a memory limit), to compare with what a connection has."""

import duckdb


def memory_limit_as_shown(limit: str) -> str:
    with duckdb.connect() as con:
        con.execute(f"set memory_limit = '{limit}'")
        return con.execute("select current_setting('memory_limit')").fetchone()[0]
