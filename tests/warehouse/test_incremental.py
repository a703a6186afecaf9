"""Daily incremental runs of the warehouse equal one full refresh: the hotline's clock advances day
by day; each increment is ingested and built the way the daily run does it (seeds and staging, the
quarantine step, then the intermediate models and marts, incremental by order), then a copy of the
warehouse is rebuilt with --full-refresh and every intermediate model and the facts are compared
row for row. Between the steps, quarantine verdicts are added and removed by hand and a reference
seed's content changes, as the daily run may meet them."""

import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from citizen_voice import settings
from citizen_voice.quality.pipeline import BEFORE_QUARANTINE, run_dbt
from citizen_voice.quality.quarantine import run_quarantine
from ingestion.pipeline import run
from simulator.servers import SandboxServers

FACTS = ("marts.fct_work_orders", "marts.fct_work_order_events", "marts.fct_work_order_texts")
INTERMEDIATE = ("intermediate.int_department_tickets", "intermediate.int_work_order_events",
                "intermediate.int_work_order_lifecycle", "intermediate.int_work_orders_unified",
                "intermediate.int_work_order_sla")
COMPARED = INTERMEDIATE + FACTS
QUARANTINE_COLUMNS = ("source, table_name, record_key, record_id, order_no, expectation, severity, dimension, "
                      "action, column_name, detected_by")


def build_staging(warehouse: Path, work: Path) -> None:
    run_dbt("build", "--select", BEFORE_QUARANTINE, warehouse=warehouse, work=work)


def build_models(warehouse: Path, work: Path) -> None:
    run_dbt("build", "--exclude", BEFORE_QUARANTINE, warehouse=warehouse, work=work)


def differences_from_a_full_refresh(warehouse: Path, work: Path) -> dict[str, tuple[int, int, int]]:
    """Rebuild a copy with --full-refresh (same seeds and quarantine: they are not reloaded) and
    count, per compared table, (rows, rows only incremental, rows only full)."""
    rebuilt = work / "rebuilt.duckdb"
    shutil.copyfile(warehouse, rebuilt)
    run_dbt("run", "--full-refresh", "--exclude", "resource_type:seed", warehouse=rebuilt, work=work)
    counts = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute(f"attach '{rebuilt}' as rebuilt (read_only)")
        for table in COMPARED:
            full = f"rebuilt.{table}"
            counts[table] = tuple(con.execute(
                f"select (select count(*) from {table}), "
                f"(select count(*) from (select * from {table} except all select * from {full})), "
                f"(select count(*) from (select * from {full} except all select * from {table}))").fetchone())
        con.execute("detach rebuilt")
    rebuilt.unlink()
    return counts


def assert_equal_to_a_full_refresh(warehouse: Path, work: Path) -> None:
    for table, (rows, only_incremental, only_full) in differences_from_a_full_refresh(warehouse, work).items():
        assert rows > 0, table
        assert (only_incremental, only_full) == (0, 0), table


def change_verdicts_by_hand(warehouse: Path) -> dict:
    """Between the quarantine step and the models: lift every verdict on hotline orders, exclude one
    event of a valid order, withhold the district of a valid order no department knows (it becomes
    unusable), exclude the hotline record of another valid order (it leaves the unified orders)."""
    with duckdb.connect(str(warehouse)) as con:
        lifted = [r[0] for r in con.execute(
            "select distinct staged.order_no from quality.quarantine as q "
            "join staging.stg_hotline__orders as staged on staged.source_record = q.record_key "
            "where q.source = 'hotline' and q.table_name = 'orders' and q.action in ('exclude', 'withhold')").fetchall()]
        con.execute("delete from quality.quarantine where source = 'hotline' and table_name = 'orders' "
                    "and action in ('exclude', 'withhold')")
        valid = ("select orders.order_no, staged.source_record from marts.fct_work_orders as orders "
                 "join staging.stg_hotline__orders as staged on staged.order_no = orders.order_no "
                 "where orders.intake_source = 'hotline' and orders.order_no not in "
                 "(select order_no from intermediate.int_department_tickets) ")
        (withheld, withheld_record), (excluded_order, excluded_record) = con.execute(
            valid + "order by orders.order_no limit 2").fetchall()
        event, event_record = con.execute(
            "select events.event_id, staged.source_record from marts.fct_work_order_events as events "
            "join staging.stg_hotline__events as staged on staged.event_id = events.event_id "
            "where events.order_no not in (?, ?) order by events.event_id limit 1",
            [withheld, excluded_order]).fetchone()
        verdicts = [("events", event_record, "exclude", None), ("orders", withheld_record, "withhold", "district_code"),
                    ("orders", excluded_record, "exclude", None)]
        for table, record, action, column in verdicts:
            con.execute("insert into quality.quarantine (source, table_name, record_key, expectation, severity, "
                        "action, column_name, detected_by) values ('hotline', ?, ?, 'by_hand', 'critical', ?, ?, "
                        "'test')", [table, record, action, column])
    return {"lifted": lifted, "event": event, "withheld": withheld, "excluded": excluded_order}


def touched_orders(warehouse: Path) -> tuple[set[str], int]:
    """(the orders the last build touched, how many unified orders there are)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        touched = {r[0] for r in con.execute("select order_no from intermediate.int_touched_orders").fetchall()}
        return touched, con.execute("select count(*) from intermediate.int_work_orders_unified").fetchone()[0]


def test_daily_increments_equal_a_full_refresh(pipeline_city, tmp_path, monkeypatch):
    shared, manifest = pipeline_city
    folder = tmp_path / "sandbox"
    shutil.copytree(shared, folder)
    monkeypatch.setenv("CV_SANDBOX", str(folder))
    warehouse = tmp_path / "warehouse.duckdb"
    horizon = datetime.fromisoformat(manifest["horizon"])
    sizes = []
    with SandboxServers(folder, hotline_port=0, open311_port=0, hotline_token="incremental") as servers:
        monkeypatch.setenv("CV_HOTLINE_URL", servers.hotline_url)
        monkeypatch.setenv("CV_HOTLINE_TOKEN", "incremental")
        monkeypatch.setenv("CV_OPEN311_URL", servers.open311_url)
        for source in ("zhujian", "chengguan", "gongdian", "survey"):
            run(source, warehouse)
        for days_before in (12, 8, 4, 2, 0):
            servers.set_clock(horizon - timedelta(days=days_before) if days_before else None)
            run("hotline", warehouse)
            run("app311", warehouse)
            build_staging(warehouse, tmp_path)
            run_quarantine(warehouse)
            if days_before == 8:
                changed = change_verdicts_by_hand(warehouse)
            if days_before == 0:  # as if the seed step had reloaded new time limits
                with duckdb.connect(str(warehouse)) as con:
                    con.execute("update reference.ref_time_limits set time_limit_working_days = "
                                "time_limit_working_days + 2")
            build_models(warehouse, tmp_path)
            touched, unified = touched_orders(warehouse)
            with duckdb.connect(str(warehouse), read_only=True) as con:
                sizes.append(con.execute("select count(*) from marts.fct_work_orders").fetchone()[0])
            if days_before == 8:
                assert changed["lifted"] and set(changed["lifted"]) <= touched
                assert 0 < len(touched) < unified  # really incremental
                with duckdb.connect(str(warehouse), read_only=True) as con:
                    for table in ("intermediate.int_work_order_events", "marts.fct_work_order_events"):
                        assert con.execute(f"select count(*) from {table} where event_id = ?",
                                           [changed["event"]]).fetchone()[0] == 0, table
                    assert con.execute("select rejection_reason from intermediate.int_work_orders_unified "
                                       "where order_no = ?", [changed["withheld"]]).fetchone()[0]
                    for table in ("intermediate.int_work_orders_unified", "marts.fct_work_order_events"):
                        assert con.execute(f"select count(*) from {table} where order_no = ?",
                                           [changed["excluded"]]).fetchone()[0] == 0, table
                    assert con.execute("select count(*) from marts.fct_work_orders where order_no in (?, ?)",
                                       [changed["withheld"], changed["excluded"]]).fetchone()[0] == 0
                assert_equal_to_a_full_refresh(warehouse, tmp_path)
            if days_before == 4:  # the quarantine step lifted the hand-made verdicts again
                assert {changed["withheld"], changed["excluded"]} <= touched and 0 < len(touched) < unified
                assert_equal_to_a_full_refresh(warehouse, tmp_path)
            if days_before == 0:  # a changed seed touches every order
                assert len(touched) >= unified
    assert sizes[0] < sizes[1] < sizes[-1]  # the increments really added orders
    assert_equal_to_a_full_refresh(warehouse, tmp_path)
    build_models(warehouse, tmp_path)  # nothing new: no order is touched, nothing changes
    assert touched_orders(warehouse)[0] == set()
    assert_equal_to_a_full_refresh(warehouse, tmp_path)


@pytest.mark.parametrize("table", COMPARED)
def test_models_are_incremental_by_order(table):
    [model] = (settings.dbt_project_dir() / "models").rglob(f"{table.split('.')[1]}.sql")
    text = model.read_text(encoding="utf-8")
    assert "materialized='incremental'" in text and "incremental_strategy='replace_touched_orders'" in text


def test_the_reference_fingerprint_covers_every_seed():
    project = settings.dbt_project_dir()
    macro = (project / "macros" / "incremental_by_order.sql").read_text(encoding="utf-8")
    listed = re.search(r"macro reference_seeds\(\).*?\[(.*?)\]", macro, re.S).group(1)
    assert sorted(re.findall(r"'(\w+)'", listed)) == sorted(p.stem for p in (project / "seeds").rglob("*.csv"))
