"""Standalone runner: one dlt pipeline per department system, all writing to the one warehouse
file whose path is passed explicitly (dlt's default would land in the working directory)."""

from __future__ import annotations

from pathlib import Path

import dlt

from citizen_voice import settings


def make_pipeline(source_name: str, warehouse: Path | None = None) -> dlt.Pipeline:
    warehouse = Path(warehouse or settings.warehouse_path())
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    return dlt.pipeline(
        pipeline_name=f"cv_{source_name}",
        destination=dlt.destinations.duckdb(str(warehouse)),
        dataset_name=f"raw_{source_name}",
        pipelines_dir=str(warehouse.parent / ".dlt_pipelines"),
    )


def make_source(source_name: str):
    if source_name == "hotline":
        from ingestion.hotline import hotline_source

        return hotline_source(settings.hotline_url(), settings.hotline_token())
    if source_name == "zhujian":
        from ingestion.sql_department import zhujian_source

        return zhujian_source(settings.zhujian_url())
    raise KeyError(f"unknown source {source_name!r}; known: hotline, zhujian")


SOURCES = ("hotline", "zhujian")


def run(source_name: str, warehouse: Path | None = None):
    pipeline = make_pipeline(source_name, warehouse)
    return pipeline.run(make_source(source_name))
