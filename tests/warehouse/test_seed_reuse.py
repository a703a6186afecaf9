"""The staging step loads the reference seeds only when their definitions changed since the warehouse
was last seeded; otherwise it leaves the reference schema (and the seeds' tests) alone."""

import json
import shutil

import dagster as dg
import duckdb
import pytest

from citizen_voice import seeds, settings
from simulator.generator import SandboxParams

DISTRICTS = dg.AssetKey(["reference", "ref_districts"])


@dg.asset(deps=[DISTRICTS])
def reads_districts() -> None:
    """Stands for every asset downstream of a seed: it must run whether or not the seeds were reloaded."""


def _staging_run(monkeypatch, warehouse, home) -> dict[str, str]:
    """Materialize the staging dbt step (and an asset downstream of a seed) through Dagster; returns
    {unique_id: status} of its dbt results."""
    from orchestration.defs.warehouse import build_defs, dbt_target_path

    monkeypatch.setenv("CV_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    defs = build_defs()
    staged = next(assets for assets in defs.assets if assets.op.name == "warehouse_staging")
    result = dg.materialize([staged, reads_districts], resources=defs.resources,
                            instance=dg.DagsterInstance.ephemeral())
    assert result.success
    materialized = {event.asset_key for event in result.get_asset_materialization_events()}
    assert {DISTRICTS, reads_districts.key} <= materialized
    results = json.loads((dbt_target_path() / "run_results.warehouse_staging.json").read_text(encoding="utf-8"))
    return {r["unique_id"]: r["status"] for r in results["results"]}


def _reference_tables(warehouse) -> dict[str, int]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        names = [n for (n,) in con.execute("select table_name from information_schema.tables "
                                           "where table_schema = 'reference' order by 1").fetchall()]
        return {n: con.execute(f"select count(*) from reference.{n}").fetchone()[0] for n in names}


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, ingest_city):
    work = tmp_path_factory.mktemp("seed_reuse")
    return ingest_city(work, SandboxParams(days=10, orders_per_day=20, seed=5))["warehouse"]


def test_seeds_load_once_until_their_definitions_change(ingested, tmp_path, monkeypatch):
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copyfile(ingested, warehouse)
    fingerprint = seeds.seed_fingerprint(settings.dbt_project_dir())

    first = _staging_run(monkeypatch, warehouse, tmp_path / "home")
    seeded = {uid for uid in first if uid.startswith("seed.")}
    assert seeded and all(first[uid] == "success" for uid in seeded)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert seeds.seeded_fingerprint(con) == fingerprint
    reference = _reference_tables(warehouse)
    assert len(reference) == len(seeded) and all(reference.values())

    second = _staging_run(monkeypatch, warehouse, tmp_path / "home")
    assert not [uid for uid in second if uid.startswith("seed.")]
    nodes = json.loads((settings.dbt_project_dir() / "target" / "manifest.json").read_text(encoding="utf-8"))["nodes"]
    seed_tests = {uid for uid in first if uid.startswith("test.")
                  and all(parent.startswith("seed.") for parent in nodes[uid]["depends_on"]["nodes"])}
    assert seed_tests and not seed_tests & set(second)
    staging_models = {uid for uid in first if uid.startswith("model.")}
    assert staging_models and staging_models <= set(second)  # the staging views and their tests still run
    assert _reference_tables(warehouse) == reference

    with duckdb.connect(str(warehouse)) as con:  # as if the seed files had changed since
        con.execute("update ops.reference_seeds set fingerprint = 'an earlier version'")
    third = _staging_run(monkeypatch, warehouse, tmp_path / "home")
    assert seeded <= set(third)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert seeds.seeded_fingerprint(con) == fingerprint


def test_fingerprint_follows_the_seed_definitions(tmp_path):
    project = tmp_path / "dbt_project"
    shutil.copytree(settings.dbt_project_dir(), project, ignore=shutil.ignore_patterns("target", "logs"))
    before = seeds.seed_fingerprint(project)
    assert seeds.seed_fingerprint(project) == before
    (project / "models" / "staging" / "hotline" / "stg_hotline__orders.sql").write_text("select 1\n")
    assert seeds.seed_fingerprint(project) == before  # models are not seed definitions
    calendar = project / "seeds" / "calendar" / "ref_calendar.csv"
    calendar.write_text(calendar.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert seeds.seed_fingerprint(project) != before
