"""The whole platform end to end on a small sandbox city, run as its schedules run it (daily_update, then
monthly_bulletin for each month and weekly_brief): department systems served on loopback → dlt → dbt →
quality → text → indicators → publications, reconciled against the city's ground truth."""

import json
import os
import re
import shutil
from collections import Counter
from contextlib import contextmanager
from datetime import date

import duckdb
import pyarrow.parquet as pq
import pytest

from citizen_voice import settings
from simulator.servers import SandboxServers

# Hotline faults that make a record unusable: the order cannot enter the marts from the hotline.
UNUSABLE = {"invalid_date", "impossible_date", "unknown_district", "unknown_category", "missing_id"}


@contextmanager
def platform_on(city, work):
    """The platform's settings pointed at `work`, with a copy of the city (file-drop ingestion moves
    rejected files aside) served on loopback."""
    folder = work / "sandbox"
    shutil.copytree(city, folder)
    env = {"CV_SANDBOX": str(folder), "CV_WAREHOUSE": str(work / "warehouse.duckdb"),
           "CV_PUBLISHED": str(work / "published"), "DAGSTER_HOME": str(work / "dagster_home"),
           "CV_OPS_DIR": str(work / "ops")}
    saved = {k: os.environ.get(k) for k in [*env, "CV_HOTLINE_URL", "CV_OPEN311_URL"]}
    os.environ.update(env)
    try:
        with SandboxServers(folder, hotline_port=0, open311_port=0,
                            hotline_token=settings.hotline_token()) as servers:
            os.environ["CV_HOTLINE_URL"] = servers.hotline_url
            os.environ["CV_OPEN311_URL"] = servers.open311_url
            yield folder
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def skeleton_run(tmp_path_factory, pipeline_city, dbt_manifest):
    from citizen_voice.demo import demo_periods
    from orchestration.run import run_pipeline

    shared, manifest = pipeline_city
    work = tmp_path_factory.mktemp("skeleton")
    with platform_on(shared, work) as folder:
        day, months, week_of = demo_periods(date.fromisoformat(manifest["params"]["start"]),
                                            date.fromisoformat(manifest["params"]["end"]))
        runs = run_pipeline(day=day, months=months, week_of=week_of)
    return runs, work, folder


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
    runs, _, _ = skeleton_run
    assert [(job, key) for job, key, _ in runs] == [
        ("daily_update", "2026-09-09"), ("monthly_bulletin", "2026-08-01"), ("monthly_bulletin", "2026-09-01"),
        ("weekly_brief", "2026-08-31")]
    for _, _, result in runs:
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


SECTIONS = ["overview", "hot_topics", "warnings", "handling", "assessment", "data_quality", "cases"]


def test_bulletin_figures_equal_the_warehouse(skeleton_run):
    _, work, _ = skeleton_run
    folder = work / "published" / "bulletins"
    assert sorted(p.name for p in folder.iterdir()) == ["2026-08", "2026-09", "2026-W36"]
    html = (folder / "2026-09" / "bulletin.html").read_text(encoding="utf-8")
    figures = dict(re.findall(r'data-figure="(\w+)" data-value="([^"]*)"', html))
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        city = dict(con.execute("select indicator_key, value from indicators.indicator_values where period_type = "
                                "'month' and period = '2026-09' and grain = 'city'").fetchall())
        top = con.execute("select topic_name, orders from text.hot_topics where grain = 'month' and area_level = "
                          "'city' and period_start = date '2026-09-01' and rank = 1").fetchone()
        ranked = [r[0] for r in con.execute(
            "select unit_name from indicators.rankings where period = '2026-09'").fetchall()]
        quality = [r[0] for r in con.execute(
            "select unit_name from quality.scorecard_ranking where period = '2026-09'").fetchall()]
        districts = [r[0] for r in con.execute("select district_name from marts.dim_district where is_current").fetchall()]
    for key in ("received", "daily_received", "on_time_close_rate", "satisfaction_rate", "response_rate"):
        assert float(figures[key]) == pytest.approx(city[key]), key
    assert f'data-figure="received" data-value="{figures["received"]}">{int(city["received"]):,}<' in html
    assert f'data-figure="satisfaction_rate" data-value="{figures["satisfaction_rate"]}">' \
           f'{city["satisfaction_rate"] * 100:.2f}%<' in html
    assert figures["top_topic"] == top[0] and int(figures["top_count"]) == top[1]
    for section in SECTIONS:
        assert f'data-section="{section}"' in html, section
    # trend line; channel and 诉求类型 mixes; hot-topic and district bars
    assert [html.count(f'data-chart="{kind}"') for kind in ("line", "shares", "bars")] == [1, 2, 2]
    for name in [*districts, *ranked, *quality]:
        assert name in html
    body = html.split("<body>")[1]
    assert "http" not in body and "<script" not in html and "<link" not in html  # works offline
    pdf = folder / "2026-09" / "bulletin.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 20_000
    weekly = (folder / "2026-W36" / "bulletin.html").read_text(encoding="utf-8")
    assert all(f'data-section="{s}"' in weekly for s in ("overview", "hot_topics", "warnings"))


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
    for html_file in (work / "published" / "bulletins").glob("*/bulletin.html"):
        html = html_file.read_text(encoding="utf-8")
        assert not any(value in html for value in numbers | {n for n in names if len(n) >= 3})


def test_bulletin_renders_in_headless_chromium(skeleton_run, tmp_path):
    """A screenshot of the bulletin as a reader's browser shows it: a full page of text and charts."""
    from citizen_voice.bulletin.browser import screenshot

    _, work, _ = skeleton_run
    png = screenshot(work / "published" / "bulletins" / "2026-09" / "bulletin.html", tmp_path / "bulletin.png",
                     width=900, height=3000)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 150_000  # a blank or broken page compresses to a few kilobytes


def _table(con, query: str) -> list[tuple]:
    return sorted(con.execute(query).fetchall(), key=repr)


def test_backfill_of_days_equals_one_run(skeleton_run, pipeline_city, tmp_path):
    """daily_update backfilled over three days gives the same warehouse as the single run of the last day
    (and its daily indicators for that day)."""
    from orchestration.run import run_partitions

    _, one_run, _ = skeleton_run
    with platform_on(pipeline_city[0], tmp_path):
        results = run_partitions("daily_update", "2026-09-07", "2026-09-09")
        again = run_partitions("daily_update", "2026-09-09", "2026-09-09")  # idempotent: a rerun changes nothing
    assert all(r.success for r in [*results.values(), *again.values()])
    queries = {
        "facts": "select * exclude (source_load_id) from marts.fct_work_orders",
        "events": "select order_no, event_type, occurred_at from marts.fct_work_order_events",
        "classes": "select order_no, predicted_category_code, round(confidence, 6) from text.classifications",
        "repeats": "select order_no, repeat_group_id, is_repeat from text.repeat_demands",
        "daily": "select grain, unit_code, indicator_key, numerator, denominator, value from "
                 "indicators.indicator_values where period_type = 'day' and period = '2026-09-09'",
        "quarantine": "select source, record_key, expectation from quality.quarantine",
    }
    with duckdb.connect(str(one_run / "warehouse.duckdb"), read_only=True) as a, \
            duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as b:
        for name, query in queries.items():
            expected = _table(a, query)
            assert expected, name
            assert _table(b, query) == expected, name
        days = b.execute("select distinct period from indicators.indicator_values where period_type = 'day' "
                         "order by 1").fetchall()
    assert [d for (d,) in days] == ["2026-09-07", "2026-09-08", "2026-09-09"]
