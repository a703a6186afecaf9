"""Raw layer: one dlt multi-asset per department system. Asset keys are [dataset, table], the
same keys dagster-dbt gives the dbt sources, so lineage runs from the source to the bulletin."""


import dagster as dg
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from ingestion import pipelines
from orchestration.defs import WAREHOUSE_POOL


class RawLayerTranslator(DagsterDltTranslator):
    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        return spec.replace_attributes(
            key=dg.AssetKey([data.pipeline.dataset_name, data.resource.name]),
            group_name="ingestion",
            deps=[],
        )


def _system_assets(source_name: str) -> dg.AssetsDefinition:
    @dlt_assets(
        dlt_source=pipelines.make_source(source_name),
        dlt_pipeline=pipelines.make_pipeline(source_name),
        name=f"ingest_{source_name}",
        dagster_dlt_translator=RawLayerTranslator(),
        pool=WAREHOUSE_POOL,
    )
    def _assets(context: dg.AssetExecutionContext, dlt: DagsterDltResource):
        yield from dlt.run(context=context, dlt_source=pipelines.make_source(source_name),
                           dlt_pipeline=pipelines.make_pipeline(source_name))

    return _assets


def build_defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[_system_assets(name) for name in pipelines.SOURCES],
        resources={"dlt": DagsterDltResource()},
    )
