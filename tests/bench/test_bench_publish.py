"""The benchmark's publish stage runs end to end at a tiny scale, after the stages it builds on: the
bulletin (HTML + PDF), department shares, open data and the BI snapshot are written under the bench's
work folder, each behind the privacy gate, and the shares and open data are measured against a floor.
It never asserts on timings."""

from __future__ import annotations

from pathlib import Path

import duckdb

SCALE = 600
PARTS = ("publish · bulletin", "publish · department shares", "publish · open data", "publish · serving snapshot")


def test_bench_publish_stage_writes_gated_outputs_and_measures_floors(tmp_path, run_bench):
    results, data_dir, _ = run_bench("--scale", str(SCALE), "--stages",
                                     "generate,ingest,transform,checks,text,indicators,publish")
    assert results["failures"] == []
    stages = {s["name"]: s for s in results["stages"]}
    whole = stages["publish"]
    assert whole["rows"] == stages["transform"]["rows"]  # all work orders of the warehouse
    assert abs(whole["seconds"] - sum(stages[name]["seconds"] for name in PARTS)) < 0.01
    for name in PARTS:
        assert stages[name]["rows"] > 0, name
        gate = stages[name]["details"]["privacy_gate"]
        assert gate["status"] == "passed" and gate["files"] + gate["tables"] > 0, name

    run_dir = data_dir / f"{results['seed']}-{SCALE}" / "run"
    published = run_dir / "published"
    bulletin = stages["publish · bulletin"]["details"]
    period = whole["details"]["period"]
    assert bulletin["period"] == period and {"render_seconds", "pdf_seconds"} <= set(bulletin)
    html, pdf = published / "bulletins" / period / "bulletin.html", published / "bulletins" / period / "bulletin.pdf"
    assert Path(bulletin["html"]) == html and Path(bulletin["pdf"]) == pdf
    assert "市民之声" in html.read_text(encoding="utf-8")
    assert pdf.read_bytes().startswith(b"%PDF")
    assert stages["publish · bulletin"]["rows"] == whole["details"]["month_orders"]

    # shares and open data: measured against a COPY of the same rows to Parquet
    for name in ("publish · department shares", "publish · open data"):
        record = stages[name]
        assert record["floor_name"] == "DuckDB COPY to Parquet", name
        assert record["ratio_to_floor"] is not None and record["details"]["floor"]["rows"] == record["rows"], name
    shares = stages["publish · department shares"]["details"]
    assert shares["departments"] == len([p for p in (published / "shares").iterdir() if p.is_dir()])
    assert sum(shares["tables"].values()) == stages["publish · department shares"]["rows"]
    open_data = stages["publish · open data"]["details"]
    with duckdb.connect() as con:
        dataset = con.execute("select count(*) from read_parquet(?)",
                              [str(published / "open" / "work_orders" / "month=*" / "part.parquet")]).fetchone()[0]
    assert dataset == open_data["dataset_rows"]

    snapshot = stages["publish · serving snapshot"]
    assert snapshot["floor_name"] == "DuckDB COPY FROM DATABASE" and snapshot["ratio_to_floor"] is not None
    with duckdb.connect(str(published / "serving" / "warehouse.duckdb"), read_only=True) as con:
        copied = {f"{s}.{t}" for s, t in con.execute(
            "select table_schema, table_name from information_schema.tables where table_schema <> 'meta'").fetchall()}
        assert con.execute("select count(*) from meta.snapshot").fetchone()[0] == 1
    assert copied == set(snapshot["details"]["tables"])

    # the work ran on a copy of the warehouse (removed afterwards), and nothing went to the platform's folders
    assert not (run_dir / "publish-warehouse.duckdb").exists()
    assert not (tmp_path / "unused-published").exists() and not (tmp_path / "unused.duckdb").exists()
