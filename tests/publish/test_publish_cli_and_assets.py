"""The `publish` sub-commands (typer CliRunner; the Open311 server as a real process) and the Dagster
publish assets materialized against a real warehouse."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import dagster as dg
import duckdb
import requests
from typer.testing import CliRunner

from citizen_voice.publish.cli import publish_app

runner = CliRunner()


def test_cli_publishes_and_gates(publish_env):
    for command, produced in (("shares", "shares/SWJ/manifest.json"), ("open-data", "open/manifest.json"),
                              ("snapshot", "serving/warehouse.duckdb")):
        result = runner.invoke(publish_app, [command])
        assert result.exit_code == 0, result.output
        assert (publish_env / produced).exists()
    report = json.loads(runner.invoke(publish_app, ["open-data"]).output)
    assert report["rows"] > 1000 and report["files"] == sum(1 for p in (publish_env / "open").rglob("*") if p.is_file())
    assert report["parts"]["written"] == 0 and report["parts"]["carried"] > 1  # a rerun: every month carried over


def test_cli_postgres_without_configuration_says_so(publish_env):
    result = runner.invoke(publish_app, ["postgres"])
    assert result.exit_code == 2 and "CV_SERVING_PG_URL is not set" in result.output


def test_cli_postgres_publishes(publish_env, postgres_url, monkeypatch):
    monkeypatch.setenv("CV_SERVING_PG_URL", postgres_url)
    result = runner.invoke(publish_app, ["postgres"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["tables"]["marts.fct_work_orders"] > 1000


def test_cli_serves_open311(publish_env):
    assert runner.invoke(publish_app, ["open-data"]).exit_code == 0
    code = "from citizen_voice.publish.cli import publish_app; publish_app()"
    server = subprocess.Popen([sys.executable, "-c", code, "open311", "--port", "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        endpoint = re.search(r"(http://127\.0\.0\.1:\d+/open311/v2)/services\.json", line)[1]
        answer = requests.get(f"{endpoint}/requests.json", timeout=30)
        assert answer.status_code == 200 and answer.json()[0]["service_request_id"].startswith("GD")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert server.returncode == 0  # SIGTERM stops it cleanly


def test_publish_assets_materialize(publish_env, publish_city, dbt_manifest):
    from orchestration.defs import WAREHOUSE_POOL
    from orchestration.defs.publish import build_defs

    # the bulletin assets (monthly/weekly partitions, reading text and quality) are run by tests/e2e
    assets = [a for a in build_defs().assets if a.key.path[0] == "publish" and "bulletin" not in a.key.path[1]]
    assert {a.key.to_user_string() for a in assets} == {
        "publish/department_shares", "publish/open_data", "publish/serving_snapshot", "publish/postgres_serving"}
    for asset in assets:
        assert asset.group_names_by_key[asset.key] == "publish"
        assert asset.op.pool == WAREHOUSE_POOL
        assert dg.AssetKey(["marts", "fct_work_orders"]) in asset.asset_deps[asset.key]
    result = dg.materialize(assets, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    materialized = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        materialized[materialization.asset_key.to_user_string()] = materialization.metadata
    assert set(materialized) == {"publish/department_shares", "publish/open_data", "publish/serving_snapshot"}
    assert materialized["publish/department_shares"]["departments"].value == 19
    observed = [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    assert "skipped: PostgreSQL serving not configured" in str(observed[0].event_specific_data.asset_observation.metadata)
    with duckdb.connect(str(publish_env / "serving" / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select snapshot_id from meta.snapshot").fetchall() == [(result.run_id,)]
