"""Run the platform's assets outside the UI (the CLI's demo and run commands, and tests)."""

import os
import shutil

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
