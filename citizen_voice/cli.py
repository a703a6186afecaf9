"""The `citizen-voice` command line. Thin: each command calls into the platform's packages."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import typer

from citizen_voice import settings
from citizen_voice.indicators.cli import indicators_app
from citizen_voice.publish.cli import publish_app
from citizen_voice.quality.cli import quality_app
from citizen_voice.text.cli import classify_app

app = typer.Typer(help="citizen-voice (市民之声数据平台): 12345 hotline data platform.", no_args_is_help=True)
sandbox_app = typer.Typer(help="The sandbox city: generate it, serve its department systems.", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(indicators_app, name="indicators")
app.add_typer(classify_app, name="classify")
app.add_typer(publish_app, name="publish")
app.add_typer(quality_app, name="quality")

DEMO_DAYS = 92
DEMO_ORDERS_PER_DAY = 150
DEMO_SEED = 12345


def _sandbox_params(days: int, orders_per_day: int, seed: int, start: str | None):
    from simulator.generator import DEFAULT_START, SandboxParams

    return SandboxParams(days=days, orders_per_day=orders_per_day, seed=seed,
                         start=date.fromisoformat(start) if start else DEFAULT_START)


@sandbox_app.command("generate")
def sandbox_generate(
    days: int = typer.Option(DEMO_DAYS, help="Number of days of work orders."),
    orders_per_day: int = typer.Option(DEMO_ORDERS_PER_DAY, help="Typical orders per working day."),
    seed: int = typer.Option(DEMO_SEED, help="Random seed: the same seed gives the same city."),
    start: str = typer.Option(None, help="First day, YYYY-MM-DD (default 2026-08-01)."),
    out: Path = typer.Option(None, help="Sandbox folder (default $CV_SANDBOX or data/sandbox)."),
):
    """Generate the sandbox city's department systems and its ground-truth manifest."""
    from simulator.manifest import build_sandbox

    out = out or settings.sandbox_dir()
    manifest = build_sandbox(_sandbox_params(days, orders_per_day, seed, start), out)
    typer.echo(f"sandbox city written to {out}")
    typer.echo(json.dumps(manifest["counts"], ensure_ascii=False, indent=1))


@sandbox_app.command("serve")
def sandbox_serve(
    folder: Path = typer.Option(None, "--dir", help="Sandbox folder (default $CV_SANDBOX or data/sandbox)."),
    hotline_port: int = typer.Option(settings.SANDBOX_HOTLINE_PORT),
    open311_port: int = typer.Option(settings.SANDBOX_OPEN311_PORT),
    sql_url: str = typer.Option(None, help="Also publish 住建局's database to this PostgreSQL URL."),
):
    """Serve the sandbox's department systems on 127.0.0.1 until interrupted."""
    from simulator.servers import SandboxServers

    folder = folder or settings.sandbox_dir()
    if not (folder / "manifest.json").exists():
        raise typer.BadParameter(f"no sandbox in {folder}: run `citizen-voice sandbox generate` first")
    if sql_url:
        from simulator.sqlsync import copy_sqlite_to_postgres

        counts = copy_sqlite_to_postgres(folder / "systems" / "zhujian.sqlite", sql_url)
        typer.echo(f"住建局 database copied to PostgreSQL: {counts}")
    with SandboxServers(folder, hotline_port=hotline_port, open311_port=open311_port) as servers:
        typer.echo(f"12345 work-order API  {servers.hotline_url}/api/v1/orders")
        typer.echo(f"Open311 GeoReport v2  {servers.open311_url}/requests.json")
        typer.echo(f"住建局 database        {folder / 'systems' / 'zhujian.sqlite'}")
        typer.echo(f"file drops            {folder / 'drops'}  survey exports {folder / 'exports' / 'survey'}")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


@sandbox_app.command("seeds")
def sandbox_seeds():
    """Rewrite the dbt reference seeds from the sandbox city's code lists."""
    from simulator.reference import write_seeds

    for path in write_seeds(settings.dbt_project_dir() / "seeds"):
        typer.echo(path)


@app.command()
def calendar():
    """Rewrite the working-day calendar seed (holidays and 调休) from the chinese-calendar package."""
    from citizen_voice.workdays import write_calendar_seed

    typer.echo(write_calendar_seed(settings.dbt_project_dir() / "seeds" / "calendar"))


@app.command()
def prepare():
    """Prepare the dbt manifest (dbt parse) and the project-local Dagster home."""
    from orchestration.defs.warehouse import dbt_executable
    from orchestration.run import prepare_dagster_home

    project = str(settings.dbt_project_dir())
    subprocess.run([dbt_executable(), "parse", "--quiet", "--project-dir", project, "--profiles-dir", project],
                   check=True)
    prepare_dagster_home()
    typer.echo(f"dbt manifest ready; DAGSTER_HOME={settings.dagster_home()}")


@app.command()
def ingest(source: str = typer.Argument(..., help="A source name from ingestion/sources.yaml.")):
    """Load one registered department system into the warehouse (standalone, without Dagster)."""
    from ingestion.pipeline import run as run_source
    from ingestion.registry import load_registry

    names = [entry.name for entry in load_registry().sources]
    if source not in names:
        raise typer.BadParameter(f"unknown source {source!r}; known: {', '.join(names)}")
    record = run_source(source)
    typer.echo(f"{source}: load {record['load_id']} received {record['received']:,}, loaded {record['loaded']:,}, "
               f"quarantined {record['quarantined']:,}, rejected units {record['rejected_units']} "
               f"in {record['seconds']} s")
    if not record["reconciles"]:
        typer.echo("counts do not reconcile: received != loaded + quarantined", err=True)
        raise typer.Exit(2)


@app.command()
def run(
    select: str = typer.Option(None, help="Dagster asset selection, e.g. 'group:text'."),
    stage: list[str] = typer.Option(None, help="A stage to run (repeatable): ingest, transform, quality, text, "
                                               "indicators, publish. Default: everything in the job."),
    job: str = typer.Option("daily_update", help="daily_update, weekly_brief or monthly_bulletin."),
    first: str = typer.Option(None, "--from", help="First day (YYYY-MM-DD) or month (YYYY-MM) of a range "
                                                   "(default: the job's latest complete day/week/month)."),
    last: str = typer.Option(None, "--to", help="Last day or month of the range (default: --from)."),
):
    """Run a job in this process, as its schedule would: everything or some stages, for its latest period
    or a date range (a backfill: oldest first, idempotent). Exit code 0: all runs succeeded; 1: a run
    failed; 2: bad arguments."""
    from orchestration.run import latest_partition, run_partitions, stage_selection

    try:
        selection = " or ".join(f"({part})" for part in (select, stage_selection(stage or [])) if part) or None
        if first is None and last is not None:
            raise ValueError("--to needs --from")
        first = first or latest_partition(job)
        _run_range(run_partitions, job, first, last or first, selection)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _run_range(run_partitions, job: str, first: str, last: str, selection: str | None) -> None:
    from orchestration.run import partition_keys

    failed: list[str] = []

    def done(key, result):
        mark = "ok" if result.success else "FAILED"
        bar.update(1)
        typer.echo(f"  {key}: {mark} (run {result.run_id[:8]})")
        if not result.success:
            failed.append(key)

    from orchestration.definitions import defs

    total = len(partition_keys(defs().resolve_job_def(job), first, last))
    with typer.progressbar(length=total, label=f"{job} {first}..{last}") as bar:
        run_partitions(job, first, last, selection, on_done=done)
    if failed:
        typer.echo(f"{len(failed)} of {total} partitions failed: {', '.join(failed)}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{total} partitions of {job} succeeded")


@app.command()
def backfill(
    job: str = typer.Argument(..., help="daily_update or monthly_bulletin"),
    first: str = typer.Option(..., "--from", help="First day (YYYY-MM-DD) or month (YYYY-MM)."),
    last: str = typer.Option(..., "--to", help="Last day or month."),
    stage: list[str] = typer.Option(None, help="Only these stages (repeatable)."),
):
    """Run a partitioned job over a past range, one partition after another (idempotent: a partition
    run again gives the same tables). Exit code 0: all succeeded; 1: some failed; 2: bad arguments."""
    from orchestration.run import run_partitions, stage_selection

    try:
        _run_range(run_partitions, job, first, last, stage_selection(stage or []))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def bulletin(period: str = typer.Option(..., help="A month (YYYY-MM) or, for the weekly brief, an ISO week "
                                                  "(YYYY-Www, e.g. 2026-W42).")):
    """Publish the 市民之声 bulletin for a period from the warehouse: HTML and PDF under
    <published>/bulletins/<period>/, privacy-gated."""
    from citizen_voice import warehouse
    from citizen_voice.bulletin.render import publish_bulletin

    try:
        with warehouse.connect(read_only=True) as con:
            done = publish_bulletin(con, period, settings.published_dir() / "bulletins")
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(done["html"])
    typer.echo(done["pdf"])


@app.command()
def status():
    """Freshness of each source, last loads with counts, failed checks, recent runs, next scheduled runs
    and recent alerts. Exit code 0: healthy; 1: something needs attention; 3: the warehouse is unreadable."""
    from citizen_voice.ops.status import collect, stale_after

    report = collect()
    typer.echo(status_text(report, stale_after()))
    if report.warehouse_error and not report.sources:
        raise typer.Exit(3)
    if report.problems():
        raise typer.Exit(1)


def _when(value) -> str:
    """A time in the platform's zone (Asia/Shanghai), whatever the server's own zone is."""
    from zoneinfo import ZoneInfo

    return value.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M") if value else "never"


def status_text(report, stale_limit) -> str:
    lines = [f"citizen-voice status at {_when(report.now)}", "", "sources (last load)"]
    if report.warehouse_error:
        lines.append(f"  ! {report.warehouse_error}")
    for s in report.sources:
        flag = "STALE" if s.is_stale(report.now, stale_limit) else "fresh"
        lines.append(f"  {s.source:<10} {flag:<5} {_when(s.last_load_at):<16} received {s.received:>9,}  loaded "
                     f"{s.loaded:>9,}  quarantined {s.quarantined:>6,}  rejected files {s.rejected_units}"
                     f"{'' if s.reconciles else '  DOES NOT RECONCILE'}")
    lines += ["", "failed checks (latest evaluation)"]
    lines += [f"  {c['asset']}:{c['check']}  {c['severity']}{' blocking' if c['blocking'] else ''}  {_when(c['at'])}"
              for c in report.failed_checks] or ["  none"]
    lines += ["", "recent runs"]
    lines += [f"  {r['status']:<9} {r['job']:<28} {_when(r['started'])}  {r['run_id'][:8]}"
              for r in report.recent_runs] or ["  none"]
    lines += ["", "next scheduled runs"]
    lines += [f"  {n['schedule']:<28} {_when(n['next'])}  ({n['cron']} {n['timezone']}, {n['default_status'].lower()})"
              for n in report.next_runs] or ["  none"]
    lines += ["", "recent alerts"]
    lines += [f"  #{a['alert_id']} {a['raised_at']} {a['kind']} {a['job'] or ''}: {a['error'].splitlines()[0][:100]}"
              for a in report.alerts] or ["  none"]
    problems = report.problems()
    lines += ["", f"{len(problems)} problem(s)" + (": " + "; ".join(problems[:5]) if problems else ": all healthy")]
    return "\n".join(lines)


@app.command()
def demo(
    days: int = typer.Option(DEMO_DAYS, help="Days of history in the sandbox city."),
    orders_per_day: int = typer.Option(DEMO_ORDERS_PER_DAY, help="Typical orders per working day."),
    seed: int = typer.Option(DEMO_SEED, help="Random seed of the sandbox city."),
):
    """Generate the sandbox city (if needed), run the whole pipeline on a fresh warehouse, and
    print what it produced."""
    from citizen_voice.demo import run_demo

    started = time.perf_counter()
    report = run_demo(_sandbox_params(days, orders_per_day, seed, None), echo=typer.echo)
    report["seconds"] = round(time.perf_counter() - started, 1)
    typer.echo(report_text(report))
    if not report["success"]:
        raise typer.Exit(1)


def report_text(report: dict) -> str:
    lines = ["", "=== citizen-voice demo ===",
             f"sandbox city      {report['sandbox_dir']}  ({report['sandbox']['work_orders']:,} work orders, "
             f"{report['sandbox']['events']:,} events, {sum(report['sandbox']['faults_by_type'].values())} injected faults)",
             "ingestion         source       received     loaded  quarantined  rejected files"]
    for source, received, loaded, quarantined, rejected, reconciles in report["loads"]:
        lines.append(f"  {source:<26} {received:>10,} {loaded:>10,} {quarantined:>12,} {rejected:>15}"
                     f"{'' if reconciles else '  COUNTS DO NOT RECONCILE'}")
    lines.append(f"warehouse         {report['warehouse']}")
    for table, count in report["tables"].items():
        lines.append(f"  {table:<40} {count:>10,} rows")
    lines.append("published")
    lines += [f"  {what:<20} {where}" for what, where in report["published"]]
    lines.append(f"Dagster runs      DAGSTER_HOME={report['dagster_home']} (browse with `make ui`)")
    lines.append(f"finished in {report['seconds']} s: {'success' if report['success'] else 'FAILED'}")
    return "\n".join(lines)


def main() -> None:  # pragma: no cover
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()



