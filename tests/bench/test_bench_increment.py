"""The benchmark's daily-increment scenario at a tiny scale: the history is built without the city's last
day, then one daily_update run loads that day on top of it. Never asserts on timings."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb

SCALE = 600
SEED = 12345


def _orders_received_on(warehouse: Path, day: str) -> int:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("select count(*) from marts.fct_work_orders where received_date = ?", [day]).fetchone()[0]


def test_daily_increment_loads_the_last_day_on_top_of_the_history(tmp_path, run_bench):
    results, data_dir, results_dir = run_bench("--scale", str(SCALE), "--scenario", "daily-increment")
    assert results["scenario"] == "daily-increment" and results["failures"] == []
    assert (results_dir / f"latest-{SCALE}-daily-increment.md").read_text(encoding="utf-8").startswith("# Benchmark")
    records = {r["name"]: r for r in results["stages"]}
    whole = records["daily-increment"]
    details, change, history = whole["details"], whole["details"]["change"], whole["details"]["history"]

    # the increment brought the last day's new orders and late updates of older ones
    assert whole["seconds"] > 0 and whole["peak_rss_mb"] > 0
    assert whole["rows"] == change["new_orders"] + change["updated_orders"] > 0
    assert change["new_orders"] > 0 and change["updated_orders"] > 0 and change["new_events"] > 0
    assert change["orders_after"] > change["orders_before"] == history["facts"]["orders"]
    assert details["loads"]["hotline"]["received"] > 0

    # the history holds nothing received on the last day; the warehouse after the increment does
    area = data_dir / f"{SEED}-{SCALE}" / "increment"
    last_day = history["last_day"]
    assert _orders_received_on(area / "history" / "warehouse.duckdb", last_day) == 0
    assert _orders_received_on(area / "round" / "warehouse.duckdb", last_day) == change["received_on_day"] > 0

    # the last day's files were held back from the history's sandbox only; the city keeps everything
    city = data_dir / f"{SEED}-{SCALE}" / "city"
    assert history["held_back_files"]
    for relative in history["held_back_files"]:
        assert last_day.replace("-", "") in relative
        assert (city / relative).exists() and (area / "round" / "sandbox" / relative).exists()
        assert not (area / "history" / "sandbox" / relative).exists()
    assert not list(city.rglob("_rejected"))
    held_rows = sum(history["held_back_zhujian_rows"].values())
    with sqlite3.connect(city / "systems" / "zhujian.sqlite") as full, \
            sqlite3.connect(area / "history" / "sandbox" / "systems" / "zhujian.sqlite") as cut:
        counted = [sum(con.execute(f"select count(*) from {t}").fetchone()[0] for t in ("gd_main", "gd_lz"))
                   for con in (full, cut)]
    assert held_rows > 0 and counted[0] - counted[1] == held_rows

    # one record per top step of the run, the rest summed; the whole run went through the loads and dbt
    steps = details["steps"]
    assert {"ingest_hotline", "warehouse_staging", "warehouse"} <= set(steps)
    step_records = [name for name in records if name.startswith("daily-increment · ")]
    named = [name.split(" · ", 1)[1] for name in step_records if not name.startswith("daily-increment · other ")]
    assert named and set(named) <= set(steps)
    assert len(named) == min(8, len(steps))
    # the memory of each step, sampled once a second over the run's process and those under it (dbt's CLI):
    # every step long enough to hold a sample has its peak, the largest first; the process is in the sum
    for record in (details, history):
        peaks = record["step_peak_rss_mb"]
        assert peaks and set(peaks) <= set(steps)
        assert list(peaks.values()) == sorted(peaks.values(), reverse=True)
    assert {step for step, seconds in steps.items() if seconds >= 3} <= set(details["step_peak_rss_mb"])
    assert max(details["step_peak_rss_mb"].values()) >= 0.5 * whole["peak_rss_mb"] > 0
    assert "peak RSS of the increment by step" in whole["notes"]
    assert not (tmp_path / "unused.duckdb").exists()
