"""Every fault the sandbox injects is caught by a named expectation and lands in quarantine (or, for
`sanitize` faults, stays and is neutralised on output); no clean record is quarantined; received =
clean + quarantined per source and day; quarantined records stay out of the intermediate layer."""

from __future__ import annotations

import json

import duckdb
import pyarrow.parquet as pq
import pytest

SOURCE_OF_SYSTEM = {"hotline": "hotline", "open311": "app311", "zhujian": "zhujian", "chengguan": "chengguan",
                    "gongdian": "gongdian", "survey": "survey"}


@pytest.fixture(scope="module")
def outcome(quality_run):
    results, work, folder = quality_run
    faults = json.loads((folder / "truth" / "faults.json").read_text(encoding="utf-8"))
    orders = {o["order_no"]: o for o in pq.read_table(folder / "truth" / "work_orders.parquet").to_pylist()}
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        cursor = con.execute("select * from quality.quarantine")
        columns = [d[0] for d in cursor.description]
        quarantine = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return results, work, folder, faults, orders, quarantine


def matches(fault: dict, row: dict, orders: dict) -> bool:
    """Whether a quarantine row is the record the fault was injected into."""
    if row["source"] != SOURCE_OF_SYSTEM[fault["system"]]:
        return False
    locator = fault["locator"]
    if row["record_key"] in (locator, f"service_request_id={locator}"):
        return True
    if locator.startswith("visit_id=") and row["record_id"] == locator.removeprefix("visit_id="):
        return True
    if ":" in locator and row["record_key"] == locator.split(":")[0]:  # a whole file rejected
        return True
    if fault["system"] == "hotline":
        if row["order_no"] == fault["order_no"]:
            return True
        # a record without its order number is known by its other fields
        return fault["field"] == "order_no" and orders[fault["order_no"]]["address"] in (row["raw_value"] or "")
    return False


def test_the_jobs_succeed_with_the_quality_step(quality_run):
    results, _, _ = quality_run
    assert len(results) >= 2 and all(r.success for r in results.values()), \
        [e.message for r in results.values() for e in r.all_events if e.is_failure][:5]
    done = {"/".join(e.asset_key.path) for r in results.values() for e in r.get_asset_materialization_events()}
    assert {"quality/quarantine", "quality/scorecard", "intermediate/int_work_orders_unified",
            "marts/fct_work_orders", "publish/bulletin_monthly"} <= done


def test_every_injected_fault_is_caught_by_a_named_expectation_and_quarantined(outcome):
    _, _, _, faults, orders, quarantine = outcome
    expected = [f for f in faults if f["expected"] == "quarantine"]
    assert len(expected) >= 25
    missed, names = [], {}
    for fault in expected:
        caught = [row for row in quarantine if matches(fault, row, orders)]
        if not caught:
            missed.append(fault)
        names[fault["fault_id"]] = {row["expectation"] for row in caught}
    assert not missed, missed
    assert all(name.startswith(("raw_", "boundary.")) for found in names.values() for name in found)


def test_a_conflicting_duplicate_is_quarantined_and_the_first_record_kept(outcome):
    """The hotline sends a second record for the same order and update time with another category: the
    boundary quarantines the repeat (boundary.no_conflicting_duplicate), the first record stays."""
    _, work, _, faults, orders, quarantine = outcome
    conflicts = [f for f in faults if (f["system"], f["fault_type"]) == ("hotline", "conflicting_duplicate")]
    assert conflicts
    for fault in conflicts:
        caught = [row for row in quarantine if row["order_no"] == fault["order_no"]
                  and row["expectation"] == "boundary.no_conflicting_duplicate"]
        assert len(caught) == 1, fault
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        for fault in conflicts:
            kept = con.execute("select category_code from raw_hotline.orders where order_no = ?",
                               [fault["order_no"]]).fetchall()
            assert kept == [(orders[fault["order_no"]]["category_code"],)]


def test_sanitize_faults_are_kept_not_quarantined(outcome):
    _, work, _, faults, orders, quarantine = outcome
    sanitize = [f for f in faults if f["expected"] == "sanitize"]
    assert sanitize
    for fault in sanitize:
        assert not [row for row in quarantine if matches(fault, row, orders)], fault
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        hotline = [f for f in sanitize if f["system"] == "hotline"]
        for fault in hotline:
            kept = con.execute("select title from intermediate.int_work_orders_unified where order_no = ?",
                               [fault["order_no"]]).fetchone()
            assert kept and fault["bad_value"] in kept[0]  # kept as sent; outputs escape it


def test_no_clean_record_is_quarantined(outcome):
    _, _, _, faults, orders, quarantine = outcome
    by_expectations = [row for row in quarantine if row["detected_by"] == "expectations"]
    assert by_expectations
    innocent = [row for row in by_expectations if not any(matches(f, row, orders) for f in faults)]
    assert not innocent, innocent


def test_received_equals_clean_plus_quarantined_for_every_source_and_day(outcome):
    _, work, _, _, _, _ = outcome
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute("select source, table_name, record_day, received, clean, quarantined "
                           "from quality.record_counts").fetchall()
        assert {r[0] for r in rows} == {"hotline", "app311", "zhujian", "chengguan", "gongdian", "survey"}
        assert all(received == clean + quarantined for *_, received, clean, quarantined in rows)
        assert len({r[2] for r in rows}) >= 30  # per day, not one total
        # recounted independently: records in the raw tables plus records the boundary rejected
        for source, table in (("hotline", "orders"), ("zhujian", "gd_main"), ("chengguan", "tickets"),
                              ("survey", "visits"), ("gongdian", "tickets")):
            in_raw = con.execute(f"select count(*) from raw_{source}.{table}").fetchone()[0]
            rejected = con.execute(
                f"select coalesce(sum(case when payload like '{{\"unit\"%' then "
                f"cast(json_extract(payload, '$.records') as int) else 1 end), 0) "
                f"from raw_{source}._quarantine where table_name = ?", [table]).fetchone()[0]
            received = sum(r[3] for r in rows if r[0] == source and r[1] == table)
            assert received == in_raw + rejected, (source, table)
            clean = sum(r[4] for r in rows if r[0] == source and r[1] == table)
            flagged = con.execute("select count(distinct record_key) from quality.quarantine where source = ? and "
                                  "table_name = ? and detected_by = 'expectations'", [source, table]).fetchone()[0]
            assert clean == in_raw - flagged, (source, table)


def test_quarantined_records_stay_out_of_the_intermediate_layer(outcome):
    _, work, _, _, _, quarantine = outcome
    excluded = [row for row in quarantine if row["action"] == "exclude" and row["detected_by"] == "expectations"]
    withheld = [row for row in quarantine if row["action"] == "withhold"]
    assert excluded and withheld
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        tickets = {r[0] for r in con.execute("select source_record from intermediate.int_department_tickets").fetchall()}
        visits = {r[0] for r in con.execute("select source_record from intermediate.int_work_order_events "
                                            "where source_system = 'survey'").fetchall()}
        for row in excluded:
            if row["source"] in ("zhujian", "chengguan", "gongdian"):
                assert row["record_key"] not in tickets, row
        survey_keys = {r["record_key"] for r in excluded if r["source"] == "survey"}
        assert survey_keys and not survey_keys & visits
        for row in withheld:
            content, intake, rejection = con.execute(
                "select content, intake_source, rejection_reason from intermediate.int_work_orders_unified "
                "where order_no = ?", [row["order_no"]]).fetchone()
            if row["column_name"] == "content":
                assert content is None  # the order stays, its oversized text does not
            else:  # the field came from another system, or the order is rejected for lack of it
                assert intake != "hotline" or rejection is not None, row


def test_quarantined_values_are_protected(outcome):
    _, _, folder, _, _, quarantine = outcome
    values = pq.read_table(folder / "truth" / "personal_values.parquet").to_pylist()
    numbers = {r["value"] for r in values if r["kind"] in ("phone", "id_no")}
    text = " ".join(str(row["raw_value"]) for row in quarantine)
    assert text and not any(number in text for number in numbers)


def test_a_boundary_record_without_an_id_is_keyed_by_its_whole_digest_which_the_privacy_gate_passes():
    """A 16-character prefix of a digest can be all digits and read as a phone number by the gate."""
    from datetime import UTC, datetime

    from citizen_voice.publish import gate
    from citizen_voice.quality.quarantine import boundary_rows

    digest = "047451572489cab5" + "01627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
    with duckdb.connect() as con:
        con.execute("create schema raw_hotline")
        con.execute("create table raw_hotline._quarantine (record_hash varchar, table_name varchar, origin varchar, "
                    "reason varchar, payload varchar, _dlt_load_id varchar)")
        con.execute("insert into raw_hotline._quarantine values (?, 'orders', 'GET /api/v1/orders', "
                    "'missing required field order_no', '{}', '1764115200.1')", [digest])
        [row] = boundary_rows(con, [("hotline", "raw_hotline")], datetime.now(UTC))
    assert row["record_key"] == f"record_hash={digest}"
    assert gate.classify(row["record_key"], None) == []
