"""The warehouse build with the quality step in the middle, as plain Python (no Dagster), for the
command line, the benchmark and tests: dbt seeds + staging → quarantine (GX over the staging
records) → dbt intermediate + marts → scorecard. Dagster runs the same steps as assets
(orchestration/defs/warehouse.py and quality.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from citizen_voice import settings

# dbt selection of what the quarantine reads: the reference seeds and the staging models
BEFORE_QUARANTINE = "resource_type:seed path:models/staging"


def run_dbt(*args: str, warehouse: Path | None = None, work: Path | None = None) -> subprocess.CompletedProcess:
    project = settings.dbt_project_dir()
    dbt = Path(sys.executable).parent / "dbt"
    extra = []
    if work is not None:
        extra = ["--target-path", str(work / "dbt_target"), "--log-path", str(work / "dbt_logs")]
    env = {**os.environ, "CV_WAREHOUSE": str(warehouse or settings.warehouse_path())}
    result = subprocess.run([str(dbt if dbt.exists() else "dbt"), *args, "--project-dir", str(project),
                             "--profiles-dir", str(project), *extra], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"dbt {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    return result


def build_with_quarantine(warehouse: Path | None = None, work: Path | None = None) -> dict:
    """Build the warehouse from its raw layer with the quarantine applied; returns timings and counts."""
    from citizen_voice.quality.quarantine import run_quarantine
    from citizen_voice.quality.scorecard import run_scorecard

    seconds = {}
    started = time.perf_counter()
    run_dbt("build", "--select", BEFORE_QUARANTINE, warehouse=warehouse, work=work)
    seconds["dbt_staging"] = time.perf_counter() - started
    started = time.perf_counter()
    run = run_quarantine(warehouse)
    seconds["quarantine"] = time.perf_counter() - started
    started = time.perf_counter()
    run_dbt("build", "--exclude", BEFORE_QUARANTINE, warehouse=warehouse, work=work)
    seconds["dbt_models"] = time.perf_counter() - started
    started = time.perf_counter()
    run_scorecard(warehouse)
    seconds["scorecard"] = time.perf_counter() - started
    return {"seconds": {k: round(v, 2) for k, v in seconds.items()}, **run.totals(),
            "quarantine_rows": len(run.failures), "errors": run.errors}
