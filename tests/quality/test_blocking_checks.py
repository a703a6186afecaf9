"""A failing blocking check stops the bulletin: the monthly bulletin is built from marts.fct_work_orders;
when that table fails its suite (ERROR severity) the bulletin does not materialize, and with the
table intact it does."""

from __future__ import annotations

import shutil

import dagster as dg
import duckdb
import pytest
from conftest import PlatformEnv, bulletin_key, quality_definitions, run_job

FACT = dg.AssetKey(["marts", "fct_work_orders"])
FACT_SUITE = dg.AssetCheckKey(FACT, "suite_fct_work_orders")


@pytest.fixture(scope="module")
def runs(quality_run, tmp_path_factory):
    results, work, folder = quality_run
    definitions = quality_definitions()
    graph = definitions.resolve_asset_graph()
    bulletin = bulletin_key(definitions)
    assert FACT in graph.get(bulletin).parent_keys and FACT_SUITE in graph.asset_check_keys
    month = sorted(key for job, key in results if job == "monthly_bulletin")[-1]
    selection = dg.AssetSelection.assets(bulletin) | dg.AssetSelection.checks(FACT_SUITE)
    outcomes = {}
    for case in ("intact", "spoiled"):
        copy = tmp_path_factory.mktemp(f"blocking_{case}")
        shutil.copyfile(work / "warehouse.duckdb", copy / "warehouse.duckdb")
        if case == "spoiled":  # one work order twice: its number is no longer unique
            with duckdb.connect(str(copy / "warehouse.duckdb")) as con:
                con.execute("insert into marts.fct_work_orders select * from marts.fct_work_orders limit 1")
        with PlatformEnv(CV_SANDBOX=str(folder), CV_WAREHOUSE=str(copy / "warehouse.duckdb"),
                         CV_PUBLISHED=str(copy / "published"), DAGSTER_HOME=str(copy / "dagster_home")):
            outcomes[case] = run_job(definitions, "monthly_bulletin", month, selection)
    return bulletin, outcomes


def _materialized(result) -> set[dg.AssetKey]:
    return {e.asset_key for e in result.get_asset_materialization_events()}


def _fact_checks(result) -> list:
    return [e.event_specific_data for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.event_specific_data.asset_key == FACT]


def test_intact_facts_pass_and_the_bulletin_is_built(runs):
    bulletin, outcomes = runs
    checks = _fact_checks(outcomes["intact"])
    assert checks and all(c.passed for c in checks)
    assert bulletin in _materialized(outcomes["intact"])


def test_failing_blocking_check_stops_the_bulletin(runs):
    bulletin, outcomes = runs
    failed = [c for c in _fact_checks(outcomes["spoiled"]) if not c.passed]
    assert failed and failed[0].severity == dg.AssetCheckSeverity.ERROR and failed[0].blocking
    assert failed[0].metadata["failing_records"].value >= 2  # both copies of the repeated order
    assert bulletin not in _materialized(outcomes["spoiled"])
