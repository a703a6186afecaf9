"""What an operator asks first in the morning: is every source fresh, did the last loads reconcile,
which checks fail, what ran, what runs next, which alerts were raised.

Each part is a plain function over its own store (the warehouse's ops.load_log, the Dagster instance,
the alert records), so `citizen-voice status` and tests can use them separately.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb

from citizen_voice import settings

DEFAULT_STALE_HOURS = 26.0  # a daily source that missed one morning load


def stale_after() -> timedelta:
    return timedelta(hours=float(os.environ.get("CV_STALE_HOURS", DEFAULT_STALE_HOURS)))


@dataclass
class SourceStatus:
    source: str
    last_load_at: datetime | None
    received: int = 0
    loaded: int = 0
    quarantined: int = 0
    rejected_units: int = 0
    reconciles: bool = True
    loads_last_day: int = 0

    def age(self, now: datetime) -> timedelta | None:
        return now - self.last_load_at if self.last_load_at else None

    def is_stale(self, now: datetime, limit: timedelta) -> bool:
        age = self.age(now)
        return age is None or age > limit


@dataclass
class Status:
    now: datetime
    sources: list[SourceStatus] = field(default_factory=list)
    warehouse_error: str | None = None
    failed_checks: list[dict] = field(default_factory=list)
    recent_runs: list[dict] = field(default_factory=list)
    next_runs: list[dict] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)

    def problems(self) -> list[str]:
        limit = stale_after()
        found = [f"warehouse: {self.warehouse_error}"] if self.warehouse_error else []
        found += [f"source {s.source} is stale (last load {s.last_load_at or 'never'})"
                  for s in self.sources if s.is_stale(self.now, limit)]
        found += [f"source {s.source}: last load does not reconcile" for s in self.sources if not s.reconciles]
        found += [f"check {c['asset']}:{c['check']} failed" for c in self.failed_checks
                  if c["severity"] == "ERROR" or c["blocking"]]
        return found


def source_status(registered: list[str], con: duckdb.DuckDBPyConnection, now: datetime) -> list[SourceStatus]:
    """The last load of every registered source from ops.load_log (a source never loaded is listed too)."""
    rows = con.execute("""
        select source, finished_at, received, loaded, quarantined, rejected_units, reconciles,
               count(*) filter (where finished_at >= ?) over (partition by source) as loads_last_day
        from ops.load_log
        qualify row_number() over (partition by source order by finished_at desc) = 1
    """, [now - timedelta(days=1)]).fetchall()
    last = {row[0]: row for row in rows}
    result = []
    for name in registered:
        row = last.get(name)
        if row is None:
            result.append(SourceStatus(source=name, last_load_at=None))
            continue
        finished = row[1] if row[1].tzinfo else row[1].replace(tzinfo=UTC)
        result.append(SourceStatus(source=name, last_load_at=finished, received=row[2], loaded=row[3],
                                   quarantined=row[4], rejected_units=row[5], reconciles=row[6],
                                   loads_last_day=row[7]))
    return result


def failed_checks(instance) -> list[dict]:
    """Asset checks whose latest evaluation failed."""
    import dagster as dg

    records = instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION), limit=5000, ascending=False)
    latest: dict[tuple[str, str], dict] = {}
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        key = (evaluation.asset_key.to_user_string(), evaluation.check_name)
        if key not in latest:
            latest[key] = {"asset": key[0], "check": key[1], "passed": evaluation.passed,
                           "severity": evaluation.severity.value, "blocking": bool(evaluation.blocking),
                           "run_id": record.event_log_entry.run_id,
                           "at": datetime.fromtimestamp(record.event_log_entry.timestamp, UTC)}
    return [c for c in latest.values() if not c["passed"]]


def recent_runs(instance, limit: int = 8) -> list[dict]:
    runs = instance.get_run_records(limit=limit)
    return [{"run_id": r.dagster_run.run_id, "job": r.dagster_run.job_name, "status": r.dagster_run.status.value,
             "started": datetime.fromtimestamp(r.start_time, UTC) if r.start_time else None,
             "ended": datetime.fromtimestamp(r.end_time, UTC) if r.end_time else None} for r in runs]


def next_runs(schedules, now: datetime) -> list[dict]:
    """The next tick of each schedule (cron evaluated in the schedule's own time zone)."""
    # Dagster's own cron evaluation (a private module: the Dagster version is pinned)
    from dagster._utils.schedules import cron_string_iterator

    result = []
    for schedule in schedules:
        tick = next(cron_string_iterator(now.timestamp(), schedule.cron_schedule, schedule.execution_timezone))
        result.append({"schedule": schedule.name, "job": schedule.job_name, "cron": schedule.cron_schedule,
                       "timezone": schedule.execution_timezone, "next": tick,
                       "default_status": schedule.default_status.value})
    return sorted(result, key=lambda r: r["next"])


def collect(now: datetime | None = None) -> Status:
    """Everything `citizen-voice status` shows, read without writing anything."""
    import dagster as dg

    from citizen_voice import warehouse
    from citizen_voice.ops.alerts import AlertStore
    from ingestion.registry import load_registry
    from orchestration.definitions import defs

    now = now or datetime.now(UTC)
    status = Status(now=now)
    registered = [entry.name for entry in load_registry().sources]
    if not settings.warehouse_path().exists():
        status.warehouse_error = f"no warehouse at {settings.warehouse_path()} yet (run the pipeline first)"
        status.sources = [SourceStatus(source=name, last_load_at=None) for name in registered]
    else:
        try:
            with warehouse.connect(read_only=True) as con:
                status.sources = source_status(registered, con, now)
        except duckdb.Error as exc:  # e.g. a pipeline run holds the write lock right now
            status.warehouse_error = f"cannot read {settings.warehouse_path()}: {exc}".splitlines()[0]
    home = settings.dagster_home()
    if home.joinpath("dagster.yaml").exists():
        with dg.DagsterInstance.from_config(str(home)) as instance:
            status.failed_checks = failed_checks(instance)
            status.recent_runs = recent_runs(instance)
    definitions = defs()
    status.next_runs = next_runs([definitions.resolve_schedule_def(s.name) for s in definitions.schedules or []], now)
    status.alerts = AlertStore().recent(5)
    return status
