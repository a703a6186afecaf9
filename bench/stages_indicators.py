"""The `indicators` stage: every indicator at every grain for one month (with scores), and a 12-month
backfill, on the transformed warehouse; the floor is the same month's aggregate query alone (no
writes, no comparisons, no scores).

The child tasks live here, not in bench.tasks: this module registers them and runs as the child
itself (`python -m bench.stages_indicators TASK --args … --out …`), measured like bench.harness.run_child.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from bench import tasks
from bench.harness import PROJECT_ROOT, Context, Floor, Measurement, Stage, _maxrss_mb, stage


def _newest_complete_month(con):
    from citizen_voice.indicators import engine
    from citizen_voice.indicators.periods import Period

    months = engine.periods_in_data(con, "month")
    last = engine.latest_date(con)
    complete = [m for m in months if m.end.toordinal() - 1 <= last.toordinal()]
    return (complete or months)[-1] if months else Period.parse("2026-07")


@tasks.task("indicators_compute")
def indicators_compute(args: dict) -> dict:
    """mode=month: the newest complete month; mode=backfill: the newest `months` months."""
    import duckdb

    from citizen_voice.indicators import engine, service

    with duckdb.connect(args["warehouse"]) as con:
        month = _newest_complete_month(con)
        periods = [month]
        if args["mode"] == "backfill":
            periods = [m for m in engine.periods_in_data(con, "month") if m <= month][-args["months"]:]
        orders = con.execute(f"select count(*) from {engine.FACTS} where received_at >= ? and received_at < ?",
                             [periods[0].start, periods[-1].end]).fetchone()[0]
        with tasks.Work() as work:
            summary = service.refresh(con, periods)
    return work.result(orders, periods=[p.label for p in periods], value_rows=summary["rows"],
                       warnings=summary["warnings"], scored=summary["scored"])


@tasks.task("indicators_floor")
def indicators_floor(args: dict) -> dict:
    """The month's numerators and denominators from the one aggregate query, fetched, nothing written."""
    import duckdb

    from citizen_voice.indicators import engine
    from citizen_voice.indicators.catalogue import load_catalogue

    catalogue = load_catalogue()
    with duckdb.connect(args["warehouse"], read_only=True) as con:
        month = _newest_complete_month(con)
        indicators = [i for i in catalogue.effective(month.start)
                      if engine.has_table(con, engine.REPEATS) or i.key != "repeat_complaint_rate"]
        orders = con.execute(f"select count(*) from {engine.FACTS} where received_at >= ? and received_at < ?",
                             [month.start, month.end]).fetchone()[0]
        with tasks.Work() as work:
            figures = con.execute(engine.aggregate_sql(con, catalogue, month, indicators)).fetchall()
    return work.result(orders, figures=len(figures), how="the engine's aggregate SQL run alone in DuckDB")


def _measure(ctx: Context, task: str, args: dict, label: str) -> Measurement:
    """bench.harness.run_child, with this module as the child (so it knows the tasks above)."""
    logs = ctx.work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    args_path, out_path = logs / f"{label}.args.json", logs / f"{label}.result.json"
    args_path.write_text(json.dumps(args, ensure_ascii=False), encoding="utf-8")
    out_path.unlink(missing_ok=True)
    command = [sys.executable, "-m", "bench.stages_indicators", task, "--args", str(args_path), "--out", str(out_path)]
    ctx.log(f"[bench] {label} ...")
    started = time.perf_counter()
    with open(logs / f"{label}.stdout", "wb") as stdout, open(logs / f"{label}.stderr", "wb") as stderr:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=ctx.base_env(), stdout=stdout, stderr=stderr,
                                   stdin=subprocess.DEVNULL)
        _, status, rusage = os.wait4(process.pid, 0)
    elapsed, peak = time.perf_counter() - started, _maxrss_mb(rusage)
    if os.waitstatus_to_exitcode(status) != 0 or not out_path.exists():
        tail = (logs / f"{label}.stderr").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-8:]
        error = " | ".join(tail)
        ctx.failures.append(f"{label}: {error}")
        ctx.log(f"[bench] {label}: FAILED ({error[:400]})")
        return Measurement(label, False, {}, elapsed, peak, error)
    measurement = Measurement(label, True, json.loads(out_path.read_text(encoding="utf-8")), elapsed, peak)
    ctx.log(f"[bench] {label}: {measurement.seconds:.2f} s work, {measurement.rows:,} orders, peak RSS {peak:,.0f} MB")
    return measurement


@stage("indicators")
def indicators(ctx: Context) -> list[Stage]:
    if not ctx.warehouse.exists():
        return [Stage(name="indicators", notes="skipped: no warehouse (run the ingest and transform stages first)")]
    args = {"warehouse": str(ctx.warehouse)}
    floor_m = _measure(ctx, "indicators_floor", args, "floor-indicators")
    month = _measure(ctx, "indicators_compute", {**args, "mode": "month"}, "indicators-month")
    backfill = _measure(ctx, "indicators_compute", {**args, "mode": "backfill", "months": 12}, "indicators-backfill")
    floor = None
    if floor_m.ok:
        floor = Floor(name="aggregate SQL alone", seconds=floor_m.seconds, rows=floor_m.rows,
                      peak_rss_mb=floor_m.peak_rss_mb, notes=floor_m.result.get("how", ""))
    records = []
    for name, m in (("indicators", month), ("indicators · 12-month backfill", backfill)):
        if not m.ok:
            records.append(Stage(name=name, peak_rss_mb=m.peak_rss_mb, notes=f"failed: {m.error[:300]}"))
            continue
        r = m.result
        notes = (f"{len(r['periods'])} month(s) {r['periods'][0]}…{r['periods'][-1]}, {r['value_rows']:,} value rows, "
                 "7 grains, with scores; rows = work orders received in the months")
        if r["warnings"]:
            notes += "; " + "; ".join(r["warnings"])
        records.append(Stage.measured(name, m.seconds, m.rows, m.peak_rss_mb,
                                      floor=floor if name == "indicators" else None, notes=notes, details=r))
    return records


if __name__ == "__main__":
    from bench.stage import main

    sys.exit(main())
