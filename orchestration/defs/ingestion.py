"""Raw layer: one multi-asset per registered department system (ingestion/sources.yaml).

Asset keys are [raw_<source>, <table>] — the keys dagster-dbt gives the dbt sources — so lineage
runs from each department system to the bulletin. A source loads as a whole (no subsetting): its
connector state covers all its tables, so loading some tables alone could skip others' records.
"""

import json

import dagster as dg

from ingestion.pipeline import SourceLoad
from ingestion.registry import SourceEntry, load_registry
from orchestration.defs import WAREHOUSE_POOL


def _table_metadata(record: dict, counts: dict, table: str) -> dict:
    return {
        "load_id": record["load_id"],
        "received": counts["received"].get(table, 0),
        "loaded": counts["loaded"].get(table, 0),
        "quarantined": counts["quarantined"].get(table, 0),
        "new_columns": ", ".join(counts["new_columns"].get(table, [])) or "none",
        "reconciles": record["reconciles"],
        "cursors": dg.MetadataValue.json(record["cursors_parsed"]),
        "duration_seconds": round(record["duration_seconds"], 2),
    }


def source_assets(entry: SourceEntry) -> dg.AssetsDefinition:
    tables = [spec.name for spec in entry.tables]
    specs = [dg.AssetSpec(key=[entry.dataset, table], group_name="ingestion", kinds={"dlt", entry.kind},
                          owners=[], description=f"{entry.description} — table {table} as loaded, "
                          "personal data masked and pseudonymized.") for table in tables]
    specs.append(dg.AssetSpec(key=[entry.dataset, "_quarantine"], group_name="ingestion", kinds={"dlt"},
                              description=f"Records of {entry.name} rejected at the boundary, with the reason."))

    @dg.multi_asset(name=f"ingest_{entry.name}", specs=specs, can_subset=False, pool=WAREHOUSE_POOL,
                    description=entry.description)
    def _load(context: dg.AssetExecutionContext):
        load = SourceLoad(entry)
        record = load.complete(load.execute())
        record["cursors_parsed"] = json.loads(record["cursors"])
        counts = json.loads(record["counts"])
        if not record["reconciles"]:
            raise RuntimeError(f"{entry.name}: counts do not reconcile: {counts}")
        for table in tables:
            yield dg.MaterializeResult(asset_key=[entry.dataset, table],
                                       metadata=_table_metadata(record, counts, table))
        yield dg.MaterializeResult(asset_key=[entry.dataset, "_quarantine"], metadata={
            "quarantined": record["quarantined"], "rejected_units": record["rejected_units"],
            "reasons": dg.MetadataValue.json(counts["rejected_units"])})

    return _load


def build_defs() -> dg.Definitions:
    return dg.Definitions(assets=[source_assets(entry) for entry in load_registry().sources])
