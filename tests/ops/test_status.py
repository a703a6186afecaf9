"""`citizen-voice status`: source freshness from the load log, exit codes scripts can trust."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import duckdb
from typer.testing import CliRunner

from citizen_voice.cli import app
from citizen_voice.ops.status import SourceStatus, source_status


def _ingest_survey(pipeline_city, work):
    from ingestion import pipeline

    city, _ = pipeline_city
    shutil.copytree(city / "exports", work / "exports")
    return pipeline.run("survey", work / "warehouse.duckdb")


def test_source_status_reads_the_load_log(pipeline_city, platform_env, monkeypatch):
    monkeypatch.setenv("CV_SURVEY_EXPORTS", str(platform_env / "exports" / "survey"))
    record = _ingest_survey(pipeline_city, platform_env)
    now = datetime.now(UTC)
    with duckdb.connect(str(platform_env / "warehouse.duckdb"), read_only=True) as con:
        statuses = {s.source: s for s in source_status(["survey", "hotline"], con, now)}
    survey = statuses["survey"]
    assert (survey.received, survey.loaded, survey.quarantined) == (record["received"], record["loaded"],
                                                                    record["quarantined"])
    assert survey.reconciles and survey.loads_last_day == 1
    assert not survey.is_stale(now, timedelta(hours=26))
    assert survey.is_stale(now + timedelta(hours=27), timedelta(hours=26))
    assert statuses["hotline"].last_load_at is None and statuses["hotline"].is_stale(now, timedelta(hours=26))


def test_status_exit_codes(pipeline_city, platform_env, monkeypatch):
    runner = CliRunner()
    missing = runner.invoke(app, ["status"])
    assert missing.exit_code == 1, missing.output
    assert "no warehouse" in missing.output and "STALE" in missing.output

    monkeypatch.setenv("CV_SURVEY_EXPORTS", str(platform_env / "exports" / "survey"))
    _ingest_survey(pipeline_city, platform_env)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(60)"),
        str(platform_env / "warehouse.duckdb")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        locked = runner.invoke(app, ["status"])
    finally:
        holder.kill()
        holder.wait()
    assert locked.exit_code == 3, locked.output
    assert "cannot read" in locked.output

    time.sleep(0.2)
    fresh = runner.invoke(app, ["status"])
    assert "survey     fresh" in fresh.output
    assert fresh.exit_code == 1  # the other five sources were never loaded


def test_a_source_never_loaded_is_stale():
    assert SourceStatus(source="x", last_load_at=None).is_stale(datetime.now(UTC), timedelta(days=365))
