"""The central 12345 API through the registry pipeline, against the real sandbox server and a
real DuckDB file: counts reconcile, reruns add nothing, fault storms lose nothing."""

import json
import sqlite3
from datetime import datetime, timedelta

import duckdb
import pytest

from ingestion.pipeline import run
from simulator.servers import HotlineServer

TOKEN = "test-token"


@pytest.fixture
def hotline(pipeline_city, monkeypatch):
    folder, _ = pipeline_city
    with HotlineServer(folder / "systems" / "hotline.sqlite", token=TOKEN, port=0, seed=3) as server:
        monkeypatch.setenv("CV_HOTLINE_URL", server.url)
        monkeypatch.setenv("CV_HOTLINE_TOKEN", TOKEN)
        yield server


def _store(folder):
    with sqlite3.connect(folder / "systems" / "hotline.sqlite") as con:
        rows = con.execute("select count(*) from orders").fetchone()[0]
        usable = {r[0] for r in con.execute("select order_no from orders where order_no is not null "
                                            "and received_ts is not null")}
        events = con.execute("select count(*) from events").fetchone()[0]
    return rows, usable, events


def _warehouse(warehouse):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        orders = {r[0] for r in con.execute("select order_no from raw_hotline.orders").fetchall()}
        order_rows = con.execute("select count(*) from raw_hotline.orders").fetchone()[0]
        reasons = con.execute("select reason from raw_hotline._quarantine").fetchall()
        events = con.execute("select count(*), count(distinct event_id) from raw_hotline.events").fetchone()
    return orders, order_rows, sorted(r[0] for r in reasons), events


def test_load_reconciles_with_the_store_and_rerun_adds_nothing(hotline, pipeline_city, tmp_path):
    folder, _ = pipeline_city
    rows, usable, events = _store(folder)
    warehouse = tmp_path / "w.duckdb"
    record = run("hotline", warehouse)
    assert record["reconciles"]
    counts = json.loads(record["counts"])
    assert counts["received"]["orders"] == rows  # every record the API served was counted
    orders, order_rows, reasons, event_counts = _warehouse(warehouse)
    assert orders == usable and order_rows == len(usable)
    assert event_counts == (events, events)
    faults = json.loads((folder / "truth" / "faults.json").read_text(encoding="utf-8"))
    hotline_faults = [f for f in faults if f["system"] == "hotline"]
    assert sum(r.startswith("missing required field order_no") for r in reasons) == \
        sum(f["fault_type"] == "missing_id" for f in hotline_faults)
    assert sum("is not iso_timestamp" in r for r in reasons) == \
        sum(f["fault_type"] == "invalid_date" for f in hotline_faults)
    second = run("hotline", warehouse)
    assert second["reconciles"]
    assert _warehouse(warehouse) == (orders, order_rows, reasons, event_counts)


def test_fault_storm_still_gives_complete_data(hotline, pipeline_city, tmp_path):
    folder, _ = pipeline_city
    _, usable, events = _store(folder)
    hotline.set_faults(error_rate=0.25, throttle_rate=0.15, drop_rate=0.05)
    warehouse = tmp_path / "w.duckdb"
    run("hotline", warehouse)
    orders, _, _, event_counts = _warehouse(warehouse)
    assert orders == usable
    assert event_counts == (events, events)
    stats = hotline.stats
    assert stats["injected_errors"] + stats["throttled"] + stats["dropped"] > 0


def test_late_updates_are_caught_by_the_next_increment(hotline, pipeline_city, tmp_path):
    folder, manifest = pipeline_city
    warehouse = tmp_path / "w.duckdb"
    hotline.set_clock(datetime.fromisoformat(manifest["horizon"]) - timedelta(days=10))
    run("hotline", warehouse)
    early, _, _, _ = _warehouse(warehouse)
    hotline.set_clock(None)
    run("hotline", warehouse)
    _, usable, events = _store(folder)
    late, _, _, event_counts = _warehouse(warehouse)
    assert early < late == usable
    assert event_counts == (events, events)
    api_view, final = _statuses(warehouse), _final_statuses(folder)
    changed = [no for no in early if api_view[no] != "accepted"]
    assert changed and all(api_view[no] == final[no] for no in final if no in api_view and no not in
                           _conflicting(folder))


def _statuses(warehouse):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return dict(con.execute("select order_no, status from raw_hotline.orders").fetchall())


def _final_statuses(folder):
    """Each usable order's status in its latest version, as the department system holds it."""
    with sqlite3.connect(folder / "systems" / "hotline.sqlite") as con:
        return dict(con.execute(
            "select o.order_no, v.status from orders o join order_versions v on v.row_id = o.row_id "
            "where v.recorded_ts = (select max(recorded_ts) from order_versions w where w.row_id = o.row_id) "
            "and o.order_no is not null and o.received_ts is not null").fetchall())


def _conflicting(folder):
    faults = json.loads((folder / "truth" / "faults.json").read_text(encoding="utf-8"))
    return {f["order_no"] for f in faults if f["system"] == "hotline" and f["fault_type"] == "conflicting_duplicate"}


def _load_ids(warehouse, table):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        key = "order_no" if table == "orders" else "event_id"
        return dict(con.execute(f"select {key}, _dlt_load_id from raw_hotline.{table}").fetchall())


def test_records_sent_again_unchanged_are_not_loaded_again(hotline, pipeline_city, tmp_path):
    folder, manifest = pipeline_city
    warehouse = tmp_path / "w.duckdb"
    hotline.set_clock(datetime.fromisoformat(manifest["horizon"]) - timedelta(days=10))
    first = run("hotline", warehouse)
    before = _warehouse(warehouse), _load_ids(warehouse, "orders"), _load_ids(warehouse, "events")

    again = run("hotline", warehouse)  # the same clock: the lookback re-reads its days, nothing changed
    counts = json.loads(again["counts"])
    assert again["reconciles"] and counts["unchanged"]["events"] > 0 and counts["unchanged"]["orders"] > 0
    assert counts["unchanged"]["events"] == counts["received"]["events"]  # events carry no faults
    assert (_warehouse(warehouse), _load_ids(warehouse, "orders"), _load_ids(warehouse, "events")) == before

    hotline.set_clock(None)  # ten more days, and the late updates of the earlier orders
    later = run("hotline", warehouse)
    assert later["reconciles"]
    orders = _load_ids(warehouse, "orders")
    kept = {no for no, load in orders.items() if load == first["load_id"]}
    reloaded = {no for no, load in orders.items() if load == later["load_id"]}
    assert kept and reloaded and kept | reloaded == set(orders)
    _, usable, events = _store(folder)
    assert set(orders) == usable and _warehouse(warehouse)[3] == (events, events)
    loaded, final = _statuses(warehouse), _final_statuses(folder)
    conflicting = _conflicting(folder)
    assert all(loaded[no] == final[no] for no in final if no not in conflicting)


def _events(warehouse):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return sorted(con.execute("select * exclude (_dlt_load_id) from raw_hotline.events").fetchall(),
                      key=str)


def test_records_the_raw_table_no_longer_holds_as_loaded_are_loaded_again(hotline, pipeline_city, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    run("hotline", warehouse)
    before = _warehouse(warehouse), _events(warehouse)
    with duckdb.connect(str(warehouse)) as con:  # among the newest events, inside the next load's lookback
        newest = "select event_id from raw_hotline.events order by recorded_at desc, event_id"
        gone = con.execute(f"delete from raw_hotline.events where event_id in ({newest} limit 50)").fetchone()[0]
        # as if another load had written them since (a reload): the digests kept do not describe these rows
        rewritten = con.execute(f"update raw_hotline.events set note = 'rewritten', _dlt_load_id = '1' "
                                f"where event_id in ({newest} limit 50)").fetchone()[0]
    record = run("hotline", warehouse)
    counts = json.loads(record["counts"])
    assert gone == rewritten == 50
    assert counts["unchanged"]["events"] == counts["received"]["events"] - gone - rewritten
    assert (_warehouse(warehouse), _events(warehouse)) == before


def test_of_a_load_too_big_the_digests_of_the_newest_records_are_kept(hotline, pipeline_city, tmp_path,
                                                                       monkeypatch):
    from ingestion import unchanged

    monkeypatch.setattr(unchanged, "MAX_DIGESTS", 100)  # below a lookback window of this city
    warehouse = tmp_path / "w.duckdb"
    run("hotline", warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        kept = dict(con.execute("select table_name, count(*) from ops.received_digests group by 1").fetchall())
        newest = {r[0] for r in con.execute("select event_id from raw_hotline.events order by recorded_at desc "
                                            "limit 300").fetchall()}
        kept_events = {r[0] for r in con.execute("select record_key from ops.received_digests "
                                                 "where table_name = 'events'").fetchall()}
    assert kept == {"orders": 100, "events": 100} and kept_events <= newest  # read in cursor order
    again = json.loads(run("hotline", warehouse)["counts"])
    assert again["received"]["events"] > 100 and again["unchanged"]["events"] == 100
