"""Run the platform's assets outside the UI (the CLI's demo and run commands, and tests)."""

import os
import shutil
from collections.abc import Callable

import dagster as dg

from citizen_voice import settings

INSTANCE_FILES = {"local": "dagster.yaml", "postgres": "deploy/dagster.postgres.yaml"}


def instance_file() -> str:
    """The repository's instance configuration chosen by CV_DAGSTER_INSTANCE (local or postgres)."""
    choice = os.environ.get("CV_DAGSTER_INSTANCE", "local")
    if choice not in INSTANCE_FILES:
        raise ValueError(f"CV_DAGSTER_INSTANCE must be one of {', '.join(INSTANCE_FILES)}, not {choice!r}")
    if choice == "postgres" and not os.environ.get("DAGSTER_PG_URL"):
        raise ValueError("CV_DAGSTER_INSTANCE=postgres needs DAGSTER_PG_URL (the run and event storage database)")
    return INSTANCE_FILES[choice]


def prepare_dagster_home() -> dg.DagsterInstance:
    """Use the project-local DAGSTER_HOME, with the chosen instance configuration in it."""
    home = settings.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(settings.project_root() / instance_file(), home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


QUIET_LOGGERS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def materialize_all(selection: str | None = None, run_config: dict | None = None,
                    quiet: bool = False) -> dg.ExecuteInProcessResult:
    """Materialize every asset (or an asset selection string) in one in-process run: with a single
    DuckDB writer a multiprocess executor would only add start-up cost."""
    from orchestration.definitions import defs

    definitions = defs()
    job = definitions.resolve_implicit_global_asset_job_def()
    if selection:
        keys = dg.AssetSelection.from_string(selection).resolve(definitions.resolve_asset_graph())
        job = definitions.resolve_implicit_job_def_def_for_assets(list(keys))
    instance = prepare_dagster_home()
    run_config = {**(QUIET_LOGGERS if quiet else {}), **(run_config or {})}
    return job.execute_in_process(instance=instance, run_config=run_config,
                                  asset_selection=list(keys) if selection else None, raise_on_error=False)


# Stages an operator can run alone (asset selection strings over the groups).
STAGES = {
    "ingest": "group:ingestion",
    "transform": "group:reference or group:staging or group:intermediate or group:marts",
    "quality": "group:quality",
    "text": "group:text",
    "indicators": "group:indicators",
    "publish": "group:publish",
}


def stage_selection(stages: list[str]) -> str | None:
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage {', '.join(unknown)}; stages: {', '.join(STAGES)}")
    return " or ".join(f"({STAGES[s]})" for s in stages) or None


def partition_keys(job: dg.JobDefinition, first: str, last: str) -> list[str]:
    """The job's partition keys from `first` to `last` inclusive (days YYYY-MM-DD, months YYYY-MM)."""
    partitions = job.partitions_def
    if partitions is None:
        raise ValueError(f"job {job.name} is not partitioned: run it without a date range")
    def normal(value: str) -> str:
        return f"{value}-01" if len(value) == 7 else value
    keys = partitions.get_partition_keys()
    first, last = normal(first), normal(last)
    unknown = [v for v in (first, last) if v not in keys]
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not a partition of {job.name} ({keys[0]} … {keys[-1]})")
    chosen = keys[keys.index(first): keys.index(last) + 1]
    if not chosen:
        raise ValueError(f"empty range: {first} is after {last}")
    return chosen


def run_partitions(job_name: str, first: str, last: str, selection: str | None = None, quiet: bool = True,
                   on_done: Callable[[str, dg.ExecuteInProcessResult], None] | None = None
                   ) -> dict[str, dg.ExecuteInProcessResult]:
    """Run a partitioned job for each partition of a range, oldest first, in this process (a CLI
    backfill). Every asset is idempotent per partition, so running a range again changes nothing."""
    from orchestration.definitions import defs

    definitions = defs()
    job = definitions.resolve_job_def(job_name)
    keys = None
    if selection:
        keys = list(dg.AssetSelection.from_string(selection).resolve(definitions.resolve_asset_graph())
                    & set(job.asset_layer.asset_graph.get_all_asset_keys()))
        if not keys:
            raise ValueError(f"the selection {selection!r} has no assets in job {job_name}")
    instance = prepare_dagster_home()
    results = {}
    for key in partition_keys(job, first, last):
        result = job.execute_in_process(instance=instance, partition_key=key, asset_selection=keys,
                                        run_config=QUIET_LOGGERS if quiet else None, raise_on_error=False,
                                        tags={"citizen_voice/backfill": f"{first}..{last}"})
        results[key] = result
        if on_done:
            on_done(key, result)
    return results
