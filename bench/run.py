"""The command line: `python -m bench --scale N [--seed S] [--stages generate,ingest,...]`.

  --scale N        total work orders of the sandbox city (documented sizes: 10000, 100000, 1000000);
                   from 100000 on the city holds a year of history (365 days), below that 30–92 days
  --seed S         the city's seed (default 12345); the city is cached per (seed, scale)
  --stages a,b     the stages to run, in order (default: all; unimplemented ones are reported as skipped)
  --scenario NAME  full (default: the stages on a fresh warehouse) or daily-increment (one new day of
                   orders and late updates on top of the city's history, through the daily_update
                   job; --stages is ignored; the history is built once per city and commit, not timed)
  --data-dir DIR   where cities, warehouses and logs go (default $CV_BENCH_DIR or data/bench)
  --results-dir D  where the JSON and Markdown results go (default bench/results; for a profiled run
                   <data-dir>/<seed>-<scale>/run/profiles)
  --repeat N       run each stage (except generate) N times and keep the best round (default 1)
  --regenerate     build the city again even if a matching one is cached
  --profile        run each measurement under cProfile (<data-dir>/<seed>-<scale>/run/profiles/*.txt);
                   timings of a profiled run are inflated and marked as such (file names end in -profiled)

Exit status: 0 when every measurement ran (whatever the timings), 1 when one failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import sys

from bench import harness


def _stages(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


def _scale(text: str) -> int:
    value = text.lower().replace("_", "").replace(",", "")
    factor = 1
    if value.endswith("k"):
        value, factor = value[:-1], 1_000
    elif value.endswith("m"):
        value, factor = value[:-1], 1_000_000
    try:
        scale = int(float(value) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of work orders: {text!r}") from None
    if scale < 1:
        raise argparse.ArgumentTypeError("the scale is at least 1 work order")
    return scale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="citizen-voice benchmark harness",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--scale", type=_scale, default=harness.DEFAULT_SCALE,
                        help="total work orders (e.g. 10000, 100k, 1M); default %(default)s")
    parser.add_argument("--seed", type=int, default=harness.DEFAULT_SEED)
    parser.add_argument("--stages", help=f"comma-separated, default all: {','.join(harness.STAGE_ORDER)}")
    parser.add_argument("--scenario", default="full", choices=sorted(harness.SCENARIOS))
    parser.add_argument("--data-dir", help="default $CV_BENCH_DIR or data/bench")
    parser.add_argument("--results-dir", help="default bench/results")
    parser.add_argument("--repeat", type=int, default=1, help="rounds per stage, best kept (default 1)")
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--profile", action="store_true")
    options = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    results = harness.run_benchmark(options.scale, options.seed, _stages(options.stages),
                                    data_dir=options.data_dir, results_dir=options.results_dir,
                                    scenario=options.scenario, profile=options.profile,
                                    regenerate=options.regenerate, repeat=options.repeat, log=log)
    print(harness.markdown(results))
    print(f"results: {results['paths']['json']}\n         {results['paths']['markdown']}")
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
