"""The Chinese data-quality report: self-contained HTML with what failed, counts, masked examples
and the trend; injection strings escaped; no personal numbers."""

from __future__ import annotations

import duckdb
import pyarrow.parquet as pq
from typer.testing import CliRunner

from citizen_voice.quality.cli import quality_app


def test_report_for_a_department(quality_run, monkeypatch):
    _, work, folder = quality_run
    monkeypatch.setenv("CV_WAREHOUSE", str(work / "warehouse.duckdb"))
    monkeypatch.setenv("CV_PUBLISHED", str(work / "published"))
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        period, quarantined = con.execute(
            "select strftime(record_day, '%Y-%m'), count(distinct record_key) from quality.quarantine "
            "where source = 'zhujian' group by 1 order by 2 desc limit 1").fetchone()
        counted = con.execute("select sum(quarantined) from quality.record_counts where source = 'zhujian' and "
                              "strftime(record_day, '%Y-%m') = ?", [period]).fetchone()[0]
    result = CliRunner().invoke(quality_app, ["report", "--period", period, "--department", "ZJJ"])
    assert result.exit_code == 0, result.output
    html = (work / "published" / "quality" / period / "quality_report_ZJJ.html").read_text(encoding="utf-8")
    assert "数据质量报告" in html and "市住房和城乡建设局" in html
    assert f'data-figure="quarantined">{counted:,}<' in html and quarantined >= 1
    assert "<svg" in html and "http" not in html.split("<body>")[1]
    values = pq.read_table(folder / "truth" / "personal_values.parquet").to_pylist()
    assert not any(v["value"] in html for v in values if v["kind"] in ("phone", "id_no"))


def test_report_escapes_and_rejects_bad_input(quality_run, monkeypatch):
    _, work, _ = quality_run
    monkeypatch.setenv("CV_WAREHOUSE", str(work / "warehouse.duckdb"))
    monkeypatch.setenv("CV_PUBLISHED", str(work / "published"))
    assert CliRunner().invoke(quality_app, ["report", "--period", "2026-8"]).exit_code != 0
    assert CliRunner().invoke(quality_app, ["report", "--period", "2026-08", "--department", "NOPE"]).exit_code != 0
    result = CliRunner().invoke(quality_app, ["report", "--period", "2026-08"])
    assert result.exit_code == 0, result.output
    html = (work / "published" / "quality" / "2026-08" / "quality_report.html").read_text(encoding="utf-8")
    assert "<script>" not in html and "<img src=x" not in html


def test_check_command_passes_on_a_clean_build(quality_run, monkeypatch):
    _, work, _ = quality_run
    monkeypatch.setenv("CV_WAREHOUSE", str(work / "warehouse.duckdb"))
    result = CliRunner().invoke(quality_app, ["check"])
    assert result.exit_code == 0, result.output
    assert "marts.fct_work_orders" in result.output and "received" in result.output
