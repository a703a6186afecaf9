"""The `checks` stage: the data-quality suites on the ingested and transformed warehouse.

Measured in its own process (`python -m bench.stages_checks --child ARGS OUT`, waited for with wait4
for its own peak RSS, like bench.harness.run_child): the raw-layer suites with the quarantine written
(Great Expectations over dataframes read from DuckDB), then the mart and indicator suites. The floor
is the same frames read from DuckDB into pandas without validating them: what any dataframe-based
check pays before checking anything.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import PROJECT_ROOT, Context, Floor, Measurement, Stage, _maxrss_mb, stage


def _measure(ctx: Context, mode: str, label: str) -> Measurement:
    logs = ctx.work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = logs / f"{label}.result.json"
    out.unlink(missing_ok=True)
    ctx.log(f"[bench] {label} ...")
    started = time.perf_counter()
    with open(logs / f"{label}.stderr", "wb") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "bench.stages_checks", "--child", mode, str(ctx.warehouse),
                                    str(out)], cwd=PROJECT_ROOT, env=ctx.base_env(), stdout=subprocess.DEVNULL,
                                   stderr=stderr, stdin=subprocess.DEVNULL)
        _, status, rusage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0 or not out.exists():
        tail = (logs / f"{label}.stderr").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-8:]
        error = " | ".join(tail)
        ctx.failures.append(f"{label}: {error}")
        return Measurement(label, False, {}, elapsed, _maxrss_mb(rusage), error)
    result = json.loads(out.read_text(encoding="utf-8"))
    ctx.log(f"[bench] {label}: {result['seconds']:.2f} s work, {result['rows']:,} records")
    return Measurement(label, True, result, elapsed, _maxrss_mb(rusage))


@stage("checks")
def checks(ctx: Context) -> list[Stage]:
    if not ctx.warehouse.exists():
        return [Stage(name="checks", notes="skipped: no warehouse (run the ingest and transform stages first)")]
    full = _measure(ctx, "suites", "checks")
    if not full.ok:
        return [Stage(name="checks", peak_rss_mb=full.peak_rss_mb, notes=f"failed: {full.error[:300]}")]
    floor_run = _measure(ctx, "frames", "floor-checks")
    floor = Floor(name="the suites' frames read into pandas", seconds=floor_run.seconds, rows=floor_run.rows,
                  peak_rss_mb=floor_run.peak_rss_mb) if floor_run.ok else None
    r = full.result
    return [Stage.measured(
        "checks", full.seconds, full.rows, full.peak_rss_mb, floor=floor,
        notes=f"{r['suites']} suites, {r['expectations']} expectations; quarantined {r['quarantined']:,} of "
              f"{r['received']:,} received; raw suites + quarantine {r['raw_seconds']:.1f} s, published "
              f"suites {r['published_seconds']:.1f} s", details=r)]


def _child(mode: str, warehouse: str, out: str) -> None:
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
    Path(out).write_text(json.dumps(result, ensure_ascii=False, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.stages_checks")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "WAREHOUSE", "OUT"), required=True)
    mode, warehouse_path, out_path = parser.parse_args().child
    _child(mode, warehouse_path, out_path)
