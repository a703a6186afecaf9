"""Daily incremental runs of the warehouse equal one full refresh: the hotline's clock advances
day by day, each increment is ingested and built incrementally, then a copy of the warehouse is
rebuilt with --full-refresh and the facts are compared row for row."""

import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from citizen_voice import settings
from ingestion.pipeline import run
from simulator.servers import SandboxServers

FACTS = ("marts.fct_work_orders", "marts.fct_work_order_events")


def dbt_build(warehouse: Path, work: Path, *extra: str) -> None:
    project = settings.dbt_project_dir()
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "build", "--project-dir", str(project), "--profiles-dir",
         str(project), "--target-path", str(work / "dbt_target"), "--log-path", str(work / "dbt_logs"), *extra],
        env={**os.environ, "CV_WAREHOUSE": str(warehouse)}, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]


def test_daily_increments_equal_a_full_refresh(pipeline_city, tmp_path, monkeypatch):
    shared, manifest = pipeline_city
    folder = tmp_path / "sandbox"
    shutil.copytree(shared, folder)
    monkeypatch.setenv("CV_SANDBOX", str(folder))
    warehouse = tmp_path / "warehouse.duckdb"
    horizon = datetime.fromisoformat(manifest["horizon"])
    with SandboxServers(folder, hotline_port=0, open311_port=0, hotline_token="incremental") as servers:
        monkeypatch.setenv("CV_HOTLINE_URL", servers.hotline_url)
        monkeypatch.setenv("CV_HOTLINE_TOKEN", "incremental")
        monkeypatch.setenv("CV_OPEN311_URL", servers.open311_url)
        for source in ("zhujian", "chengguan", "gongdian", "survey"):
            run(source, warehouse)
        sizes = []
        for days_before in (12, 8, 4, 2, 0):
            servers.set_clock(horizon - timedelta(days=days_before) if days_before else None)
            run("hotline", warehouse)
            run("app311", warehouse)
            dbt_build(warehouse, tmp_path)
            with duckdb.connect(str(warehouse), read_only=True) as con:
                sizes.append(con.execute("select count(*) from marts.fct_work_orders").fetchone()[0])
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]  # the increments really added orders
    rebuilt = tmp_path / "rebuilt.duckdb"
    shutil.copyfile(warehouse, rebuilt)
    dbt_build(rebuilt, tmp_path, "--full-refresh")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute(f"attach '{rebuilt}' as rebuilt (read_only)")
        for table in FACTS:
            schema, name = table.split(".")
            full = f"rebuilt.{schema}.{name}"
            only_incremental = con.execute(f"select count(*) from (select * from {table} except all "
                                           f"select * from {full})").fetchone()[0]
            only_full = con.execute(f"select count(*) from (select * from {full} except all "
                                    f"select * from {table})").fetchone()[0]
            total = con.execute(f"select count(*) from {table}").fetchone()[0]
            assert total > 0
            assert (only_incremental, only_full) == (0, 0), table


@pytest.mark.parametrize("table", FACTS)
def test_fact_tables_are_incremental(table):
    model = settings.dbt_project_dir() / "models" / "marts" / "core" / f"{table.split('.')[1]}.sql"
    assert "materialized='incremental'" in model.read_text(encoding="utf-8")
