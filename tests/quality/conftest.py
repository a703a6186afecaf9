"""Fixtures for the data-quality tests: the pipeline city run through the whole Dagster graph (with
the quality assets and checks), and a helper to build small cities through the plain-Python pipeline."""

from __future__ import annotations

import importlib.util
import os
import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from citizen_voice import settings

ENV_KEYS = ("CV_SANDBOX", "CV_WAREHOUSE", "CV_PUBLISHED", "DAGSTER_HOME", "CV_HOTLINE_URL", "CV_OPEN311_URL")


def quality_definitions() -> dg.Definitions:
    """The platform's definitions with the quality domain, wired as orchestration/definitions.py wires a
    domain (until the lead adds it there: then they are used as they are)."""
    import orchestration.definitions as platform
    from orchestration.defs import indicators, ingestion, operations, publish, quality, text, warehouse

    definitions = platform.defs()
    graph = definitions.resolve_asset_graph()
    quarantine = dg.AssetKey(["quality", "quarantine"])
    if quarantine in graph.get_all_asset_keys() and graph.get(quarantine).is_materializable:
        return definitions
    domains = dg.Definitions.merge(ingestion.build_defs(), warehouse.build_defs(), quality.build_defs(),
                                   text.build_defs(), indicators.build_defs(), publish.build_defs())
    domains = dg.Definitions(
        assets=dg.map_asset_specs(platform._owned, domains.assets or []), asset_checks=domains.asset_checks,
        jobs=domains.jobs, schedules=domains.schedules, sensors=domains.sensors, resources=domains.resources)
    return dg.Definitions.merge(domains, operations.build_defs(domains))


class PlatformEnv:
    """Set the platform's locations for a block, restoring the environment afterwards."""

    def __init__(self, **values: str):
        self.values = values
        self.saved = {}

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in {*ENV_KEYS, *self.values}}
        os.environ.update(self.values)
        return self

    def __exit__(self, *exc):
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_job(definitions: dg.Definitions, job_name: str, partition_key: str | None = None,
            selection: dg.AssetSelection | None = None):
    """One of the platform's jobs (or a selection of it) in process, for one partition."""
    from orchestration.run import QUIET_LOGGERS, prepare_dagster_home

    instance = prepare_dagster_home()
    if selection is not None:
        partitions = definitions.resolve_job_def(job_name).partitions_def
        definitions = dg.Definitions.merge(definitions, dg.Definitions(jobs=[dg.define_asset_job(
            "quality_test_selection", selection=selection, partitions_def=partitions)]))
        job_name = "quality_test_selection"
    return definitions.resolve_job_def(job_name).execute_in_process(
        instance=instance, partition_key=partition_key, run_config=QUIET_LOGGERS, raise_on_error=False)


@pytest.fixture(scope="session")
def quality_run(tmp_path_factory, pipeline_city, dbt_manifest):
    """The pipeline city run as the schedules run it (daily_update, then monthly_bulletin per month),
    with the quality domain: ingestion → staging → quarantine → marts → indicators → bulletin.
    Returns ({(job, partition): result}, work folder, sandbox copy)."""
    from citizen_voice.demo import demo_periods
    from simulator.servers import SandboxServers

    shared, manifest = pipeline_city
    work = tmp_path_factory.mktemp("quality_run")
    folder = work / "sandbox"
    shutil.copytree(shared, folder)
    day, months, _ = demo_periods(date.fromisoformat(manifest["params"]["start"]),
                                  date.fromisoformat(manifest["params"]["end"]))
    definitions = quality_definitions()
    results = {}
    with PlatformEnv(CV_SANDBOX=str(folder), CV_WAREHOUSE=str(work / "warehouse.duckdb"),
                     CV_PUBLISHED=str(work / "published"), DAGSTER_HOME=str(work / "dagster_home")):
        with SandboxServers(folder, hotline_port=0, open311_port=0, hotline_token=settings.hotline_token()) as servers:
            os.environ["CV_HOTLINE_URL"] = servers.hotline_url
            os.environ["CV_OPEN311_URL"] = servers.open311_url
            for job, key in [("daily_update", day.isoformat()), *[("monthly_bulletin", f"{m}-01") for m in months]]:
                results[(job, key)] = run_job(definitions, job, key)
                if not results[(job, key)].success:
                    break
    return results, work, folder


def bulletin_key(definitions: dg.Definitions) -> dg.AssetKey:
    return next(k for k in definitions.resolve_asset_graph().get_all_asset_keys()
                if k.path[-1] == "bulletin_monthly")


def _warehouse_helpers():
    path = Path(__file__).resolve().parent.parent / "warehouse" / "conftest.py"
    spec = importlib.util.spec_from_file_location("warehouse_test_helpers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def build_city():
    """build_city(work, params) -> {"city", "truth", "sandbox", "warehouse", "loads", "build"}: a city
    generated, ingested and built through the plain-Python pipeline (staging → quarantine → marts → scorecard)."""
    helpers = _warehouse_helpers()

    def build(work: Path, params) -> dict:
        from citizen_voice.quality.pipeline import build_with_quarantine

        built = helpers.build_and_ingest(work, params)
        built["build"] = build_with_quarantine(built["warehouse"], work)
        return built

    return build
