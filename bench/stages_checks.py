"""The `checks` stage: the data-quality suites on the ingested and transformed warehouse.

Measured in its own process (tasks `checks_suites` / `checks_frames`, run by bench.stage): the
raw-layer suites with the quarantine written (Great Expectations over dataframes read from DuckDB),
then the mart and indicator suites. The floor
is the same frames read from DuckDB into pandas without validating them: what any dataframe-based
check pays before checking anything.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.harness import Context, Floor, Stage, stage
from bench.tasks import task


@stage("checks")
def checks(ctx: Context) -> list[Stage]:
    if not ctx.warehouse.exists():
        return [Stage(name="checks", notes="skipped: no warehouse (run the ingest and transform stages first)")]
    args = {"warehouse": str(ctx.warehouse)}
    full = ctx.measure("checks_suites", args, label="checks")
    if not full.ok:
        return [Stage(name="checks", peak_rss_mb=full.peak_rss_mb, notes=f"failed: {full.error[:300]}")]
    floor_run = ctx.measure("checks_frames", args, label="floor-checks")
    floor = Floor(name="the suites' frames read into pandas", seconds=floor_run.seconds, rows=floor_run.rows,
                  peak_rss_mb=floor_run.peak_rss_mb) if floor_run.ok else None
    r = full.result
    return [Stage.measured(
        "checks", full.seconds, full.rows, full.peak_rss_mb, floor=floor,
        notes=f"{r['suites']} suites, {r['expectations']} expectations; quarantined {r['quarantined']:,} of "
              f"{r['received']:,} received; raw suites + quarantine {r['raw_seconds']:.1f} s, published "
              f"suites {r['published_seconds']:.1f} s", details=r)]


@task("checks_suites")
def checks_suites(args: dict) -> dict:
    return _checks(args["warehouse"], "suites")


@task("checks_frames")
def checks_frames(args: dict) -> dict:
    return _checks(args["warehouse"], "frames")


def _checks(warehouse: str, mode: str) -> dict:
    import logging

    from citizen_voice import warehouse as wh
    from citizen_voice.quality import quarantine
    from expectations import marts, raw
    from expectations.core import ValueSets
    from expectations.runner import read_frame, run_suites

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    started = time.perf_counter()
    result: dict = {}
    with wh.connect(Path(warehouse), read_only=True) as con:
        values = ValueSets(con)
        published = [marts.suite_for(k, values) for k in [*marts.MART_SUITES, *marts.indicator_suites(values)]
                     if values.table_exists(*k)]
        if mode == "frames":
            suites = [*raw.build(values), *published]
            result["rows"] = sum(len(read_frame(con, s)) for s in suites)
        else:
            run = quarantine.evaluate(con)
            raw_seconds = time.perf_counter() - started
            checked = run_suites(con, published)
            result.update(rows=sum(r.rows for r in [*run.suite_results, *checked]),
                          suites=len(run.suite_results) + len(checked),
                          expectations=sum(len(r.results) for r in [*run.suite_results, *checked]),
                          raw_seconds=round(raw_seconds, 3), errors=run.errors + [e for r in checked for e in r.errors],
                          **run.totals())
    if mode != "frames":
        with wh.connect(Path(warehouse)) as con:
            quarantine.write(con, run)
        result["published_seconds"] = round(time.perf_counter() - started - result["raw_seconds"], 3)
    result["seconds"] = round(time.perf_counter() - started, 4)
    return result

