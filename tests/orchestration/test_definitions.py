"""The Dagster definitions load and connect the lineage from the department systems to the bulletin;
a snapshot of asset keys, groups, jobs, schedules and sensors catches unintended changes."""

import json
import os
from pathlib import Path

import dagster as dg
import pytest

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")


@pytest.fixture(scope="module")
def definitions(dbt_manifest):
    from orchestration.definitions import defs

    return defs()


@pytest.fixture(scope="module")
def asset_graph(definitions):
    return definitions.resolve_asset_graph()


def key(path: str) -> dg.AssetKey:
    return dg.AssetKey(path.split("/"))


def upstream_closure(graph, asset_key: dg.AssetKey) -> set[dg.AssetKey]:
    seen, todo = set(), [asset_key]
    while todo:
        for parent in graph.get(todo.pop()).parent_keys:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


def test_every_layer_is_present(asset_graph):
    keys = {k.to_user_string() for k in asset_graph.get_all_asset_keys()}
    for expected in ("raw_hotline/orders", "raw_hotline/events", "raw_zhujian/gd_main", "staging/stg_hotline__orders",
                     "intermediate/int_work_orders_unified", "marts/fct_work_orders", "reference/ref_districts",
                     "indicators/monthly", "text/hot_topics", "quality/quarantine",
                     "publish/bulletin_monthly", "publish/bulletin_weekly", "publish/serving_snapshot"):
        assert expected in keys


def test_lineage_runs_unbroken_from_sources_to_bulletin(asset_graph):
    upstream = upstream_closure(asset_graph, key("publish/bulletin_monthly"))
    for source in ("raw_hotline/orders", "raw_zhujian/gd_main", "raw_survey/visits", "quality/quarantine",
                   "marts/fct_work_orders", "indicators/monthly", "text/hot_topics", "text/early_warnings",
                   "quality/scorecard"):
        assert key(source) in upstream
    # the dlt assets themselves are roots: no placeholder upstream assets
    assert not asset_graph.get(key("raw_hotline/orders")).parent_keys


def test_groups_follow_layers(asset_graph):
    groups = {k.to_user_string(): asset_graph.get(k).group_name for k in asset_graph.get_all_asset_keys()}
    assert groups["raw_hotline/orders"] == "ingestion"
    assert groups["staging/stg_hotline__orders"] == "staging"
    assert groups["marts/fct_work_orders"] == "marts"
    assert groups["reference/ref_districts"] == "reference"
    assert groups["publish/bulletin_monthly"] == "publish"
    assert groups["text/hot_topics"] == "text"
    assert groups["quality/scorecard"] == "quality"


def test_dbt_tests_are_asset_checks(asset_graph):
    checks = {c.name for c in asset_graph.asset_check_keys}
    assert "unique_fct_work_orders_order_no" in checks


def test_every_warehouse_writer_shares_one_pool(asset_graph):
    from orchestration.defs import WAREHOUSE_POOL

    for asset_key in asset_graph.get_all_asset_keys():
        node = asset_graph.get(asset_key)
        assert node.pools == {WAREHOUSE_POOL}, asset_key


def test_every_asset_has_a_description_and_owner(asset_graph):
    for asset_key in asset_graph.get_all_asset_keys():
        node = asset_graph.get(asset_key)
        assert node.description, asset_key
        assert node.owners, asset_key


def _snapshot(definitions, asset_graph) -> dict:
    schedules = [definitions.resolve_schedule_def(s.name) for s in definitions.schedules]
    sensors = [definitions.resolve_sensor_def(s.name) for s in definitions.sensors]
    return {
        "assets": {k.to_user_string(): {"group": asset_graph.get(k).group_name,
                                        "partitions": type(asset_graph.get(k).partitions_def).__name__
                                        if asset_graph.get(k).partitions_def else None}
                   for k in sorted(asset_graph.get_all_asset_keys())},
        "jobs": sorted(j.name for j in definitions.jobs),
        "schedules": {s.name: {"job": s.job_name, "cron": s.cron_schedule, "timezone": s.execution_timezone,
                               "default": s.default_status.value} for s in schedules},
        "sensors": {s.name: s.default_status.value for s in sensors},
    }


def test_definitions_match_the_snapshot(definitions, asset_graph):
    """Regenerate after an intended change: CV_UPDATE_SNAPSHOT=1 pytest tests/orchestration."""
    current = _snapshot(definitions, asset_graph)
    if os.environ.get("CV_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(current, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    assert current == json.loads(SNAPSHOT.read_text(encoding="utf-8"))


def test_automation_is_on_by_default(definitions):
    schedules = [definitions.resolve_schedule_def(s.name) for s in definitions.schedules]
    assert {s.name: (s.cron_schedule, s.execution_timezone) for s in schedules} == {
        "daily_update_schedule": ("0 6 * * *", "Asia/Shanghai"),
        "weekly_brief_schedule": ("0 8 * * 1", "Asia/Shanghai"),
        "monthly_bulletin_schedule": ("0 8 1 * *", "Asia/Shanghai")}
    assert all(s.default_status == dg.DefaultScheduleStatus.RUNNING for s in schedules)
    sensors = [definitions.resolve_sensor_def(s.name) for s in definitions.sensors]
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors)
    assert {"chengguan_new_files", "gongdian_new_files", "survey_new_files", "alert_on_failure"} <= {
        s.name for s in sensors}


def test_every_job_runs_its_steps_in_one_process_and_hands_memory_back_after_each(definitions):
    """Also when the daemon launches it (the default executor would start a process per step, each loading
    the definitions again); in one process, each step's freed memory must not be carried on."""
    for job in (definitions.resolve_job_def(name) for name in ("daily_update", "weekly_brief", "monthly_bulletin")):
        assert job.executor_def.name == dg.in_process_executor.name
        assert {"release_memory_after_step", "release_memory_after_failed_step"} <= {h.name for h in job.hook_defs}


def test_the_dbt_resource_starts_dbt_without_asking_its_version_or_loading_its_adapter(definitions, monkeypatch,
                                                                                       tmp_path):
    """The dbt in this environment is the dbt-core package installed here: its version is read, not asked of
    a `dbt --version` subprocess; no adapter is loaded in this process (the assets fetch no row counts)."""
    import subprocess
    import sys
    from importlib.metadata import version

    from orchestration.defs.warehouse import WarehouseDbtResource

    resource = definitions.resources["dbt"]
    assert isinstance(resource, WarehouseDbtResource)
    assert Path(resource.dbt_executable).parent == Path(sys.executable).parent

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"a subprocess was started: {args}")

    monkeypatch.setattr(subprocess, "check_output", no_subprocess)
    assert str(resource._cli_version) == version("dbt-core")
    assert resource._initialize_dbt_core_adapter(["build"]) is None
    monkeypatch.undo()
    other_dbt = tmp_path / "dbt"  # a dbt outside this environment is asked, as dagster-dbt does
    other_dbt.write_text("#!/bin/sh\necho 'Core:'\necho '  - installed: 1.9.4'\n")
    other_dbt.chmod(0o755)
    elsewhere = WarehouseDbtResource(project_dir=resource.project_dir, dbt_executable=str(other_dbt))
    assert str(elsewhere._cli_version) == "1.9.4"
