"""Run one registered department system into the warehouse, exactly once.

The dlt source built here has one hidden resource that runs the connector's extractor and the
boundary (quarantine, personal data, counts), and one merge-on-key table per registry table plus
`_quarantine` (and `_identities` in the restricted schema when configured). Connector state
(cursors, file ledger) lives in dlt's resource state and is committed atomically with the load;
a crash at any point re-reads from the last committed state and merge-on-key absorbs the overlap.
Each load is recorded in `ops.load_log` (load id, cursors, counts, duration).
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dlt
import pyarrow as pa
from dlt.common.schema import Schema
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from citizen_voice import settings
from citizen_voice.warehouse import connect as warehouse_connection
from citizen_voice.warehouse import has_table, transaction
from ingestion import boundary
from ingestion.core import Rejected
from ingestion.registry import SourceEntry, load_registry
from ingestion.unchanged import REREAD_KINDS, UnchangedRecords

RESTRICTED_DATASET = "restricted"
IDENTITIES_TABLE = "_identities"


def extractor_for(kind: str):
    if kind == "rest_api":
        from ingestion.rest_api import extract
    elif kind == "open311":
        from ingestion.open311 import extract
    elif kind == "sql_database":
        from ingestion.sql_database import extract
    elif kind == "file_drop":
        from ingestion.file_drop import extract
    else:
        raise KeyError(f"no connector for kind {kind!r}")
    return extract


@dataclass
class LoadCounts:
    received: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    loaded: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    quarantined: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    unchanged: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # received again, identical: in `loaded`
    rejected_units: list[dict] = field(default_factory=list)
    new_columns: dict[str, list[str]] = field(default_factory=dict)

    def reconciles(self) -> bool:
        return all(self.received[t] == self.loaded[t] + self.quarantined[t] for t in self.received)

    def as_dict(self) -> dict:
        return {"received": dict(self.received), "loaded": dict(self.loaded), "quarantined": dict(self.quarantined),
                "unchanged": dict(self.unchanged), "rejected_units": self.rejected_units, "new_columns": self.new_columns}


@dataclass
class _Processed:
    table: str
    clean: pa.Table | None = None
    quarantine: pa.Table | None = None
    identities: pa.Table | None = None


# Small batches (one per file, page or chunk) are joined up to this many rows before dlt sees them:
# dlt's cost per item dominates for daily files of a few thousand rows.
COALESCE_ROWS = 50_000


def _concat(tables: list[pa.Table | None]) -> pa.Table | None:
    present = [t for t in tables if t is not None and t.num_rows]
    if not present:
        return None
    return present[0] if len(present) == 1 else pa.concat_tables(present, promote_options="permissive")


def _coalesce(items: list[_Processed]) -> _Processed:
    return _Processed(items[0].table, clean=_concat([i.clean for i in items]),
                      quarantine=_concat([i.quarantine for i in items]),
                      identities=_concat([i.identities for i in items]))


def build_source(entry: SourceEntry, counts: LoadCounts, unchanged: UnchangedRecords | None = None):
    extract = extractor_for(entry.kind)
    protector = boundary.Protector(store_identities=entry.store_raw_identifiers)
    specs = {spec.name: spec for spec in entry.tables}

    # Column names are kept exactly as the department sends them (Chinese, pinyin, English):
    # dlt's default normalization would collapse Chinese names into one another.
    schema = Schema(entry.dataset, normalizers={"names": "direct",
                                                "json": {"module": "dlt.common.normalizers.json.relational"}})

    @dlt.source(max_table_nesting=0, schema=schema, schema_contract={"columns": "evolve"})
    def source():
        @dlt.resource(name="_extract", selected=False)
        def extracted():
            state = dlt.current.resource_state()
            known_columns = state.setdefault("columns", {})
            pending: dict[str, list[_Processed]] = defaultdict(list)
            pending_rows: dict[str, int] = defaultdict(int)
            for item in extract(entry, state.setdefault("connector", {})):
                if isinstance(item, Rejected):
                    counts.rejected_units.append({"table": item.table, "origin": item.origin,
                                                  "reason": item.reason, "records": item.records})
                    yield _Processed(item.table, quarantine=boundary.rejected_unit(
                        item.table, item.origin, item.reason, item.records))
                    continue
                spec = specs.get(item.table)
                if spec is None:
                    raise KeyError(f"{entry.name}: connector yielded table {item.table!r}, "
                                   f"not declared in the registry ({', '.join(specs)})")
                table = item.rows if isinstance(item.rows, pa.Table) else pa.Table.from_pylist(item.rows)
                seen = known_columns.setdefault(item.table, [])
                added = [c for c in table.column_names if c not in seen]
                if added and seen:
                    counts.new_columns.setdefault(item.table, []).extend(added)
                seen.extend(added)
                if unchanged is not None:
                    table, digests, dropped = unchanged.split(item.table, table, spec)
                    for count in (counts.received, counts.loaded, counts.unchanged):
                        count[item.table] += dropped
                result = boundary.process(table, spec, item.origin, protector)
                if unchanged is not None:
                    unchanged.loaded_now(item.table, digests.filter(result.clean_mask))
                counts.received[item.table] += result.received
                counts.loaded[item.table] += result.loaded
                counts.quarantined[item.table] += result.quarantined
                pending[item.table].append(_Processed(item.table, result.clean, result.quarantine, result.identities))
                pending_rows[item.table] += result.received
                if pending_rows[item.table] >= COALESCE_ROWS:
                    yield _coalesce(pending.pop(item.table))
                    pending_rows[item.table] = 0
            for items in pending.values():
                yield _coalesce(items)

        resources = [extracted]
        for spec in entry.tables:
            def rows_of(item: _Processed, name=spec.name):
                if item.table == name and item.clean is not None and item.clean.num_rows:
                    yield item.clean
            resources.append(dlt.transformer(rows_of, data_from=extracted, name=spec.name,
                                             primary_key=spec.primary_key, write_disposition="merge"))

        def quarantined(item: _Processed):
            if item.quarantine is not None and item.quarantine.num_rows:
                yield item.quarantine
        resources.append(dlt.transformer(quarantined, data_from=extracted, name="_quarantine",
                                         primary_key="record_hash", write_disposition="merge"))

        def identities(item: _Processed):
            if item.identities is not None and item.identities.num_rows:
                yield item.identities
        if entry.store_raw_identifiers:
            resources.append(dlt.transformer(identities, data_from=extracted, name=IDENTITIES_TABLE,
                                             primary_key=["pseudonym", "kind"], write_disposition="merge"))
        return resources

    return source()


def move_identities(warehouse: Path, entry: SourceEntry) -> int:
    """Move encrypted identifiers from the load's staging table into the restricted schema, in one
    transaction (idempotent: a rerun after a crash moves whatever is left)."""
    with warehouse_connection(warehouse) as con:
        if not has_table(con, entry.dataset, IDENTITIES_TABLE):
            return 0
        target = f"{RESTRICTED_DATASET}.{entry.name}_identities"
        with transaction(con):
            con.execute(f"create schema if not exists {RESTRICTED_DATASET}")
            con.execute(f"create table if not exists {target} (pseudonym varchar, kind varchar, encrypted varchar, "
                        "key_id varchar, primary key (pseudonym, kind))")
            moved = con.execute(f"insert or replace into {target} select pseudonym, kind, encrypted, key_id "
                                f"from {entry.dataset}.{IDENTITIES_TABLE}").fetchall()[0][0]
            con.execute(f"delete from {entry.dataset}.{IDENTITIES_TABLE}")
        return moved


def make_pipeline(entry: SourceEntry, warehouse: Path, dataset: str | None = None) -> dlt.Pipeline:
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    # every raw row carries the load that brought it: the warehouse's incremental runs key on it
    dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True
    # a loaded package keeps its record (schema, state) but not its data files: dlt keeps them by default,
    # and the data already is in the warehouse (at 1M the history's hotline package alone held 314 MB)
    dlt.config["load.delete_completed_jobs"] = True
    pipeline = dlt.pipeline(
        pipeline_name=f"cv_{dataset or entry.dataset}",
        destination=dlt.destinations.duckdb(DuckDbCredentials(str(warehouse),
                                                                global_config=settings.duckdb_config())),
        dataset_name=dataset or entry.dataset,
        pipelines_dir=str(warehouse.parent / ".dlt_pipelines"),
    )
    # dlt warns on every Arrow batch whose nullability differs from its schema hints; that is
    # expected here (primary keys are declared not-null) and drowns real warnings. (dlt sets up
    # its logger when the pipeline is created, so this comes after.)
    logging.getLogger("dlt").setLevel(logging.ERROR)
    return pipeline


LOAD_LOG_DDL = """
create schema if not exists ops;
create table if not exists ops.load_log (
    load_id varchar primary key,
    source varchar,
    kind varchar,
    started_at timestamptz,
    finished_at timestamptz,
    duration_seconds double,
    received bigint,
    loaded bigint,
    quarantined bigint,
    rejected_units bigint,
    reconciles boolean,
    counts json,
    cursors json
)
"""


def _record(con, entry: SourceEntry, load_ids: list[str], started: datetime, counts: LoadCounts,
            cursors: dict) -> dict:
    finished = datetime.now(UTC)
    row = {
        "load_id": load_ids[-1] if load_ids else f"empty-{started.timestamp()}",
        "source": entry.name, "kind": entry.kind, "started_at": started, "finished_at": finished,
        "duration_seconds": (finished - started).total_seconds(),
        "received": sum(counts.received.values()), "loaded": sum(counts.loaded.values()),
        "quarantined": sum(counts.quarantined.values()), "rejected_units": len(counts.rejected_units),
        "reconciles": counts.reconciles(), "counts": json.dumps(counts.as_dict(), ensure_ascii=False),
        "cursors": json.dumps(cursors, ensure_ascii=False, default=str),
    }
    con.execute(LOAD_LOG_DDL)
    con.execute(f"insert or replace into ops.load_log ({', '.join(row)}) values ({', '.join('?' * len(row))})",
                list(row.values()))
    return row


class SourceLoad:
    """One load of one registered source: build it, run it (directly or through Dagster), complete it."""

    def __init__(self, entry: SourceEntry, warehouse: Path | None = None):
        self.entry = entry
        self.warehouse = Path(warehouse or settings.warehouse_path())
        self.counts = LoadCounts()
        self.started = datetime.now(UTC)
        self._clock = time.perf_counter()
        # read before dlt opens the warehouse
        self.unchanged = UnchangedRecords(entry, self.warehouse) if entry.kind in REREAD_KINDS else None
        self.pipeline = make_pipeline(entry, self.warehouse)
        self.source = build_source(entry, self.counts, self.unchanged)

    def execute(self) -> list[str]:
        """Run the load. A load interrupted earlier (crash after extract) is finished first: dlt
        would otherwise ignore the new extraction while pending packages exist."""
        infos = []
        if self.pipeline.has_pending_data:
            # None when the interrupted run left nothing that still needed loading
            infos.append(self.pipeline.run())
        infos.append(self.pipeline.run(self.source))
        return [load_id for info in infos if info is not None for load_id in info.loads_ids]

    def complete(self, load_ids: list[str]) -> dict:
        """After a successful load: move identities, record the load; returns the load-log record."""
        if self.entry.store_raw_identifiers:
            move_identities(self.warehouse, self.entry)
        resources = self.pipeline.state.get("sources", {}).get(self.entry.dataset, {}).get("resources", {})
        cursors = resources.get("_extract", {}).get("connector", {})
        with warehouse_connection(self.warehouse) as con:  # one connection for the digests and the load log
            if self.unchanged is not None:
                self.unchanged.record(con, load_ids[-1] if load_ids else None)
            record = _record(con, self.entry, load_ids, self.started, self.counts, cursors)
        record["seconds"] = round(time.perf_counter() - self._clock, 2)
        return record


def run(source_name: str, warehouse: Path | None = None, registry_path: Path | None = None) -> dict:
    """Load one registered source; returns its load-log record."""
    load = SourceLoad(load_registry(registry_path).get(source_name), warehouse)
    return load.complete(load.execute())
