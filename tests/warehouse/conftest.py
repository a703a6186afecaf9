"""Shared helpers for the warehouse tests: build a sandbox city, serve and ingest all six department
systems into a DuckDB warehouse, and run dbt against it (in a subprocess, with its own target and
log folders so tests never touch the project's target/)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from citizen_voice import settings

SOURCES = ("hotline", "app311", "zhujian", "chengguan", "gongdian", "survey")
# Registry overrides that would point the file and SQL sources away from the test's sandbox.
OVERRIDES = ("CV_ZHUJIAN_URL", "CV_CHENGGUAN_DROPS", "CV_GONGDIAN_DROPS", "CV_SURVEY_EXPORTS")


def build_and_ingest(work: Path, params) -> dict:
    """Generate a city under work/city, serve a copy of it (work/sandbox: file-drop ingestion moves
    rejected files aside) and ingest every source into work/warehouse.duckdb.

    Returns {"city", "truth", "sandbox", "warehouse", "loads"}."""
    from ingestion import pipeline
    from simulator.manifest import build_sandbox
    from simulator.servers import SandboxServers

    built = work / "city"
    build_sandbox(params, built)
    sandbox = work / "sandbox"
    shutil.copytree(built, sandbox)
    warehouse = work / "warehouse.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        for name in OVERRIDES:
            mp.delenv(name, raising=False)
        mp.setenv("CV_SANDBOX", str(sandbox))
        mp.setenv("CV_WAREHOUSE", str(warehouse))
        with SandboxServers(sandbox, hotline_port=0, open311_port=0,
                            hotline_token=settings.hotline_token()) as servers:
            mp.setenv("CV_HOTLINE_URL", servers.hotline_url)
            mp.setenv("CV_OPEN311_URL", servers.open311_url)
            loads = {name: pipeline.run(name, warehouse) for name in SOURCES}
    return {"city": built, "truth": built / "truth", "sandbox": sandbox, "warehouse": warehouse, "loads": loads}


def run_dbt(work: Path, *args: str, warehouse: Path | None = None, env: dict[str, str] | None = None,
            name: str = "dbt", timeout: int = 600) -> subprocess.CompletedProcess:
    """`dbt <args>` on the project, with target/ and logs/ under work/<name>_target, work/<name>_logs.

    CV_WAREHOUSE points at `warehouse` when given; `env` adds variables (e.g. CV_PG_* for
    `--target postgres`)."""
    project = settings.dbt_project_dir()
    dbt = Path(sys.executable).parent / "dbt"
    full_env = {**os.environ, **(env or {})}
    if warehouse is not None:
        full_env["CV_WAREHOUSE"] = str(warehouse)
    return subprocess.run(
        [str(dbt), *args, "--project-dir", str(project), "--profiles-dir", str(project),
         "--target-path", str(work / f"{name}_target"), "--log-path", str(work / f"{name}_logs")],
        env=full_env, capture_output=True, text=True, timeout=timeout)


# Test modules get the helpers as fixtures (conftest modules are not importable by name: there
# are several, none in a package).
@pytest.fixture(scope="session")
def ingest_city():
    """build_and_ingest(work, params) -> {"city", "truth", "sandbox", "warehouse", "loads"}."""
    return build_and_ingest


@pytest.fixture(scope="session")
def dbt():
    """run_dbt(work, *args, warehouse=None, env=None, name="dbt", timeout=600) -> CompletedProcess."""
    return run_dbt
