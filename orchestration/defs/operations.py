"""Operations: alerts on failed runs and failed blocking checks."""

import dagster as dg

from citizen_voice.ops.alerts import Alert, raise_alert, run_link


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


def build_defs() -> dg.Definitions:
    return dg.Definitions(sensors=[alert_on_failure])
