"""The walking skeleton end to end on a small sandbox city: department systems served on
loopback → dlt → dbt → indicator → bulletin, reconciled against the city's ground truth."""

import json
import os
import shutil
from collections import Counter

import duckdb
import pyarrow.parquet as pq
import pytest

from citizen_voice import settings
from simulator.servers import SandboxServers

# Hotline faults that make a record unusable: the order cannot enter the marts from the hotline.
UNUSABLE = {"invalid_date", "impossible_date", "unknown_district", "unknown_category", "missing_id"}


@pytest.fixture(scope="module")
def skeleton_run(tmp_path_factory, pipeline_city, dbt_manifest):
    from orchestration.run import materialize_all

    shared, manifest = pipeline_city
    work = tmp_path_factory.mktemp("skeleton")
    folder = work / "sandbox"  # a copy: file-drop ingestion moves rejected files aside
    shutil.copytree(shared, folder)
    env = {"CV_SANDBOX": str(folder), "CV_WAREHOUSE": str(work / "warehouse.duckdb"),
           "CV_PUBLISHED": str(work / "published"), "DAGSTER_HOME": str(work / "dagster_home")}
    saved = {k: os.environ.get(k) for k in [*env, "CV_HOTLINE_URL", "CV_OPEN311_URL"]}
    os.environ.update(env)
    try:
        with SandboxServers(folder, hotline_port=0, open311_port=0,
                            hotline_token=settings.hotline_token()) as servers:
            os.environ["CV_HOTLINE_URL"] = servers.hotline_url
            os.environ["CV_OPEN311_URL"] = servers.open311_url
            result = materialize_all(quiet=True)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return result, work, folder


@pytest.fixture(scope="module")
def truth(skeleton_run):
    _, _, folder = skeleton_run
    orders = pq.read_table(folder / "truth" / "work_orders.parquet").to_pylist()
    faults = json.loads((folder / "truth" / "faults.json").read_text(encoding="utf-8"))
    hotline_faults = {}
    for fault in faults:
        if fault["system"] == "hotline":
            hotline_faults.setdefault(fault["order_no"], set()).add(fault["fault_type"])
    return orders, hotline_faults


def test_run_succeeds(skeleton_run):
    result, _, _ = skeleton_run
    assert result.success, [e.message for e in result.all_events if e.is_failure]


def test_every_valid_order_appears_once_with_its_true_attributes(skeleton_run, truth):
    _, work, folder = skeleton_run
    orders, hotline_faults = truth
    faults = json.loads((folder / "truth" / "faults.json").read_text(encoding="utf-8"))
    survey_faulted = {f["order_no"] for f in faults if f["system"] == "survey"}
    by_no = {o["order_no"]: o for o in orders}
    clean = {no for no in by_no if not hotline_faults.get(no, set()) & UNUSABLE}
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute("select order_no, district_code, category_code, received_at, due_at, closed_at, status, "
                           "lead_dept_code, satisfaction, resolution, intake_source from marts.fct_work_orders"
                           ).fetchall()
    loaded = [r[0] for r in rows]
    assert len(loaded) == len(set(loaded))
    assert clean <= set(loaded)  # every order with a usable hotline record
    recovered = set(loaded) - clean  # hotline record unusable, intake fields from a department system
    assert all(by_no[no] for no in recovered)
    assert all(r[10] != "hotline" for r in rows if r[0] in recovered)
    conflicting = {no for no, kinds in hotline_faults.items() if "conflicting_duplicate" in kinds}
    mismatches = []
    for (order_no, district, category, received, due, closed, status, lead, satisfaction, resolution,
         _) in rows:
        true = by_no[order_no]
        checks = [("district", district, true["district_code"]), ("received_at", received, true["received_at"]),
                  ("due_at", due, true["due_at"]), ("closed_at", closed, true["closed_at"]),
                  ("status", status, true["status"]), ("lead", lead, true["lead_dept_code"])]
        if order_no not in conflicting:
            checks.append(("category", category, true["category_code"]))
        if order_no not in survey_faulted:
            checks += [("satisfaction", satisfaction, true["satisfaction"]),
                       ("resolution", resolution, true["resolution"])]
        mismatches += [(order_no, name, got, want) for name, got, want in checks if got != want]
    assert not mismatches, mismatches[:10]


def test_sla_due_times_match_the_hotline_and_the_truth(skeleton_run):
    _, work, _ = skeleton_run
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        differing = con.execute("""
            select count(*) from marts.fct_work_orders fct
            join intermediate.int_work_orders_unified u using (order_no)
            where fct.due_at is distinct from u.reported_due_at and fct.is_dispatched""").fetchone()[0]
        dispatched = con.execute("select count(*) from marts.fct_work_orders where is_dispatched").fetchone()[0]
    assert dispatched > 100 and differing == 0


def test_indicator_equals_an_independent_recount_from_the_truth(skeleton_run, truth):
    _, work, _ = skeleton_run
    orders, hotline_faults = truth
    valid = [o for o in orders if not hotline_faults.get(o["order_no"], set()) & UNUSABLE]
    observed = max(o["closed_at"] or o["received_at"] for o in valid)
    received = Counter(o["received_at"].strftime("%Y-%m") for o in valid)
    due = Counter()
    on_time = Counter()
    for o in valid:
        if o["due_at"] is not None and o["due_at"] <= observed:
            period = o["due_at"].strftime("%Y-%m")
            due[period] += 1
            on_time[period] += bool(o["closed_at"] and o["closed_at"] <= o["due_at"])
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        city = con.execute("select period, received, due_to_close, closed_on_time, on_time_close_rate "
                           "from indicators.district_monthly where grain = 'city'").fetchall()
    assert {p: r for p, r, *_ in city if r} == dict(received)
    for period, _, due_count, on_time_count, rate in city:
        assert due_count == due[period]
        assert on_time_count == on_time[period]
        if due_count:
            assert rate == pytest.approx(on_time_count / due_count, abs=1e-4)


def test_bulletin_shows_the_indicator_figures(skeleton_run):
    result, work, _ = skeleton_run
    bulletins = list((work / "published" / "bulletins").glob("*/bulletin.html"))
    assert len(bulletins) == 1
    period = bulletins[0].parent.name
    html = bulletins[0].read_text(encoding="utf-8")
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        received, rate = con.execute("select received, on_time_close_rate from indicators.district_monthly "
                                     "where grain = 'city' and period = ?", [period]).fetchone()
        names = [r[0] for r in con.execute("select district_name from marts.dim_district").fetchall()]
    assert f'data-figure="received">{received:,}<' in html
    assert f'data-figure="on_time_close_rate">{rate * 100:.2f}%<' in html
    for name in names:
        assert name in html
    assert "<svg" in html and "http" not in html.split("<body>")[1]  # self-contained


def test_no_personal_data_outside_the_restricted_schema(skeleton_run):
    """No phone or ID number generated by the sandbox appears anywhere (fields or free text, raw
    layer included), and no cell holds a caller's full name."""
    _, work, folder = skeleton_run
    values = pq.read_table(folder / "truth" / "personal_values.parquet").to_pylist()
    numbers = {r["value"] for r in values if r["kind"] in ("phone", "id_no")}
    names = {r["value"] for r in values if r["kind"] == "name"}
    found_numbers, found_names, scanned = set(), set(), 0
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        columns = con.execute("select table_schema, table_name, column_name from information_schema.columns "
                              "where table_schema not in ('restricted', 'information_schema', 'pg_catalog') "
                              "and data_type = 'VARCHAR' and table_name not like '_dlt%'").fetchall()
        for schema, table, column in columns:
            digits = con.execute(
                f"select distinct unnest(regexp_extract_all(\"{column}\", '\\d{{11,18}}X?')) "
                f"from \"{schema}\".\"{table}\"").fetchall()
            found_numbers |= {d for (d,) in digits} & numbers
            cells = con.execute(f"select distinct \"{column}\" from \"{schema}\".\"{table}\" "
                                f"where length(\"{column}\") between 2 and 4").fetchall()
            found_names |= {c for (c,) in cells} & names
            scanned += 1
    assert scanned > 50
    assert not found_numbers
    assert not found_names
    html = next((work / "published" / "bulletins").glob("*/bulletin.html")).read_text(encoding="utf-8")
    assert not any(value in html for value in numbers)
