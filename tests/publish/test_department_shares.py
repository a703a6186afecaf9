"""Department shares on a real warehouse: every department gets exactly its own rows, masked, as
Parquet and Excel-readable CSV with a Chinese data dictionary; planted personal data stops the
publication and leaves the previous one in place."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from citizen_voice.publish import files, gate, shares
from citizen_voice.publish.config import load_config


@pytest.fixture(scope="module")
def published(publish_city, tmp_path_factory):
    folder = tmp_path_factory.mktemp("shares_published")
    known = gate.load_known_values(publish_city["sandbox"])
    assert known is not None and known.names  # the sandbox manifest is used by the gate
    with duckdb.connect(str(publish_city["warehouse"]), read_only=True) as con:
        report = shares.publish_shares(con, folder, known=known)
        truth = {
            "departments": con.execute("select department_code, district_code from marts.dim_department").fetchall(),
            "lead": con.execute("select order_no, lead_dept_code from marts.fct_work_orders").fetchall(),
            "assist": con.execute("select distinct dept_code, order_no from marts.fct_work_order_events "
                                  "where role = 'assist'").fetchall(),
            "events": con.execute("select event_id, dept_code from marts.fct_work_order_events").fetchall(),
            "district_rows": con.execute("select district_code, count(*) from indicators.district_monthly "
                                         "where district_code is not null group by 1").fetchall(),
        }
    return report, folder / "shares", truth


def test_every_department_gets_a_folder(published):
    report, folder, truth = published
    codes = {code for code, _ in truth["departments"]}
    assert {p.name for p in folder.iterdir()} == codes
    assert report.departments == len(codes)
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_a_department_receives_exactly_its_own_orders(published):
    _, folder, truth = published
    lead = {}
    for order_no, dept in truth["lead"]:
        lead.setdefault(dept, set()).add(order_no)
    assisted = {}
    for dept, order_no in truth["assist"]:
        assisted.setdefault(dept, set()).add(order_no)
    seen_lead = set()
    for code, _ in truth["departments"]:
        rows = files.read_published(folder / code, "work_orders").to_pylist()
        own = {r["order_no"] for r in rows if r["share_role"] == "主办"}
        helped = {r["order_no"] for r in rows if r["share_role"] == "协办"}
        assert own == lead.get(code, set())
        assert helped == assisted.get(code, set()) - own
        assert all(r["lead_dept_code"] == code for r in rows if r["share_role"] == "主办")
        assert all(r["lead_dept_code"] != code for r in rows if r["share_role"] == "协办")
        seen_lead |= own
    assert seen_lead == {o for o, dept in truth["lead"] if dept is not None}  # nothing dispatched is lost


def test_events_and_indicators_are_the_departments_own(published):
    _, folder, truth = published
    events = dict(truth["events"])
    district_rows = dict(truth["district_rows"])
    for code, district in truth["departments"]:
        rows = files.read_published(folder / code, "work_order_events").to_pylist()
        assert all(events[r["event_id"]] == code for r in rows)
        assert len(rows) == sum(1 for dept in events.values() if dept == code)
        manifest = json.loads((folder / code / "manifest.json").read_text(encoding="utf-8"))
        indicator = folder / code / "district_monthly.parquet"
        if district is None:  # city bureaus and enterprises: no district-level table applies
            assert not indicator.exists() and manifest["not_applicable"] == ["district_monthly"]
        else:
            rows = pq.read_table(indicator).to_pylist()
            assert {r["district_code"] for r in rows} == {district}
            assert len(rows) == district_rows[district]


def test_no_caller_keys_and_phones_only_masked(published):
    _, folder, _ = published
    excluded = load_config().department_shares.tables[0].exclude_columns
    swj = files.read_published(folder / "SWJ", "work_orders")
    assert not set(excluded) & set(swj.column_names)
    phones = [p for p in swj.column("caller_phone_masked").to_pylist() if p]
    assert phones and all("****" in p for p in phones)


def test_csv_is_utf8_with_bom_and_equals_the_parquet(published):
    _, folder, _ = published
    parts = files.published_files(folder / "QZF01", "work_orders", ".csv")
    assert len(parts) > 1 and all(p.name == "part.csv" and p.parent.name.startswith("month=") for p in parts)
    rows = []
    for part in parts:
        assert part.read_bytes().startswith(b"\xef\xbb\xbf")
        with open(part, encoding="utf-8-sig", newline="") as handle:
            rows += list(csv.DictReader(handle))
    parquet = files.read_published(folder / "QZF01", "work_orders").to_pylist()
    assert [r["order_no"] for r in rows] == [r["order_no"] for r in parquet]
    assert rows[0]["received_at"] == parquet[0]["received_at"].strftime("%Y-%m-%d %H:%M:%S")
    assert any(r["satisfaction"] in ("满意", "基本满意", "不满意") for r in rows)  # Chinese survives


def test_csv_times_are_whole_seconds_in_the_time_they_were_recorded(tmp_path):
    moment = datetime(2026, 7, 31, 23, 59, 58, 900_000)
    table = pa.table({"naive": pa.array([moment, None], pa.timestamp("us")),
                      "zoned": pa.array([moment, None], pa.timestamp("us", tz="Asia/Shanghai"))})
    files.write_csv(table, tmp_path / "part.csv")
    with open(tmp_path / "part.csv", encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # a zoned time in its zone's wall clock, without an offset Excel would not read
    assert rows == [{"naive": "2026-07-31 23:59:58", "zoned": "2026-08-01 07:59:58"}, {"naive": "", "zoned": ""}]


def test_the_dictionary_documents_every_column_in_chinese(published):
    _, folder, _ = published
    with open(folder / "SWJ" / "data_dictionary.csv", encoding="utf-8-sig", newline="") as handle:
        entries = list(csv.DictReader(handle))
    tables = json.loads((folder / "SWJ" / "manifest.json").read_text(encoding="utf-8"))["tables"]
    assert {"work_orders", "work_order_events"} <= set(tables)
    for table in tables:
        columns = pq.read_schema(files.published_files(folder / "SWJ", table)[0]).names
        documented = {e["column"]: e for e in entries if e["table"] == table}
        assert list(documented) == columns
        assert all(any("\u4e00" <= ch <= "\u9fff" for ch in e["name_zh"]) for e in documented.values()), \
            [e["column"] for e in documented.values() if e["name_zh"] == e["column"]]
    by_column = {e["column"]: e for e in entries if e["table"] == "work_orders"}
    assert by_column["order_no"]["name_zh"] == "工单编号"
    assert by_column["order_no"]["description"].startswith("工单编号 — ")  # the dbt description


def test_planted_personal_data_stops_the_publication(publish_city, warehouse_copy, tmp_path):
    known = gate.load_known_values(publish_city["sandbox"])
    target = tmp_path / "published"
    with duckdb.connect(str(warehouse_copy), read_only=True) as con:
        shares.publish_shares(con, target, known=known)
    before = {p: p.read_bytes() for p in files.published_files(target / "shares" / "SWJ", "work_orders", ".csv")}
    leaked = next(v for v, kind in known.numbers.items() if kind == "phone")
    with duckdb.connect(str(warehouse_copy)) as con:
        con.execute("update marts.fct_work_orders set caller_phone_masked = ? where order_no = "
                    "(select min(order_no) from marts.fct_work_orders where lead_dept_code = 'SWJ')", [leaked])
    with duckdb.connect(str(warehouse_copy), read_only=True) as con, \
            pytest.raises(gate.PersonalDataFound) as error:
        shares.publish_shares(con, target, known=known)
    located = {(Path(h.location).parts[-4], Path(h.location).name, h.column) for h in error.value.hits}
    assert ("SWJ", "part.parquet", "caller_phone_masked") in located
    assert ("SWJ", "part.csv", "caller_phone_masked") in located
    assert "known_phone" in {h.kind for h in error.value.hits}
    assert {p: p.read_bytes() for p in before} == before  # previous share kept
    assert not [p for p in target.iterdir() if p.name.startswith(".")]


def test_one_query_for_all_departments_selects_each_departments_share(publish_city):
    """shares_query (one pass, what is published) gives every department exactly share_query's rows."""
    with duckdb.connect(str(publish_city["warehouse"]), read_only=True) as con:
        specs, _ = shares.available_specs(con, load_config())
        for spec in specs:
            every = con.sql(f"select * from ({shares.shares_query(con, spec)}) order by all").to_arrow_table()
            checked = 0
            for department in shares.departments(con):
                value = shares.key_value(spec, department)
                mine = every.filter(pc.equal(every.column(shares.DEPARTMENT), department.code))
                if value is None:
                    assert mine.num_rows == 0
                    continue
                sql, params = shares.share_query(con, spec, value)
                expected = con.sql(sql, params=params).to_arrow_table()
                assert mine.drop_columns([shares.DEPARTMENT]).to_pylist() == expected.to_pylist(), \
                    (spec.name, department.code)
                checked += expected.num_rows
            assert checked == every.num_rows > 0, spec.name
