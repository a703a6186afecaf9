"""The benchmark harness: `python -m bench --scale N` (or `make bench SCALE=N`).

It generates the sandbox city at a size once (cached under `data/bench/<seed>-<scale>/city/`), then
measures each stage as a whole (generate, ingest, transform, checks, text, indicators, publish) in
its own subprocess: wall time, throughput and peak RSS of that process. Beside each stage it
measures a *floor* — the same work done as directly as possible (DuckDB's own reads of the same
files, ...) — and reports the stage's rate as a ratio to the floor's. Results go to
`bench/results/<YYYY-MM-DD>-<scale>.json` (git-ignored) and `bench/results/latest-<scale>.md`.

Modules:
  harness  the Stage record, subprocess measurement (peak RSS per process), the stage registry,
           city parameters and cache, results (JSON, Markdown)
  stages   the parent-side stage functions (what to measure, in which process, against which floor)
  tasks    the child-side work (`python -m bench.stage TASK ...`): one measurement per process
  run      the command line

The benchmark is never a pass/fail timing test: `tests/bench` only checks that it works.
"""
