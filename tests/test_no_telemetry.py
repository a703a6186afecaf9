"""Nothing about the platform's use leaves the machine: dbt's anonymous usage events and Dagster's
telemetry are off."""

from __future__ import annotations

from pathlib import Path

import yaml

from citizen_voice.quality.pipeline import run_dbt

ROOT = Path(__file__).resolve().parents[1]


def test_dbt_sends_no_usage_events(tmp_path):
    result = run_dbt("--log-level", "debug", "--log-format", "text", "ls", "--select", "int_touched_orders",
                     warehouse=tmp_path / "warehouse.duckdb", work=tmp_path)
    assert "int_touched_orders" in result.stdout
    # with usage statistics on, dbt logs each event it tries to deliver at debug level
    assert "Sending event" not in result.stdout + result.stderr


def test_dagster_telemetry_is_off_in_every_instance_configuration():
    for name in ("dagster.yaml", "deploy/dagster.postgres.yaml"):
        config = yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))
        assert config["telemetry"] == {"enabled": False}, name
