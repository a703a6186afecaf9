"""The dbt project as assets: groups by layer, keys [schema, model] for models and seeds, and
dbt tests as asset checks."""


import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from citizen_voice import settings
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


def build_defs() -> dg.Definitions:
    project = dbt_project()

    @dbt_assets(manifest=project.manifest_path, project=project, dagster_dbt_translator=WarehouseTranslator(),
                name="warehouse", pool=WAREHOUSE_POOL)
    def warehouse(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        os.environ.setdefault("CV_WAREHOUSE", str(settings.warehouse_path()))
        yield from dbt.cli(["build"], context=context).stream()

    return dg.Definitions(assets=[warehouse], resources={"dbt": DbtCliResource(project_dir=project, dbt_executable=dbt_executable())})
