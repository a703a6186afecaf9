"""The 12345 API source against the real sandbox server and a real DuckDB file."""

import json
import sqlite3
from datetime import datetime, timedelta

import duckdb
import pytest

from ingestion import pipelines
from ingestion.hotline import hotline_source
from simulator.servers import HotlineServer

TOKEN = "test-token"


@pytest.fixture
def hotline(pipeline_city):
    folder, _ = pipeline_city
    with HotlineServer(folder / "systems" / "hotline.sqlite", token=TOKEN, port=0, seed=3) as server:
        yield server


def _store_counts(folder):
    with sqlite3.connect(folder / "systems" / "hotline.sqlite") as con:
        rows = con.execute("select count(*), count(order_no), count(distinct order_no) from orders").fetchone()
        events = con.execute("select count(*) from events").fetchone()[0]
    return rows, events


def _load(server, warehouse):
    pipeline = pipelines.make_pipeline("hotline", warehouse)
    return pipeline.run(hotline_source(server.url, TOKEN))


def _warehouse_counts(warehouse):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return (con.execute("select count(*), count(distinct order_no) from raw_hotline.orders").fetchone(),
                con.execute("select count(*) from raw_hotline.orders_quarantine").fetchone()[0],
                con.execute("select count(*), count(distinct event_id) from raw_hotline.events").fetchone())


def test_load_reconciles_with_the_store_and_rerun_adds_nothing(hotline, pipeline_city, tmp_path):
    folder, manifest = pipeline_city
    (rows, with_id, distinct_ids), events = _store_counts(folder)
    warehouse = tmp_path / "w.duckdb"
    _load(hotline, warehouse)
    first = _warehouse_counts(warehouse)
    assert first[0] == (distinct_ids, distinct_ids)
    assert first[1] == rows - with_id  # every record without an id is quarantined, none dropped
    assert first[2] == (events, events)
    faults = json.loads((folder / "truth" / "faults.json").read_text(encoding="utf-8"))
    assert first[1] == sum(1 for f in faults if f["system"] == "hotline" and f["fault_type"] == "missing_id")
    _load(hotline, warehouse)
    assert _warehouse_counts(warehouse) == first


def test_fault_storm_still_gives_complete_data(hotline, pipeline_city, tmp_path):
    folder, _ = pipeline_city
    (_, _, distinct_ids), events = _store_counts(folder)
    hotline.set_faults(error_rate=0.25, throttle_rate=0.15, drop_rate=0.05)
    warehouse = tmp_path / "w.duckdb"
    _load(hotline, warehouse)
    counts = _warehouse_counts(warehouse)
    assert counts[0] == (distinct_ids, distinct_ids)
    assert counts[2] == (events, events)
    stats = hotline.stats
    assert stats["injected_errors"] + stats["throttled"] + stats["dropped"] > 0


def test_clock_advances_and_the_increment_catches_late_updates(hotline, pipeline_city, tmp_path):
    folder, manifest = pipeline_city
    warehouse = tmp_path / "w.duckdb"
    ten_days_earlier = datetime.fromisoformat(manifest["horizon"]) - timedelta(days=10)
    hotline.set_clock(ten_days_earlier)
    _load(hotline, warehouse)
    early = _warehouse_counts(warehouse)
    hotline.set_clock(None)
    _load(hotline, warehouse)
    (_, _, distinct_ids), events = _store_counts(folder)
    late = _warehouse_counts(warehouse)
    assert early[0][0] < late[0][0] == distinct_ids
    assert late[2] == (events, events)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from raw_hotline.orders where status = 'visited'").fetchone()[0] > 0
