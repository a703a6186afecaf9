"""The `indicators` stage: every indicator at every grain for one month (with scores), and a 12-month
backfill, on the transformed warehouse; the floor is the same month's aggregate query alone (no
writes, no comparisons, no scores).

The child tasks live here, not in bench.tasks: this module registers them (bench.stage imports it).
"""

from __future__ import annotations

from bench import tasks
from bench.harness import Context, Floor, Stage, stage


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


@stage("indicators")
def indicators(ctx: Context) -> list[Stage]:
    if not ctx.warehouse.exists():
        return [Stage(name="indicators", notes="skipped: no warehouse (run the ingest and transform stages first)")]
    args = {"warehouse": str(ctx.warehouse)}
    floor_m = ctx.measure("indicators_floor", args, label="floor-indicators")
    month = ctx.measure("indicators_compute", {**args, "mode": "month"}, label="indicators-month")
    backfill = ctx.measure("indicators_compute", {**args, "mode": "backfill", "months": 12},
                           label="indicators-backfill")
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

