"""Raw layer: one multi-asset per registered department system (ingestion/sources.yaml).

Asset keys are [raw_<source>, <table>] — the keys dagster-dbt gives the dbt sources — so lineage
runs from each department system to the bulletin. A source loads as a whole (no subsetting): its
connector state covers all its tables, so loading some tables alone could skip others' records.
"""

import hashlib
import json

import dagster as dg

from ingestion.file_drop import new_drop_files
from ingestion.pipeline import SourceLoad
from ingestion.registry import SourceEntry, load_registry
from orchestration.defs import WAREHOUSE_POOL

# A department system that is down or throttling gets three more tries, 30 s, 60 s, 120 s later (±);
# a retried load first finishes whatever the failed attempt left pending, so nothing is loaded twice.
LOAD_RETRY = dg.RetryPolicy(max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def _table_metadata(record: dict, counts: dict, table: str) -> dict:
    return {
        "load_id": record["load_id"],
        "received": counts["received"].get(table, 0),
        "loaded": counts["loaded"].get(table, 0),
        "quarantined": counts["quarantined"].get(table, 0),
        "unchanged": counts.get("unchanged", {}).get(table, 0),  # received again, identical: not loaded again
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
                    description=entry.description, retry_policy=LOAD_RETRY)
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


def new_files_sensor(entry: SourceEntry, load: dg.AssetsDefinition) -> dg.SensorDefinition:
    """Load a file-drop source as soon as a file with new content arrives (a re-dropped file does not
    count: its content hash is remembered in the sensor's cursor)."""

    @dg.sensor(name=f"{entry.name}_new_files", minimum_interval_seconds=60, asset_selection=list(load.keys),
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Loads {entry.name} when a new file is dropped in its folder.")
    def _watch(context: dg.SensorEvaluationContext):
        memory = json.loads(context.cursor) if context.cursor else {"files": {}, "hashes": []}
        hashes = set(memory["hashes"])
        new = new_drop_files(entry, memory["files"], hashes)
        context.update_cursor(json.dumps({"files": memory["files"], "hashes": sorted(hashes)}))
        if not new:
            return dg.SkipReason(f"no new files for {entry.name}")
        run_key = hashlib.sha256("\n".join(new).encode() + context.cursor.encode()).hexdigest()[:16]
        return dg.RunRequest(run_key=f"{entry.name}-{run_key}", asset_selection=list(load.keys),
                             tags={"citizen_voice/new_files": ", ".join(new)[:200]})

    return _watch


def build_defs() -> dg.Definitions:
    sources = load_registry().sources
    loads = {entry.name: source_assets(entry) for entry in sources}
    sensors = [new_files_sensor(entry, loads[entry.name]) for entry in sources if entry.kind == "file_drop"]
    return dg.Definitions(assets=list(loads.values()), sensors=sensors)
