"""Operations: the jobs and schedules that run the platform every day, and alerts on failed runs and
failed blocking checks."""

from datetime import timedelta

import dagster as dg

from citizen_voice.memory import release_unused
from citizen_voice.ops.alerts import Alert, raise_alert, run_link
from orchestration.defs.partitions import DAILY, MONTHLY, WEEKLY

DAILY_JOB = "daily_update"
WEEKLY_JOB = "weekly_brief"
MONTHLY_JOB = "monthly_bulletin"


def failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """Names (asset:check) of the asset checks that did not pass in a run."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    failed = []
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if not evaluation.passed:
            blocking = " (blocking)" if evaluation.blocking else ""
            failed.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}{blocking}")
    return failed


def root_message(error) -> str:
    """The innermost cause of a serialized Dagster error: what actually went wrong, not the wrapper."""
    while error.cause is not None:
        error = error.cause
    return f"{error.cls_name}: {error.message.strip()}" if error.cls_name else error.message.strip()


def alert_for_failed_run(instance: dg.DagsterInstance, run: dg.DagsterRun, error: str) -> Alert:
    checks = failed_checks(instance, run.run_id)
    steps = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    step_errors = []
    for record in steps:
        event = record.event_log_entry.dagster_event
        data = event.event_specific_data
        message = root_message(data.error) if data and data.error else event.message
        step_errors.append(f"{event.step_key}: {message}")
    assets = sorted(key.to_user_string() for key in (run.asset_selection or []))
    return Alert(kind="check_failure" if any("(blocking)" in c for c in checks) else "run_failure",
                 error="\n".join(step_errors) or error, job=run.job_name, run_id=run.run_id,
                 assets=assets, checks=checks, link=run_link(run.run_id))


@dg.run_failure_sensor(name="alert_on_failure", default_status=dg.DefaultSensorStatus.RUNNING,
                       monitor_all_code_locations=False, minimum_interval_seconds=30,
                       description="Records an alert (and posts it to CV_ALERT_WEBHOOK_URL when set) for every "
                                   "failed run, naming the failed steps and blocking checks.")
def alert_on_failure(context: dg.RunFailureSensorContext):
    error = context.failure_event.message or "run failed"
    alert = alert_for_failed_run(context.instance, context.dagster_run, error)
    alert_id, delivery = raise_alert(alert)
    context.log.info(f"alert {alert_id} recorded for run {context.dagster_run.run_id}; webhook {delivery}")


@dg.success_hook(name="release_memory_after_step")
def release_memory_after_step(_context: dg.HookContext) -> None:
    """Steps of an in-process run share one process: hand back what the step freed before the next."""
    release_unused()


@dg.failure_hook(name="release_memory_after_failed_step")
def release_memory_after_failed_step(_context: dg.HookContext) -> None:
    release_unused()


RELEASE_MEMORY = {release_memory_after_step, release_memory_after_failed_step}
# Every step in this one process, also when the daemon launches the run: the warehouse has one writer, so
# parallel step processes gain nothing, and each would load the definitions again (≈ 9 s of imports).
JOB_OPTIONS = {"hooks": RELEASE_MEMORY, "executor_def": dg.in_process_executor}


def _keys_by_partitioning(domains: dg.Definitions) -> dict[str, list[dg.AssetKey]]:
    graph = domains.resolve_asset_graph()
    found: dict[str, list[dg.AssetKey]] = {DAILY_JOB: [], WEEKLY_JOB: [], MONTHLY_JOB: []}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.is_external:
            continue
        if node.partitions_def == MONTHLY:
            found[MONTHLY_JOB].append(key)
        elif node.partitions_def == WEEKLY:
            found[WEEKLY_JOB].append(key)
        elif node.partitions_def in (None, DAILY):
            found[DAILY_JOB].append(key)
        else:
            raise ValueError(f"{key.to_user_string()}: partitioned by neither day, week nor month")
    return {job: sorted(keys) for job, keys in found.items()}


def jobs_and_schedules(domains: dg.Definitions) -> tuple[list, list]:
    """daily_update: every unpartitioned or daily asset (load, transform, checks, text, daily indicators,
    publication of shares and the serving copy), at 06:00 Asia/Shanghai for the day just finished.
    monthly_bulletin: the monthly indicators, scores and the bulletin, on the 1st at 08:00 for the month
    just finished; weekly_brief: the weekly brief on Mondays at 08:00 for the week just finished. All on by
    default: each run goes through the one-writer warehouse pool."""
    keys = _keys_by_partitioning(domains)
    daily, monthly = keys[DAILY_JOB], keys[MONTHLY_JOB]
    daily_job = dg.define_asset_job(DAILY_JOB, selection=dg.AssetSelection.assets(*daily), **JOB_OPTIONS,
                                    description="The morning update: loads, warehouse, checks, text, daily "
                                                "indicators and publications.")
    monthly_job = dg.define_asset_job(MONTHLY_JOB, selection=dg.AssetSelection.assets(*monthly), **JOB_OPTIONS,
                                      description="Monthly indicators, scores, rankings and the 市民之声 bulletin.")
    has_daily_partitions = any(domains.resolve_asset_graph().get(k).partitions_def == DAILY for k in daily)
    if has_daily_partitions:
        daily_schedule = dg.build_schedule_from_partitioned_job(
            daily_job, hour_of_day=6, minute_of_hour=0, default_status=dg.DefaultScheduleStatus.RUNNING,
            name=f"{DAILY_JOB}_schedule")
    else:
        daily_schedule = dg.ScheduleDefinition(name=f"{DAILY_JOB}_schedule", job=daily_job, cron_schedule="0 6 * * *",
                                               execution_timezone=DAILY.timezone,
                                               default_status=dg.DefaultScheduleStatus.RUNNING)
    monthly_schedule = dg.build_schedule_from_partitioned_job(
        monthly_job, day_of_month=1, hour_of_day=8, minute_of_hour=0,
        default_status=dg.DefaultScheduleStatus.RUNNING, name=f"{MONTHLY_JOB}_schedule")
    jobs, schedules = [daily_job, monthly_job], [daily_schedule, monthly_schedule]
    if keys[WEEKLY_JOB]:
        weekly_job = dg.define_asset_job(WEEKLY_JOB, selection=dg.AssetSelection.assets(*keys[WEEKLY_JOB]),
                                         **JOB_OPTIONS,
                                         description="The weekly brief of the week just finished.")
        jobs.append(weekly_job)
        schedules.append(dg.build_schedule_from_partitioned_job(
            weekly_job, day_of_week=1, hour_of_day=8, minute_of_hour=0,
            default_status=dg.DefaultScheduleStatus.RUNNING, name=f"{WEEKLY_JOB}_schedule"))
    return jobs, schedules


# Published outputs must be renewed by the morning run (warn after 26 h, fail after 30 h) or, for the
# monthly ones, within the first days of the next month.
DAILY_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=30), warn_window=timedelta(hours=26))
MONTHLY_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=33), warn_window=timedelta(days=32))
PUBLISHED_GROUPS = ("publish",)


def with_freshness(spec: dg.AssetSpec) -> dg.AssetSpec:
    if spec.group_name not in PUBLISHED_GROUPS and spec.key.path[0] != "marts":
        return spec
    policy = MONTHLY_FRESHNESS if spec.partitions_def == MONTHLY else DAILY_FRESHNESS
    return spec.replace_attributes(freshness_policy=policy)


def build_defs(domains: dg.Definitions) -> dg.Definitions:
    jobs, schedules = jobs_and_schedules(domains)
    return dg.Definitions(jobs=jobs, schedules=schedules, sensors=[alert_on_failure])
