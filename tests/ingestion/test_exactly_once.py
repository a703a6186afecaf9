"""Exactly once under crashes: `citizen-voice ingest` is killed with SIGKILL at random moments
(extract, normalize or load), then rerun to completion; the warehouse must equal the source:
nothing lost, nothing doubled."""

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import yaml

from ingestion.registry import load_registry
from simulator.servers import HotlineServer

KILLS = 10
CLI = str(Path(sys.executable).parent / "citizen-voice")


def _ingest(source: str, env: dict, kill_after: float | None) -> int | None:
    log = Path(env["CV_WAREHOUSE"]).with_suffix(".log")
    with log.open("ab") as output:
        process = subprocess.Popen([CLI, "ingest", source], env=env, stdout=output, stderr=output)
    if kill_after is None:
        code = process.wait(timeout=300)
        assert code == 0, log.read_text(errors="replace")[-3000:]
        return code
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


def _cli_start_seconds(env: dict) -> float:
    started = time.perf_counter()
    subprocess.run([CLI, "ingest", "--help"], env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def test_hotline_survives_kill_minus_nine(pipeline_city, crash_env, tmp_path):
    """Ten daily increments, each killed at a random moment of its run, then one clean run."""
    folder, manifest = pipeline_city
    entry = load_registry().get("hotline").model_dump(mode="json")
    for endpoint in entry["system"]["endpoints"]:
        endpoint["page_size"] = 100  # more requests per run, so kills land inside extract/normalize/load
    registry = tmp_path / "sources.yaml"
    registry.write_text(yaml.safe_dump({"sources": [entry]}, allow_unicode=True), encoding="utf-8")
    rng = random.Random(20261126)
    horizon = datetime.fromisoformat(manifest["horizon"])
    with HotlineServer(folder / "systems" / "hotline.sqlite", token="kill-test", port=0, seed=9,
                       rate_limit_per_second=6) as server:
        env = {**crash_env, "CV_HOTLINE_URL": server.url, "CV_SOURCE_REGISTRY": str(registry)}
        start_up = _cli_start_seconds(env)
        killed = 0
        for day in range(KILLS):
            server.set_clock(horizon - timedelta(days=3 * (KILLS - day)))
            killed += _ingest("hotline", env, start_up + rng.uniform(0.0, 3.0)) is None
        server.set_clock(None)
        server.set_faults(rate_limit_per_second=None)
        _ingest("hotline", env, None)
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


def test_file_drops_survive_kill_minus_nine(pipeline_city, crash_env, tmp_path):
    """The processed-file ledger commits with the load: killed runs neither skip nor double a file."""
    folder, _ = pipeline_city
    drops = tmp_path / "chengguan"
    shutil.copytree(folder / "drops" / "chengguan", drops)
    env = {**crash_env, "CV_CHENGGUAN_DROPS": str(drops)}
    rng = random.Random(7)
    started = time.perf_counter()
    probe = tmp_path / "probe"
    shutil.copytree(drops, probe)
    assert _ingest("chengguan", {**env, "CV_CHENGGUAN_DROPS": str(probe),
                                 "CV_WAREHOUSE": str(tmp_path / "probe.duckdb")}, None) == 0
    one_run = time.perf_counter() - started
    killed = sum(_ingest("chengguan", env, rng.uniform(0.2, one_run)) is None for _ in range(5))
    assert _ingest("chengguan", env, None) == 0
    assert killed >= 2
    with duckdb.connect(env["CV_WAREHOUSE"], read_only=True) as con:
        loaded = con.execute('select "_source_file", "_source_line" from raw_chengguan.tickets').fetchall()
        quarantined = con.execute("select count(*) from raw_chengguan._quarantine").fetchone()[0]
    with duckdb.connect(str(tmp_path / "probe.duckdb"), read_only=True) as con:
        expected = con.execute('select "_source_file", "_source_line" from raw_chengguan.tickets').fetchall()
        expected_quarantined = con.execute("select count(*) from raw_chengguan._quarantine").fetchone()[0]
    assert len(loaded) == len(set(loaded))
    assert set(loaded) == set(expected)
    assert quarantined == expected_quarantined
