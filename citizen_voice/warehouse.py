"""Connections to the DuckDB warehouse. One writer at a time: callers that write open the file
for writing only for the duration of their step."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import duckdb

from citizen_voice import settings


def has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether the connection's database has the table or view schema.table."""
    return con.execute("select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
                       [schema, table]).fetchall()[0][0] > 0


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection):
    """What the block does is committed at its end, or rolled back whole if it raises."""
    con.execute("begin")
    try:
        yield con
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


def apply_settings(con: duckdb.DuckDBPyConnection) -> None:
    """The platform's DuckDB settings (settings.duckdb_config) on a connection it opened itself.
    SET, not connect(config=...): DuckDB refuses a second connection to a file opened with other options."""
    for name, value in settings.duckdb_config().items():
        con.execute(f"set global {name} = '{value}'")


def scratch_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory database under the platform's settings, for work beside the warehouse (the privacy
    gate's scans, the Open311 API's table). Without them it could take 80 % of the RAM, and what it
    spilled would go to .tmp in whatever the working directory is: it goes beside the warehouse."""
    con = duckdb.connect()
    try:
        apply_settings(con)
        spill = str(settings.warehouse_path().parent / "scratch.tmp").replace("'", "''")
        con.execute(f"set temp_directory = '{spill}'")
    except BaseException:
        con.close()
        raise
    return con


@contextmanager
def connect(path: Path | None = None, read_only: bool = False):
    path = Path(path or settings.warehouse_path())
    if read_only and not path.exists():
        raise FileNotFoundError(f"warehouse {path} does not exist yet: run the pipeline first (make demo)")
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        apply_settings(con)
        yield con
    finally:
        con.close()
