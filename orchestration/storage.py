"""Dagster's local SQLite storage without a disk flush per event.

Dagster's SQLite event log opens a connection, commits and closes it for every event it stores (twice
for asset and check events: the run's file and the cross-run index), and SQLite flushes the file to
disk at each commit and close: 20-25 ms per event on this project's reference machine, where a daily
run stores well over a thousand events (one per dbt model, test, step …) — more time than the
run's own work at 100k orders. With `synchronous=OFF` a crashed or killed process loses nothing (the
data is in the operating system's cache); only a power loss or kernel crash can lose or corrupt the
run history (never the warehouse, which DuckDB writes itself). Deployments that need the run history
to survive that use the PostgreSQL instance (deploy/dagster.postgres.yaml); CV_DAGSTER_SQLITE_SYNC=1
keeps SQLite's default flushing.
"""

import os
import sqlite3
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine

from citizen_voice import settings

_installed = False


def _under(path: str, folder: Path) -> bool:
    try:
        return Path(path).resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def _relax(dbapi_connection, _record) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    files = [row[2] for row in dbapi_connection.execute("pragma database_list").fetchall()]
    if any(f and _under(f, settings.dagster_home()) for f in files):
        dbapi_connection.execute("pragma synchronous = off")


def relax_event_log_durability() -> None:
    """Install the connect hook (once per process) unless CV_DAGSTER_SQLITE_SYNC=1."""
    global _installed
    if _installed or os.environ.get("CV_DAGSTER_SQLITE_SYNC") == "1":
        return
    event.listen(Engine, "connect", _relax)
    _installed = True
