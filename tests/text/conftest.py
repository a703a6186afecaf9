"""A sandbox city big enough for the statistics (150 days, 60 orders a day, 8 bursts), ingested and
built with dbt once per session, then the whole text stage run on it."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CITY_DAYS = 150


def _warehouse_helpers():
    spec = importlib.util.spec_from_file_location("text_tests_warehouse_helpers", HERE.parent / "warehouse" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def text_city(tmp_path_factory):
    import duckdb
    import pandas as pd

    from citizen_voice.text import pipeline
    from simulator.generator import SandboxParams

    helpers = _warehouse_helpers()
    work = tmp_path_factory.mktemp("text_city")
    built = helpers.build_and_ingest(work, SandboxParams(days=CITY_DAYS, orders_per_day=60, seed=2026, burst_count=8))
    result = helpers.run_dbt(work, "build", warehouse=built["warehouse"])
    assert result.returncode == 0, result.stdout[-3000:]
    models = work / "models"
    saved = os.environ.get("CV_MODELS")
    os.environ["CV_MODELS"] = str(models)
    try:
        with duckdb.connect(str(built["warehouse"])) as con:
            figures = pipeline.run(con)
    finally:
        if saved is None:
            os.environ.pop("CV_MODELS", None)
        else:
            os.environ["CV_MODELS"] = saved
    return {"work": work, "warehouse": built["warehouse"], "models": models, "figures": figures,
            "truth": pd.read_parquet(built["truth"] / "work_orders.parquet"),
            "bursts": json.loads((built["truth"] / "bursts.json").read_text(encoding="utf-8")),
            "days": CITY_DAYS}


@pytest.fixture
def warehouse_copy(text_city, tmp_path):
    """A private copy of the processed warehouse a test may change."""
    copy = tmp_path / "warehouse.duckdb"
    shutil.copyfile(text_city["warehouse"], copy)
    return copy
