"""One measurement in its own process: `python -m bench.stage TASK --args ARGS.json --out RESULT.json`.

The harness (bench.harness.run_child) starts this, waits for it with wait4 (its peak RSS is this
process's own) and reads RESULT.json. With `--profile X.pstats` the timed work runs under cProfile;
X.pstats and X.txt (the top functions by cumulative and by own time) are written beside each other.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
from pathlib import Path

from bench import stages, tasks  # noqa: F401  (importing bench.stages registers every stage module's tasks)


def _write_profile(profiler: cProfile.Profile, path: Path) -> None:
    profiler.dump_stats(str(path))
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(30)
    path.with_suffix(".txt").write_text(text.getvalue(), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stage", description=__doc__)
    parser.add_argument("task", choices=sorted(tasks.TASKS))
    parser.add_argument("--args", required=True, help="JSON file with the task's arguments")
    parser.add_argument("--out", required=True, help="where to write the JSON result")
    parser.add_argument("--profile", help="profile the timed work into this .pstats file")
    options = parser.parse_args(argv)
    args = json.loads(Path(options.args).read_text(encoding="utf-8"))
    if options.profile:
        tasks.PROFILER = cProfile.Profile()
    result = tasks.TASKS[options.task](args)
    if tasks.PROFILER is not None:
        _write_profile(tasks.PROFILER, Path(options.profile))
        result["profile"] = options.profile
    Path(options.out).write_text(json.dumps(result, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
