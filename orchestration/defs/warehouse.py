"""The dbt project as assets: groups by layer, keys [schema, model] for models and seeds, and
dbt tests as asset checks.

The project runs as two dbt asset definitions so the data-quality quarantine sits between them
without an op cycle: seeds and staging → quality/quarantine (orchestration/defs/quality.py, GX over
the staging records) → intermediate and marts, which read quality.quarantine as a dbt source.
"""


import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets
from packaging import version

from citizen_voice import seeds, settings, warehouse
from citizen_voice.quality.pipeline import BEFORE_QUARANTINE
from orchestration.defs import WAREHOUSE_POOL


class WarehouseTranslator(DagsterDbtTranslator):
    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = manifest["nodes"].get(unique_id) or manifest["sources"].get(unique_id)
        if node["resource_type"] in ("model", "seed", "snapshot"):
            schema = node["config"].get("schema") or node["schema"]
            group = "reference" if node["resource_type"] == "seed" else node["fqn"][1]
            return spec.replace_attributes(key=dg.AssetKey([schema, node["name"]]), group_name=group)
        return spec


class WarehouseDbtResource(DbtCliResource):
    """dagster-dbt's resource without two start-up costs it pays before every dbt command (each dbt step
    of a run gets a new resource): running `dbt --version` in a subprocess (2.0 s measured) to learn the
    version of the dbt in this environment, and loading dbt's adapter and macros in this process (2.6 s)
    to serve row counts and column metadata, which these assets do not fetch."""

    @cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable).parent != Path(sys.executable).parent:  # not this environment's dbt: ask it
            return super()._cli_version
        return version.parse(installed_version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        return None


def dbt_project() -> DbtProject:
    project = DbtProject(project_dir=settings.dbt_project_dir(), profiles_dir=settings.dbt_project_dir())
    if not project.manifest_path.exists():
        raise FileNotFoundError(
            f"{project.manifest_path} is missing: prepare it with `make setup` (runs `dbt parse`)")
    return project


def dbt_executable() -> str:
    """dbt from this interpreter's environment, so the virtualenv need not be on PATH."""
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def dbt_target_path() -> Path:
    """A target folder per warehouse, kept between runs. dbt's partial parsing is only valid for the
    profile it was saved with, and the profile names the warehouse file: in a fresh folder per run
    (dagster-dbt's default) every build would parse the whole project again."""
    return settings.warehouse_path().parent / "dbt_target" / settings.warehouse_path().stem


def _seeds_current(fingerprint: str) -> bool:
    if not settings.warehouse_path().exists():
        return False
    with warehouse.connect() as con:
        return seeds.seeded_fingerprint(con) == fingerprint


def _seed_keys(project: DbtProject) -> set[dg.AssetKey]:
    manifest = json.loads(project.manifest_path.read_text(encoding="utf-8"))
    translator = WarehouseTranslator()
    return {translator.get_asset_spec(manifest, uid, project).key
            for uid, node in manifest["nodes"].items() if node["resource_type"] == "seed"}


def _dbt_assets(project: DbtProject, name: str, **selection):
    seed_keys = _seed_keys(project)

    @dbt_assets(manifest=project.manifest_path, project=project, dagster_dbt_translator=WarehouseTranslator(),
                name=name, pool=WAREHOUSE_POOL, **selection)
    def assets(context: dg.AssetExecutionContext, dbt: WarehouseDbtResource):
        os.environ.setdefault("CV_WAREHOUSE", str(settings.warehouse_path()))
        target = dbt_target_path()
        selected_seeds = context.selected_asset_keys & seed_keys  # none in the models' step
        fingerprint = seeds.seed_fingerprint(Path(project.project_dir)) if selected_seeds else None
        # dbt's unit tests check the models' code on fixed inputs: they run with the test suite
        # (tests/warehouse), not in every production build
        excluded, unchanged_seeds = ["resource_type:unit_test"], []
        if selected_seeds and _seeds_current(fingerprint):
            excluded.append("path:seeds")  # unchanged since the warehouse was seeded: skip them and their tests
            unchanged_seeds = sorted(selected_seeds, key=str)
        args = ["build", "--exclude", " ".join(excluded)]
        for key in unchanged_seeds:
            # reported as current (first: Dagster wants a multi-asset's outputs in dependency order), or
            # Dagster would skip every asset downstream of a seed in this run
            yield dg.MaterializeResult(asset_key=key, metadata={"reloaded": False, "seed_fingerprint": fingerprint})
        yield from dbt.cli(args, context=context, target_path=target).stream()
        # both dbt steps share the folder: keep each one's results (read by operators and the benchmark)
        shutil.copyfile(target / "run_results.json", target / f"run_results.{name}.json")
        if selected_seeds and not unchanged_seeds and seeds.all_seeds_succeeded(target / "run_results.json",
                                                                                   project.manifest_path):
            with warehouse.connect() as con:
                seeds.record_seeded(con, fingerprint)

    return assets


def build_defs() -> dg.Definitions:
    project = dbt_project()
    staged = _dbt_assets(project, "warehouse_staging", select=BEFORE_QUARANTINE)
    modelled = _dbt_assets(project, "warehouse", exclude=BEFORE_QUARANTINE)
    return dg.Definitions(assets=[staged, modelled],
                          resources={"dbt": WarehouseDbtResource(project_dir=project,
                                                                  dbt_executable=dbt_executable())})
