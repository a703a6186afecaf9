"""A real warehouse for the publishing tests, built once per session: a small sandbox city served and
ingested (tests/warehouse/conftest.py's build_and_ingest), `dbt build`, and the district indicator."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import duckdb
import pytest

from simulator.generator import SandboxParams

CITY = SandboxParams(days=40, orders_per_day=60, seed=2026)


def _warehouse_helpers():
    """tests/warehouse/conftest.py by path (conftest modules are not importable by name)."""
    path = Path(__file__).resolve().parents[1] / "warehouse" / "conftest.py"
    spec = importlib.util.spec_from_file_location("warehouse_conftest_for_publish", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_indicators(con) -> None:
    """The indicator tables as the pipeline builds them (the catalogue engine where it exists)."""
    try:
        from citizen_voice.indicators import service
    except ImportError:  # the walking skeleton's single table
        from citizen_voice.indicators import district_monthly

        district_monthly.compute(con)
        return
    service.refresh(con, None, period_type="month")


@pytest.fixture(autouse=True)
def _never_the_projects_data(tmp_path_factory, monkeypatch):
    """A test that does not point CV_SANDBOX / CV_PUBLISHED elsewhere (publish_env) gets empty
    folders, never the project's data/ (the gate reads known values from the sandbox and records
    what it gated against there)."""
    monkeypatch.setenv("CV_SANDBOX", str(tmp_path_factory.mktemp("no_sandbox")))
    monkeypatch.setenv("CV_PUBLISHED", str(tmp_path_factory.mktemp("no_published")))


@pytest.fixture(scope="session")
def publish_city(tmp_path_factory):
    """{"work", "warehouse", "sandbox", "city"}: a built warehouse (marts + indicators). Treat it as
    read-only; copy it (`warehouse_copy`) to change it."""
    helpers = _warehouse_helpers()
    work = tmp_path_factory.mktemp("publish_city")
    built = helpers.build_and_ingest(work, CITY)
    result = helpers.run_dbt(work, "build", warehouse=built["warehouse"])
    assert result.returncode == 0, result.stdout[-3000:]
    with duckdb.connect(str(built["warehouse"])) as con:
        build_indicators(con)
    return {"work": work, "warehouse": built["warehouse"], "sandbox": built["sandbox"], "city": built["city"]}


@pytest.fixture
def publish_env(publish_city, tmp_path, monkeypatch):
    """Settings pointed at the built warehouse, its sandbox (for the known personal values) and a
    fresh published folder."""
    monkeypatch.setenv("CV_WAREHOUSE", str(publish_city["warehouse"]))
    monkeypatch.setenv("CV_SANDBOX", str(publish_city["sandbox"]))
    monkeypatch.setenv("CV_PUBLISHED", str(tmp_path / "published"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.delenv("CV_SERVING_PG_URL", raising=False)
    return tmp_path / "published"


@pytest.fixture
def warehouse_copy(publish_city, tmp_path):
    """A writable copy of the built warehouse (to plant data in)."""
    copy = tmp_path / "planted.duckdb"
    shutil.copyfile(publish_city["warehouse"], copy)
    return copy
