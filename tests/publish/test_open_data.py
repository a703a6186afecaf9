"""Open data on a real warehouse: no identifiers, confidential orders left out, communities coarsened
and small cells suppressed at the configured threshold, times truncated, a complete dictionary."""

from __future__ import annotations

import csv
import json
from collections import Counter

import duckdb
import pyarrow.parquet as pq
import pytest

from citizen_voice.publish import files, gate, open_data
from citizen_voice.publish.config import NEVER_PUBLIC, load_config


@pytest.fixture(scope="module")
def published(publish_city, tmp_path_factory):
    folder = tmp_path_factory.mktemp("open_published")
    known = gate.load_known_values(publish_city["sandbox"])
    with duckdb.connect(str(publish_city["warehouse"]), read_only=True) as con:
        report = open_data.publish_open_data(con, folder, known=known)
        orders = {r[0]: r[1:] for r in con.execute(
            "select order_no, is_confidential, community_code, received_at, strftime(received_at, '%Y-%m'), "
            "is_closed from marts.fct_work_orders").fetchall()}
        by_community = Counter(con.execute(
            "select strftime(o.received_at, '%Y-%m'), d.district_name, s.street_name, c.community_name "
            "from marts.fct_work_orders o left join marts.dim_district d using (district_code) "
            "left join marts.dim_street s on s.street_code = o.street_code "
            "left join marts.dim_community c on c.community_code = o.community_code").fetchall())
    return report, folder / "open", orders, by_community


def test_identifiers_and_confidential_orders_are_left_out(published):
    report, folder, orders, _ = published
    table = files.read_published(folder, "work_orders")
    assert not set(table.column_names) & NEVER_PUBLIC
    assert list(table.column_names) == list(load_config().open_data.columns)
    published_ids = set(table.column("order_no").to_pylist())
    confidential = {no for no, (secret, *_) in orders.items() if secret}
    assert confidential and not published_ids & confidential
    assert published_ids == set(orders) - confidential
    assert report.excluded_confidential == len(confidential) and report.rows == len(published_ids)


def test_the_dataset_is_written_in_month_parts_by_the_month_received(published):
    report, folder, orders, _ = published
    parts = files.published_files(folder, "work_orders")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["work_orders"]
    assert [p.parent.name for p in parts] == [f"month={m}" for m in sorted({o[3] for o in orders.values()})]
    assert set(manifest["parts"]) == {f"work_orders/{p.parent.name}/part" for p in parts}
    for part in parts:
        month = part.parent.name.removeprefix("month=")
        rows = pq.read_table(part).to_pylist()
        assert rows and all(orders[r["order_no"]][3] == month for r in rows)
        assert [r["order_no"] for r in rows] == sorted(r["order_no"] for r in rows)
        assert manifest["parts"][f"work_orders/month={month}/part"]["rows"] == len(rows)
        assert (part.parent / "part.csv").read_bytes().startswith(b"\xef\xbb\xbf")


def test_small_communities_are_coarsened_to_the_street(published):
    report, folder, orders, _ = published
    threshold = load_config().open_data.suppression_threshold
    rows = files.read_published(folder, "work_orders").to_pylist()
    cells = Counter((r["community_code"], r["received_at"].strftime("%Y-%m")) for r in rows if r["community_code"])
    assert cells and min(cells.values()) >= threshold
    blanked = [r for r in rows if r["community_code"] is None and orders[r["order_no"]][1] is not None]
    assert len(blanked) == report.coarsened_to_street > 0
    assert all(r["street_code"] for r in blanked if orders[r["order_no"]][1])  # the street stays
    assert all(r["community_name"] is None for r in blanked)


def test_times_are_truncated_to_the_hour(published):
    _, folder, orders, _ = published
    rows = files.read_published(folder, "work_orders").to_pylist()
    for r in rows:
        for column in ("received_at", "closed_at", "due_at", "visited_at"):
            if r[column] is not None:
                assert (r[column].minute, r[column].second, r[column].microsecond) == (0, 0, 0)
        assert r["received_at"] == orders[r["order_no"]][2].replace(minute=0, second=0, microsecond=0)
        assert r["is_closed"] == orders[r["order_no"]][4]


def test_aggregates_suppress_small_cells_and_keep_the_rest_exact(published):
    report, folder, _, by_community = published
    threshold = load_config().open_data.suppression_threshold
    rows = pq.read_table(folder / "monthly_by_community.parquet").to_pylist()
    measures = list(open_data.MEASURES)
    for r in rows:
        for m in measures:
            assert r[m] is None or r[m] == 0 or r[m] >= threshold
        true = by_community[(r["period"], r["district_name"], r["street_name"], r["community_name"])]
        if true < threshold:
            assert r["suppressed"] and all(r[m] is None for m in measures)
        else:
            assert r["received"] == true
        assert r["suppressed"] == any(r[m] is None for m in measures)
    assert sum(1 for r in rows if r["suppressed"]) == report.aggregates["monthly_by_community"]["suppressed_rows"]
    assert len(rows) == len(by_community)
    for aggregate in load_config().open_data.aggregates:
        assert (folder / f"{aggregate.name}.csv").exists() and (folder / f"{aggregate.name}.parquet").exists()


def test_dictionary_and_manifest(published):
    report, folder, _, _ = published
    with open(folder / "data_dictionary.csv", encoding="utf-8-sig", newline="") as handle:
        entries = list(csv.DictReader(handle))
    assert (folder / "data_dictionary.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    for name in ["work_orders", *(a.name for a in load_config().open_data.aggregates)]:
        columns = pq.read_schema(files.published_files(folder, name)[0]).names
        documented = [e for e in entries if e["table"] == name]
        assert [e["column"] for e in documented] == columns
        assert all(e["name_zh"] != e["column"] and "未说明" not in e["description"] for e in documented), \
            [e["column"] for e in documented if e["name_zh"] == e["column"] or "未说明" in e["description"]]
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["suppression_threshold"] == load_config().open_data.suppression_threshold
    assert manifest["work_orders"]["rows"] == report.rows


def test_a_higher_threshold_suppresses_more(publish_city, tmp_path):
    config = load_config()
    stricter = config.model_copy(update={"open_data": config.open_data.model_copy(
        update={"suppression_threshold": 25})})
    with duckdb.connect(str(publish_city["warehouse"]), read_only=True) as con:
        default = open_data.publish_open_data(con, tmp_path / "a", known=None)
        strict = open_data.publish_open_data(con, tmp_path / "b", config=stricter, known=None)
    assert strict.coarsened_to_street > default.coarsened_to_street
    for name, counts in strict.aggregates.items():
        assert counts["suppressed_rows"] >= default.aggregates[name]["suppressed_rows"]
    assert strict.aggregates["monthly_by_community"]["suppressed_rows"] > \
        default.aggregates["monthly_by_community"]["suppressed_rows"]
