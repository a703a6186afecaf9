"""The production instance variant (deploy/dagster.postgres.yaml) on a real PostgreSQL server."""

from __future__ import annotations

import dagster as dg
import pytest
import sqlalchemy as sa

from orchestration.run import instance_file, prepare_dagster_home


@dg.asset
def tiny_table() -> int:
    return 42


def test_postgres_instance_records_a_run(postgres_url, tmp_path, monkeypatch):
    engine = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as con:
        con.execute(sa.text("drop database if exists dagster_instance_test"))
        con.execute(sa.text("create database dagster_instance_test"))
    url = postgres_url.rsplit("/", 1)[0] + "/dagster_instance_test"
    monkeypatch.setenv("CV_DAGSTER_INSTANCE", "postgres")
    monkeypatch.setenv("DAGSTER_PG_URL", url)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))

    instance = prepare_dagster_home()
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        job = dg.Definitions(assets=[tiny_table]).resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(instance=instance)
        assert result.success
    finally:
        instance.dispose()

    with sa.create_engine(url).connect() as con:
        status = con.execute(sa.text("select status from runs where run_id = :id"), {"id": result.run_id}).scalar()
        materializations = con.execute(sa.text(
            "select count(*) from event_logs where run_id = :id and dagster_event_type = 'ASSET_MATERIALIZATION'"),
            {"id": result.run_id}).scalar()
    assert status == "SUCCESS"
    assert materializations == 1


def test_postgres_instance_needs_its_url(monkeypatch):
    monkeypatch.setenv("CV_DAGSTER_INSTANCE", "postgres")
    monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
    with pytest.raises(ValueError, match="DAGSTER_PG_URL"):
        instance_file()
    monkeypatch.setenv("CV_DAGSTER_INSTANCE", "cloud")
    with pytest.raises(ValueError, match="local, postgres"):
        instance_file()
