"""`citizen-voice quality …`: the data-quality report and an on-demand check of every suite."""

from __future__ import annotations

import re

import typer

quality_app = typer.Typer(help="Data quality: suites, quarantine, scorecard and the department report.",
                          no_args_is_help=True)


@quality_app.command("report")
def report(
    period: str = typer.Option(..., help="Month, YYYY-MM."),
    department: str = typer.Option(None, help="Unit code (e.g. ZJJ); default: every unit."),
):
    """Write the Chinese data-quality report (HTML) under CV_PUBLISHED/quality/<period>/."""
    from citizen_voice import warehouse
    from citizen_voice.quality.report import write_report

    if not re.fullmatch(r"\d{4}-\d{2}", period):
        raise typer.BadParameter("period must be YYYY-MM", param_hint="--period")
    with warehouse.connect(read_only=True) as con:
        try:
            path = write_report(con, period, department)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from error
    typer.echo(f"data-quality report written to {path}")


@quality_app.command("check")
def check(write: bool = typer.Option(False, help="Also rewrite the quarantine and the scorecard.")):
    """Run every suite (raw layer, marts, indicators) against the warehouse and print the failures.
    Exits 1 when a mart or indicator table fails a critical expectation or a suite cannot run."""
    import time

    from citizen_voice import warehouse
    from citizen_voice.quality import quarantine, scorecard
    from expectations import marts
    from expectations.core import ValueSets
    from expectations.runner import run_suites

    started = time.perf_counter()
    with warehouse.connect(read_only=True) as con:
        raw_run = quarantine.evaluate(con)
        values = ValueSets(con)
        keys = [k for k in [*marts.MART_SUITES, *marts.indicator_suites(values)]
                if values.table_exists(k[0], k[1])]
        published = run_suites(con, [suite for k in keys for suite in marts.suites_for(k, values)])
    if write:
        with warehouse.connect() as con:
            quarantine.write(con, raw_run)
        scorecard.run_scorecard()
    blocking = False
    published_ids = {id(r) for r in published}
    for result in [*raw_run.suite_results, *published]:
        failed = result.failed()
        status = "error" if result.errors else ("fail" if failed else "ok")
        typer.echo(f"{result.suite.name:<34} {result.rows:>9,} records  {status}")
        for r in failed:
            typer.echo(f"    {r.check.severity:<8} {r.check.name}: {r.unexpected_count:,}")
        for error in result.errors:
            typer.echo(f"    error    {error}")
        if id(result) in published_ids and result.failed("critical"):
            blocking = True
        if result.errors:
            blocking = True
    totals = raw_run.totals()
    typer.echo(f"received {totals['received']:,} = clean {totals['clean']:,} + quarantined {totals['quarantined']:,}; "
               f"{time.perf_counter() - started:.1f} s")
    raise typer.Exit(1 if blocking else 0)
