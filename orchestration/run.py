"""Run the platform's assets outside the UI (the CLI's demo and run commands, and tests)."""

import os
import shutil
import socket
from collections.abc import Callable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from citizen_voice import settings
from orchestration.defs.partitions import TIMEZONE

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


# Tags on every run this CLI executes in-process: which machine and process runs it.
PID_TAG = "citizen_voice/pid"
HOST_TAG = "citizen_voice/host"


def _process_tags() -> dict[str, str]:
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """In-process runs of this machine whose process is gone (killed, or the machine restarted) stay
    'started' and keep their slot in the one-writer warehouse pool, so every later run would wait forever.
    Mark them failed and free their slots — what the daemon's run monitoring does for runs it launched."""
    host, released = socket.gethostname(), []
    active = dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING])
    for record in instance.get_run_records(filters=active):
        run = record.dagster_run
        pid = run.tags.get(PID_TAG)
        if run.tags.get(HOST_TAG) != host or pid is None or _alive(int(pid)):
            continue
        instance.report_run_failed(run, f"process {pid} on {host} is gone (killed or restarted): marked failed "
                                        "so the run can be retried")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        released.append(run.run_id)
    return released


QUIET_LOGGERS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


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


def latest_partition(job_name: str) -> str:
    """The job's newest complete partition: yesterday, last week or last month (Asia/Shanghai)."""
    from orchestration.definitions import defs

    job = defs().resolve_job_def(job_name)
    if job.partitions_def is None:
        raise ValueError(f"job {job_name} is not partitioned")
    return job.partitions_def.get_last_partition_key()


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
    release_dead_runs(instance)
    results = {}
    for key in partition_keys(job, first, last):
        result = job.execute_in_process(instance=instance, partition_key=key, asset_selection=keys,
                                        run_config=QUIET_LOGGERS if quiet else None, raise_on_error=False,
                                        tags={"citizen_voice/backfill": f"{first}..{last}", **_process_tags()})
        results[key] = result
        if on_done:
            on_done(key, result)
    return results


def run_pipeline(day: date | None = None, months: list[str] | None = None, week_of: date | None = None,
                 quiet: bool = True) -> list[tuple[str, str, dg.ExecuteInProcessResult]]:
    """The platform's own sequence, as the schedules run it: daily_update for `day` (default: yesterday in
    Asia/Shanghai), then monthly_bulletin for each month in `months` (YYYY-MM) and weekly_brief for the
    week holding `week_of`. Stops at the first failed run. Returns (job, partition key, result) per run."""
    from orchestration.definitions import defs

    definitions = defs()
    instance = prepare_dagster_home()
    release_dead_runs(instance)
    day = day or (datetime.now(ZoneInfo(TIMEZONE)).date() - timedelta(days=1))
    plan = [("daily_update", day.isoformat())]
    plan += [("monthly_bulletin", f"{month}-01") for month in months or []]
    if week_of is not None:
        plan.append(("weekly_brief", (week_of - timedelta(days=week_of.weekday())).isoformat()))
    done = []
    for job_name, key in plan:
        job = definitions.resolve_job_def(job_name)
        result = job.execute_in_process(instance=instance, partition_key=key, raise_on_error=False,
                                        run_config=QUIET_LOGGERS if quiet else None, tags=_process_tags())
        done.append((job_name, key, result))
        if not result.success:
            break
    return done
