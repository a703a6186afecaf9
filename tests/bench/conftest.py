"""Running the benchmark harness from a test: its own data and results folders, and the platform's own
locations pointed at paths that must stay unused (the benchmark keeps to its folder)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_bench(tmp_path):
    """`python -m bench ARGS` → (results, data_dir, results_dir); fails the test if the harness fails."""
    def run(*args: str, timeout: int = 900) -> tuple[dict, Path, Path]:
        data_dir, results_dir = tmp_path / "bench", tmp_path / "results"
        env = {**os.environ, "CV_BENCH_DIR": str(data_dir), "CV_WAREHOUSE": str(tmp_path / "unused.duckdb"),
               "CV_SANDBOX": str(tmp_path / "unused-sandbox"), "CV_PUBLISHED": str(tmp_path / "unused-published"),
               "DAGSTER_HOME": str(tmp_path / "unused-dagster")}
        completed = subprocess.run([sys.executable, "-m", "bench", *args, "--results-dir", str(results_dir)],
                                   cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        assert completed.returncode == 0, completed.stderr[-3000:]
        [result_file] = results_dir.glob("*.json")
        return json.loads(result_file.read_text(encoding="utf-8")), data_dir, results_dir
    return run
