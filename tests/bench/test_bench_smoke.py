"""Smoke test of the benchmark harness (`make bench`): it runs end to end at a tiny scale and writes
its results. It never asserts on timings — the benchmark is not a pass/fail timing test."""

from __future__ import annotations

SCALE = 600


def test_bench_runs_generate_and_ingest_at_a_tiny_scale(tmp_path, run_bench):
    results, data_dir, results_dir = run_bench("--scale", str(SCALE), "--stages", "generate,ingest,transform",
                                               timeout=180)
    assert (results_dir / f"latest-{SCALE}.md").read_text(encoding="utf-8").startswith("# Benchmark")
    assert results["scale"] == SCALE and results["failures"] == []
    stages = {s["name"]: s for s in results["stages"]}

    assert stages["generate"]["rows"] > 0
    assert stages["ingest"]["rows"] > 0
    sources = {name.split(" · ")[1]: s for name, s in stages.items() if name.startswith("ingest · ")}
    assert set(sources) == {"hotline", "app311", "zhujian", "chengguan", "gongdian", "survey"}
    for name, source in sources.items():
        details = source["details"]
        assert source["rows"] > 0, name
        assert source["rows"] == details["received"], name
        assert details["received"] == details["loaded"] + details["quarantined"], name
        for table, counts in details["tables"].items():
            assert counts["received"] == counts["loaded"] + counts["quarantined"], (name, table)
    # file, SQL and REST sources are measured against a floor reading the same data (for the REST API:
    # a plain paging client, the server's own rate); the Open311 source has none
    for name in ("zhujian", "chengguan", "gongdian", "survey", "hotline"):
        assert sources[name]["floor_name"] and sources[name]["details"]["floor"]["rows"] > 0, name
    assert sources["hotline"]["details"]["floor"]["rows"] == sources["hotline"]["rows"]
    assert sources["app311"]["floor_name"] is None

    # the transform stage, against its floor (the compiled SQL run directly in DuckDB)
    assert stages["transform"]["rows"] > 0 and stages["transform"]["floor_name"] == "model SQL in DuckDB"
    assert stages["transform"]["details"]["fct_work_orders"] == stages["transform"]["rows"]
    assert stages["transform · incremental"]["rows"] == stages["transform"]["rows"]  # nothing new: same facts

    # the city went under the bench folder, and was not touched by the run (a hard-linked copy was ingested)
    city = data_dir / f"{results['seed']}-{SCALE}" / "city"
    assert (city / "manifest.json").exists()
    assert not list(city.rglob("_rejected"))
    assert not (tmp_path / "unused.duckdb").exists()
