"""Dagster's SQLite files under DAGSTER_HOME are written without a flush per commit; other SQLite
databases the process opens keep SQLite's default."""

import os
import subprocess
import sys

import pytest
import sqlalchemy

from citizen_voice import settings
from orchestration import storage


def _synchronous(path) -> int:
    engine = sqlalchemy.create_engine(f"sqlite:///{path}", poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as conn:
        value = conn.exec_driver_sql("pragma synchronous").scalar()
    engine.dispose()
    return value


def test_only_the_dagster_home_files_skip_the_flush(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    (home / "storage").mkdir(parents=True)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("CV_DAGSTER_SQLITE_SYNC", raising=False)
    default = _synchronous(tmp_path / "before.db")
    storage.relax_event_log_durability()
    assert _synchronous(home / "storage" / "run.db") == 0  # OFF
    assert _synchronous(tmp_path / "elsewhere.db") == default != 0


_PROBE = """
import sqlalchemy, os
from orchestration.definitions import defs
defs()
engine = sqlalchemy.create_engine("sqlite:///" + os.path.join(os.environ["DAGSTER_HOME"], "probe.db"))
with engine.connect() as conn:
    print(conn.exec_driver_sql("pragma synchronous").scalar())
"""


@pytest.mark.parametrize(("opt_out", "expected"), [(None, "0"), ("1", "2")])
def test_loading_the_definitions_installs_it_unless_opted_out(tmp_path, opt_out, expected):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    env.pop("CV_DAGSTER_SQLITE_SYNC", None)
    if opt_out:
        env["CV_DAGSTER_SQLITE_SYNC"] = opt_out
    result = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True,
                            cwd=settings.project_root(), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == expected
