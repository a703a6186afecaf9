"""A Dagster run killed mid-way (SIGKILL of the whole process) and run again completes with reconciled
counts and the same raw tables as a run never interrupted."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from citizen_voice import settings
from simulator.servers import SandboxServers

CLI = str(Path(sys.executable).parent / "citizen-voice")
# Each raw table's identity: its primary key as registered.
KEYS = {
    "raw_hotline.orders": "order_no", "raw_hotline.events": "event_id", "raw_app311.requests": "service_request_id",
    "raw_zhujian.gd_main": "bjbh", "raw_zhujian.gd_lz": "lzid",
    "raw_chengguan.tickets": '"_source_file" || \':\' || "_source_line"',
    "raw_gongdian.tickets": '"_source_file" || \':\' || "_source_line"', "raw_survey.visits": "visit_id",
}


def _run_count(home: Path) -> int:
    runs = home / "history" / "runs.db"
    if not runs.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{runs}?mode=ro", uri=True, timeout=5) as con:
            return con.execute("select count(*) from runs").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet, or busy
        return 0


def _run_ingest(env: dict, log: Path, kill_after: float | None) -> int | None:
    """Run the ingest stage; with kill_after, SIGKILL it that many seconds after its Dagster run started
    (so the kill lands inside the loads, whatever the start-up time)."""
    home = Path(env["DAGSTER_HOME"])
    runs_before = _run_count(home)
    with log.open("ab") as output:
        process = subprocess.Popen([CLI, "run", "--stage", "ingest"], env=env, stdout=output, stderr=output,
                                   start_new_session=True)
    if kill_after is None:
        return process.wait(timeout=600)
    deadline = time.monotonic() + 120
    while _run_count(home) <= runs_before and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        return process.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None


def _tables(warehouse: Path) -> dict[str, set]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        found = {table: {r[0] for r in con.execute(f"select {key} from {table}").fetchall()}
                 for table, key in KEYS.items()}
        for table in KEYS:
            total = con.execute(f"select count(*) from {table}").fetchone()[0]
            assert total == len(found[table]), f"{table}: {total} rows for {len(found[table])} keys"
        found["quarantine"] = {r[0] for r in con.execute(
            "select record_hash from raw_hotline._quarantine union all select record_hash from raw_survey._quarantine "
            "union all select record_hash from raw_chengguan._quarantine").fetchall()}
        unreconciled = con.execute("select count(*) from ops.load_log where not reconciles").fetchone()[0]
    assert unreconciled == 0
    return found


def _run_statuses(home: Path) -> list[str]:
    """Killed runs must not stay 'started' holding the warehouse pool: the rerun marks them failed."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        return [r.dagster_run.status.value for r in instance.get_run_records()]


def test_killed_run_rerun_equals_uninterrupted(pipeline_city, tmp_path):
    city, _ = pipeline_city
    rng = random.Random(11)
    results = {}
    for name, kills in (("reference", 0), ("killed", 2)):
        work = tmp_path / name
        shutil.copytree(city, work / "sandbox")
        env = {**os.environ, "CV_SANDBOX": str(work / "sandbox"), "CV_WAREHOUSE": str(work / "warehouse.duckdb"),
               "DAGSTER_HOME": str(work / "dagster_home"), "CV_OPS_DIR": str(work / "ops")}
        for override in ("CV_ZHUJIAN_URL", "CV_CHENGGUAN_DROPS", "CV_GONGDIAN_DROPS", "CV_SURVEY_EXPORTS"):
            env.pop(override, None)
        with SandboxServers(work / "sandbox", hotline_port=0, open311_port=0,
                            hotline_token=settings.hotline_token()) as servers:
            env.update(CV_HOTLINE_URL=servers.hotline_url, CV_OPEN311_URL=servers.open311_url)
            killed = sum(_run_ingest(env, work / "run.log", rng.uniform(0.5, 3.0)) is None for _ in range(kills))
            assert killed == kills, (work / "run.log").read_text(errors="replace")[-2000:]
            code = _run_ingest(env, work / "run.log", None)
            assert code == 0, (work / "run.log").read_text(errors="replace")[-3000:]
        results[name] = _tables(work / "warehouse.duckdb")
        statuses = _run_statuses(work / "dagster_home")
        # newest first: the rerun succeeded; no killed run is left 'started' holding the warehouse pool
        assert statuses[0] == "SUCCESS" and "STARTED" not in statuses, statuses
        assert statuses.count("FAILURE") >= min(kills, 1), statuses
    for table in results["reference"]:
        assert results["killed"][table] == results["reference"][table], table
