"""The BI snapshot: a read-only DuckDB copy of the marts and indicators (and the quality and text
schemas when present) at <published>/serving/warehouse.duckdb.

It is written to a temporary file in the same folder, scanned by the privacy gate, made read-only
(mode 0444) and swapped in with os.replace: a BI tool reading the previous snapshot keeps reading
it undisturbed (its open file is unaffected by the rename), the next connection sees the new one
whole, and the pipeline's warehouse is never held by a BI tool. Table `meta.snapshot` says which
run a snapshot comes from.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from citizen_voice import settings
from citizen_voice.publish import gate
from citizen_voice.publish.config import PublishConfig, load_config

META_SCHEMA = "meta"


@dataclass
class SnapshotReport:
    path: Path
    snapshot_id: str
    schemas: list[str] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)  # schema.table -> rows
    bytes: int = 0
    seconds: float = 0.0


def snapshot_path(published: Path | None = None, config: PublishConfig | None = None) -> Path:
    config = config or load_config()
    return Path(published or settings.published_dir()) / config.serving.snapshot_file


def copy_schemas(con: duckdb.DuckDBPyConnection, source: str, schemas: list[str]) -> dict[str, int]:
    """Copy every table and view of `schemas` from attached catalog `source` as tables."""
    counts = {}
    for schema in schemas:
        con.execute(f'create schema if not exists "{schema}"')
        tables = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_catalog = ? and table_schema = ? "
            "order by 1", [source, schema]).fetchall()]
        for table in tables:
            con.execute(f'create table "{schema}"."{table}" as select * from "{source}"."{schema}"."{table}"')
            counts[f"{schema}.{table}"] = con.execute(f'select count(*) from "{schema}"."{table}"').fetchall()[0][0]
    return counts


def present_schemas(con: duckdb.DuckDBPyConnection, catalog: str, wanted) -> list[str]:
    found = {r[0] for r in con.execute(
        "select schema_name from information_schema.schemata where catalog_name = ?", [catalog]).fetchall()}
    return [s for s in wanted if s in found]


def publish_snapshot(warehouse_path: Path | None = None, published: Path | None = None,
                     config: PublishConfig | None = None, known: gate.KnownValues | None = None,
                     run_id: str | None = None) -> SnapshotReport:
    started = time.perf_counter()
    config = config or load_config()
    source_path = Path(warehouse_path or settings.warehouse_path())
    if not source_path.exists():
        raise FileNotFoundError(f"warehouse {source_path} does not exist yet: run the pipeline first")
    target = snapshot_path(published, config)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    report = SnapshotReport(path=target, snapshot_id=run_id or uuid.uuid4().hex)
    try:
        with duckdb.connect(str(tmp)) as con:
            literal = str(source_path).replace("'", "''")
            con.execute(f"attach '{literal}' as source (read_only)")
            report.schemas = present_schemas(con, "source", config.serving.schemas)
            report.tables = copy_schemas(con, "source", report.schemas)
            con.execute("detach source")
            con.execute(f"create schema {META_SCHEMA}")
            con.execute(f"create table {META_SCHEMA}.snapshot as select ? as snapshot_id, "
                        "cast(? as timestamptz) as created_at, ? as source_warehouse, ? as tables",
                        [report.snapshot_id, datetime.now(UTC), source_path.name,
                         json.dumps(report.tables, ensure_ascii=False)])
            con.execute("checkpoint")
        gate.gate_duckdb(tmp, [*report.schemas, META_SCHEMA], known)
        tmp.chmod(0o444)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
    report.bytes = target.stat().st_size
    report.seconds = round(time.perf_counter() - started, 3)
    return report
