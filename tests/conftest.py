from __future__ import annotations

import pytest
from support.postgres import TemporaryPostgres, find_postgres_bin_dir


@pytest.fixture(scope="session")
def postgres_url():
    """SQLAlchemy URL of a real throwaway PostgreSQL cluster (superuser, trust auth)."""
    if find_postgres_bin_dir() is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin")
    with TemporaryPostgres() as postgres:
        yield postgres.url


@pytest.fixture(scope="session")
def pipeline_city(tmp_path_factory):
    """A small sandbox city for ingestion and end-to-end tests (built once per session)."""
    from simulator.generator import SandboxParams
    from simulator.manifest import build_sandbox

    folder = tmp_path_factory.mktemp("pipeline_city")
    manifest = build_sandbox(SandboxParams(days=40, orders_per_day=60, seed=2026), folder)
    return folder, manifest


@pytest.fixture
def platform_env(tmp_path, monkeypatch, pipeline_city):
    """Point the platform's settings at temporary folders and the pipeline city."""
    folder, _ = pipeline_city
    monkeypatch.setenv("CV_SANDBOX", str(folder))
    monkeypatch.setenv("CV_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("CV_PUBLISHED", str(tmp_path / "published"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    return tmp_path


@pytest.fixture(scope="session")
def dbt_manifest():
    """The dbt manifest Dagster loads (what `make setup` prepares), parsed if missing."""
    import subprocess
    import sys
    from pathlib import Path

    from citizen_voice import settings

    project = settings.dbt_project_dir()
    manifest = project / "target" / "manifest.json"
    if not manifest.exists():
        dbt = Path(sys.executable).parent / "dbt"
        subprocess.run([str(dbt), "parse", "--quiet", "--project-dir", str(project), "--profiles-dir", str(project)],
                       check=True)
    return manifest


@pytest.fixture(autouse=True, scope="session")
def test_keys():
    """Fixed test keys, so no test writes a generated key file into the project's data folder."""
    import os

    saved = {k: os.environ.get(k) for k in ("CV_PSEUDONYM_KEY", "CV_IDENTITY_KEY")}
    os.environ["CV_PSEUDONYM_KEY"] = "hex:" + "5a" * 32
    os.environ["CV_IDENTITY_KEY"] = "hex:" + "a5" * 32
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
