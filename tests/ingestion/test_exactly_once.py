"""Exactly once under crashes: `citizen-voice ingest` is killed with SIGKILL at random moments
(extract, normalize or load), then rerun to completion; the warehouse must equal the source:
nothing lost, nothing doubled."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from simulator.servers import HotlineServer

KILLS = 10
CLI = str(Path(sys.executable).parent / "citizen-voice")


def _ingest(source: str, env: dict, kill_after: float | None) -> int | None:
    process = subprocess.Popen([CLI, "ingest", source], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    if kill_after is None:
        return process.wait(timeout=300)
    try:
        return process.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return None


@pytest.fixture
def crash_env(pipeline_city, tmp_path):
    folder, _ = pipeline_city
    env = {**os.environ, "CV_SANDBOX": str(folder), "CV_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
           "CV_HOTLINE_TOKEN": "kill-test"}
    return env


def test_hotline_survives_kill_minus_nine(pipeline_city, crash_env):
    folder, _ = pipeline_city
    rng = random.Random(20261126)
    # slow the server down a little so kills land in every phase of a run
    with HotlineServer(folder / "systems" / "hotline.sqlite", token="kill-test", port=0, seed=9,
                       throttle_rate=0.05) as server:
        env = {**crash_env, "CV_HOTLINE_URL": server.url}
        started = time.perf_counter()
        assert _ingest("hotline", env, None) == 0  # one clean run gives the scale of a run
        one_run = time.perf_counter() - started
        Path(env["CV_WAREHOUSE"]).unlink()
        for pipelines in Path(env["CV_WAREHOUSE"]).parent.glob(".dlt_pipelines"):
            subprocess.run(["rm", "-rf", str(pipelines)], check=True)
        killed = 0
        for _ in range(KILLS):
            if _ingest("hotline", env, rng.uniform(0.3, one_run * 1.1)) is None:
                killed += 1
        assert _ingest("hotline", env, None) == 0
    assert killed >= KILLS // 2
    with sqlite3.connect(folder / "systems" / "hotline.sqlite") as con:
        usable = {r[0] for r in con.execute("select order_no from orders where order_no is not null "
                                            "and received_ts is not null")}
        events = {r[0] for r in con.execute("select event_id from events")}
        missing_ids = con.execute("select count(*) from orders where order_no is null").fetchone()[0]
    with duckdb.connect(env["CV_WAREHOUSE"], read_only=True) as con:
        orders = con.execute("select order_no from raw_hotline.orders").fetchall()
        loaded_events = con.execute("select event_id from raw_hotline.events").fetchall()
        quarantined_missing = con.execute("select count(*) from raw_hotline._quarantine "
                                          "where reason like 'missing required field order_no%'").fetchone()[0]
    assert len(orders) == len(usable) and {r[0] for r in orders} == usable
    assert len(loaded_events) == len(events) and {r[0] for r in loaded_events} == events
    assert quarantined_missing == missing_ids
